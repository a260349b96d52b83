"""``emb``: embedder warm-up, then full fine-tuning.

Paper: MoNA, "Learning Modality Knowledge Alignment for Cross-Modality Transfer" (Ma et al.,
ICML 2024, arXiv 2406.18864) §2.2: the "Emb" baseline first trains only the target embedder
on the target task loss (Eq. 1) with the pretrained encoder and the predictor held fixed, then
fine-tunes every parameter (stage 2, as ``finetune``).

Deviations:
    - Stage-1 weight decay is the stage-2 weight decay (the paper does not give one).
    - None in the embedder: it starts from the source-initialised stem, as MoNA A.2's
      embedders "follow exactly the designs in ORCA" and ORCA's code copies the pretrained
      patch embedding before stage 1 (``--set embedder_init=random`` for the ablation).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from trainables.base import TrialConfig, TwoStageTrainable



@dataclass(frozen=True)
class EmbConfig(TrialConfig):
    stage1_lr: float
    stage1_epochs: int


class EmbTrainable(TwoStageTrainable):
    """Stage 1: embedder only, task loss; stage 2: everything, task loss."""

    config_class = EmbConfig
    stage1_name = "embedder_warmup"
    # Read by stage 1 beyond BASE_STAGE1_KEYS: its decay is stage 2's, and the task-loss epoch
    # it reuses steps every grad_accum batches.
    stage1_keys = ("stage1_lr", "stage1_epochs", "stage2_weight_decay", "grad_accum")

    def stage1_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.embedder.parameters(), lr=self.cfg.stage1_lr,
                                 weight_decay=self.cfg.stage2_weight_decay)

    def stage1_epoch(self) -> dict:
        # The base froze everything but the embedder for stage 1: the task-loss epoch of
        # stage 2 then updates the embedder alone.
        return self.train_epoch()

