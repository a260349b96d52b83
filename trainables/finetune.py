"""Single-stage baselines: finetune, finetune++, scratch and frozen.

Paper: MoNA, "Learning Modality Knowledge Alignment for Cross-Modality Transfer" (ICML 2024),
Table 2 baselines; ORCA (Shen et al., ICML 2023, arXiv 2302.05738) §4. All four train
g = predictor ∘ encoder ∘ embedder with the task loss of Eq. (1); they differ only in
initialisation and in what trains, so they are one Trainable registered four times with
other constants (a variant is a registration, never a copied file):

| method     | embedder init | encoder init | encoder trains |
|------------|---------------|--------------|----------------|
| finetune   | random        | pretrained   | yes            |
| finetune++ | source (copy) | pretrained   | yes            |
| scratch    | random        | random       | yes            |
| frozen     | random        | pretrained   | no             |

Deviations: none beyond the base (cosine LR schedule per stage, best-validation weights scored
on test).
"""
from __future__ import annotations

from trainables.base import TwoStageTrainable



class FinetuneTrainable(TwoStageTrainable):
    """Stage 2 only: fine-tune with the task loss (Eq. 1)."""

