"""``orca``: align the target embedder to the source by OTDD, then fine-tune everything.

Paper: ORCA, "Cross-Modal Fine-Tuning: Align then Refine" (Shen et al., ICML 2023,
arXiv 2302.05738), §3: stage 1 ("embedder learning") trains only the target embedder to
minimise the optimal transport dataset distance (OTDD; Alvarez-Melis & Fusi, NeurIPS 2020,
arXiv 2002.02923) between the embedded source surrogate and the embedded target data; stage 2
fine-tunes every parameter with the task loss (as ``finetune``). Equation numbers are not
cited: the paper text was not available offline; this follows the public code.

Upstream code read (sjunhongshen/ORCA; ``src/embedder.py`` and ``src/utils.py`` are not in the
code index, so they were read in forks that keep ORCA's functions unchanged):
``src/main.py`` (0fea247d), ``src/configs/spherical.yaml`` (615c3a89),
``src/task_configs.py`` (``get_optimizer_scheduler``, ``get_scheduler``), ``src/embedder.py``
(``get_tgt_model``, ``otdd``, ``load_by_class``, ``infer_labels``), ``src/utils.py``
(``embedder_init``), and its otdd fork (see ``trainables.ot.otdd``). What it does:

- Source features: up to 5,000 CIFAR-10 images (``get_data(..., maxsize=5000)``) resized to 224,
  through the *pretrained* patch embedding, token-mean: ``src_model(x).mean(1)``. Computed once.
- Target: ``load_by_class`` splits the training set by class; ``class_weights[c] = |class c| /
  N``. Regression/dense targets (and multi-label ones) first get pseudo-labels from
  ``infer_labels``: ``sklearn.cluster.k_means(Y.reshape(N, -1), k=10)`` (``MiniBatchKMeans``,
  batch 10,000, above 10,000 samples), unseeded.
- Each "epoch" (60; ``embedder_epochs``): for every target class c (random order), shuffled
  batches of class c are embedded until more than ``maxsamples`` (128) are seen; their token
  means, all labelled 0, go to ``otdd(feats, src_train_dataset, exact=True)``; the loss
  ``class_weights[c] * otdd`` is back-propagated per class (classes with <= 1 sample skipped);
  then *one* optimiser step and one scheduler step.
- Optimiser: the stage-2 optimiser type and parameters (Spherical: AdamW, betas (0.9, 0.98),
  weight decay 5e-3) over the embedder, lr x 10 when lr <= 1e-3; schedule ``StepLR`` (lr x 0.2
  after epochs 20, 40, 60).
- Embedder init: ``embedder_init(..., train_embedder=embedder_epochs > 0)`` copies the
  pretrained patch-embedding conv (repeated across input channels), bias and LayerNorm: with a
  stage 1, ORCA's embedder starts from the source stem. Hence ``embedder_init="source"`` here.

Deviations:
    - OTDD itself: exact OT by default, gradients through the label distances, relative ε for
      Sinkhorn (``trainables.ot.otdd`` lists them); the source side is computed once per trial
      (ORCA recomputes all label distances and the source self term at every class of every
      epoch).
    - Per step, up to ``target_samples_per_class`` samples of each class are drawn without
      replacement (ORCA: whole loader batches until > 128, i.e. 160 at batch 32), and all
      classes are embedded in chunks of ``batch_size`` mixed-class samples: BatchNorm in an
      embedder stem (the embedded EfficientNet) then sees ordinary training-like batches rather
      than single-class ones. To keep memory bounded by one chunk (ORCA's 100 Spherical classes
      would not fit at once), features are computed without a graph, the OTDD gradient w.r.t.
      the features is taken, then each chunk is re-embedded and back-propagated with it: the
      same gradient as one big forward for per-sample-normalised embedders (LayerNorm), and
      BatchNorm running statistics are updated once per chunk (the first pass restores them).
    - Classes are visited in sorted order (order does not change the summed loss).
    - k-means pseudo-labels are seeded (``data_seed``) and use scikit-learn's ``KMeans``;
      integer 1-D targets are used as labels, anything else is clustered (no branch on the task).
    - Schedule: the base's cosine annealing over the stage-1 steps, not ORCA's StepLR. The
      optimiser is the trial's stage-2 optimiser (as ORCA) with ``stage1_lr`` (searched around
      10x) and the stage-2 weight decay; SGD uses momentum 0.9 (the base's ``make_optimizer``).
    - Source init of a 1-channel embedder uses timm's ``adapt_input_conv`` (sum of the RGB
      filters), not ORCA's repeat-and-truncate (which keeps the R filter only).
    - Source surrogate at the embedded default: scikit-learn digits (1,797 images), DESIGN §9.
    - 1D backbones: at paper scale the source features are ORCA's own precomputed CoNLL-2003
      RoBERTa embeddings (``text_xs.npy``, token-mean as ORCA); at the embedded default
      (all-MiniLM-L6-v2) they are the pretrained embeddings of standard-library docstrings
      (10 package labels), tokenised into sequences of the target's token count
      (``trainables.tasks.source_data``).
    - A validation pass follows every stage-1 step (the base's fixed result schema).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainables.base import TrialConfig, TwoStageTrainable, make_optimizer
from trainables.models.crossmodal import to_tokens
from trainables.ot.labels import target_labels
from trainables.ot.otdd import SourceCache, check_solver

MIN_CLASS_SAMPLES = 2  # ORCA skips target classes with a single sample (``if feats.shape[0] > 1``)
SOURCE_CHUNK = 256  # source images per no-grad forward of the frozen source embedder


@dataclass(frozen=True)
class OrcaConfig(TrialConfig):
    stage1_lr: float
    stage1_epochs: int  # optimiser steps (one per "epoch", as ORCA)
    ot_solver: str  # "emd" | "sinkhorn"
    ot_reg: float  # relative ε for "sinkhorn"; unused by "emd" but must be > 0
    source_samples: int  # source-surrogate subset size (0 = all); ORCA: 5,000
    target_samples_per_class: int  # target samples per class per step; ORCA: maxsamples = 128
    num_pseudo_labels: int  # k of the k-means pseudo-labels for non-class targets; ORCA: 10

    def validate(self) -> None:
        super().validate()
        if not (math.isfinite(self.stage1_lr) and self.stage1_lr > 0):
            raise ValueError(f"stage1_lr must be a positive finite number, got {self.stage1_lr!r}")
        if self.stage1_epochs < 0:
            raise ValueError(f"stage1_epochs must be >= 0 (0 skips stage 1), got {self.stage1_epochs}")
        if not (math.isfinite(self.ot_reg) and self.ot_reg > 0):
            raise ValueError(f"ot_reg must be a positive finite number (relative Sinkhorn ε), got {self.ot_reg!r}")
        check_solver(self.ot_solver, self.ot_reg)
        if self.source_samples < 0:
            raise ValueError(f"source_samples must be >= 0 (0 = the whole surrogate), got {self.source_samples}")
        if self.target_samples_per_class < MIN_CLASS_SAMPLES:
            raise ValueError(f"target_samples_per_class must be >= {MIN_CLASS_SAMPLES}, "
                             f"got {self.target_samples_per_class}")
        if self.num_pseudo_labels < 2:
            raise ValueError(f"num_pseudo_labels must be >= 2 (k of k-means), got {self.num_pseudo_labels}")


def token_mean_features(embedder: nn.Module, x: torch.Tensor, layout: str) -> torch.Tensor:
    """Embed and average over tokens: (B, C, H, W) -> (B, D) (ORCA's ``out.mean(1)``)."""
    return to_tokens(embedder(x), layout).mean(dim=1)  # (B, N, D) -> (B, D)


@torch.no_grad()
def source_features(embedder: nn.Module, x: torch.Tensor, layout: str, device: torch.device,
                    chunk: int = SOURCE_CHUNK) -> torch.Tensor:
    """Token-mean features of the frozen source embedder, in chunks, in eval mode.

    Args:
        x: (n, 3, H, W) source images (CPU).

    Returns:
        (n, D) features on ``device``.
    """
    embedder.eval()
    return torch.cat([token_mean_features(embedder, x[i:i + chunk].to(device), layout)
                      for i in range(0, len(x), chunk)])


@dataclass(frozen=True)
class TargetClasses:
    """The target classes stage 1 visits: members and frequency weights (ORCA's ``load_by_class``)."""

    members: tuple[torch.Tensor, ...]  # per class, indices into the training set
    weights: tuple[float, ...]  # per class, |class| / N over the whole training set


def group_by_class(labels: np.ndarray) -> TargetClasses:
    """Classes with at least ``MIN_CLASS_SAMPLES`` samples, in sorted label order.

    Raises:
        ValueError: no class has enough samples.
    """
    classes, counts = np.unique(labels, return_counts=True)
    keep = [c for c, n in zip(classes, counts) if n >= MIN_CLASS_SAMPLES]
    if not keep:
        raise ValueError(f"ORCA stage 1 needs a target class with >= {MIN_CLASS_SAMPLES} samples; "
                         f"got class counts {dict(zip(classes.tolist(), counts.tolist()))}")
    members = tuple(torch.as_tensor(np.flatnonzero(labels == c)) for c in keep)
    return TargetClasses(members, tuple(len(m) / len(labels) for m in members))


def sample_per_class(classes: TargetClasses, cap: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``cap`` samples of each class without replacement, shuffled together.

    Returns:
        (idx (m,), position (m,)): training-set indices and each sample's class position
        (index into ``classes.members``).
    """
    idx, pos = [], []
    for c, members in enumerate(classes.members):
        take = members[torch.randperm(len(members), generator=generator)[:cap]]
        idx.append(take)
        pos.append(torch.full((len(take),), c, dtype=torch.long))
    idx, pos = torch.cat(idx), torch.cat(pos)
    order = torch.randperm(len(idx), generator=generator)  # mixed-class chunks (BatchNorm stems)
    return idx[order], pos[order]


def weighted_class_otdd(features: torch.Tensor, positions: torch.Tensor, weights: tuple[float, ...],
                        cache: SourceCache) -> torch.Tensor:
    """ORCA's stage-1 objective: sum_c w_c · OTDD(source, target class c labelled as one class).

    Args:
        features: (m, D) target token-mean features.
        positions: (m,) class position of each row.
        weights: per class position, its frequency in the training set.

    Returns:
        A float64 scalar tensor.
    """
    total = features.new_zeros((), dtype=torch.float64)
    for c, w in enumerate(weights):
        feats = features[positions == c]  # (m_c, D)
        if len(feats) < MIN_CLASS_SAMPLES:
            continue
        single_label = torch.zeros(len(feats), dtype=torch.long, device=feats.device)  # ORCA: ys = zeros
        total = total + w * cache.distance(feats, single_label)
    return total


class OrcaTrainable(TwoStageTrainable):
    """Stage 1: embedder only, minimise class-weighted OTDD to the source; stage 2: full fine-tune."""

    config_class = OrcaConfig
    stage1_name = "otdd_alignment"
    # Read by stage 1 beyond BASE_STAGE1_KEYS (optimizer and weight decay: ORCA's stage 1 uses
    # the stage-2 optimiser type and decay).
    stage1_keys = ("stage1_lr", "stage1_epochs", "optimizer", "stage2_weight_decay", "ot_solver", "ot_reg",
                   "source_samples", "target_samples_per_class", "num_pseudo_labels")
    loss_part_keys = ("otdd",)

    def setup_method(self) -> None:
        """Source features and their OT cache, and the target classes (once per trial)."""
        if not any(stage.index == 1 for stage in self.plan):
            return
        cfg = self.cfg
        self.load_source(cfg.source_samples)
        feats = source_features(self.source_embedder, self.source_x, self.model.encoder.layout, self.device)
        self.source_cache = SourceCache.build(feats, self.source_y.to(self.device), cfg.ot_solver, cfg.ot_reg)
        self.source_x = None  # the images are not needed once embedded
        labels = target_labels(self.train_y.numpy(), cfg.num_pseudo_labels, cfg.data_seed)
        self.target_classes = group_by_class(labels)

    def stage1_optimizer(self) -> torch.optim.Optimizer:
        return make_optimizer(self.cfg.optimizer, self.model.embedder.parameters(), self.cfg.stage1_lr,
                              self.cfg.stage2_weight_decay)

    def stage1_steps_per_epoch(self) -> int:
        return 1  # ORCA: one optimiser step per stage-1 "epoch"

    def stage1_epoch(self) -> dict:
        """One ORCA step: class-frequency-weighted OTDD over the target classes, one update."""
        self.set_train_mode()  # embedder trains; encoder in eval (frozen in stage 1)
        idx, positions = sample_per_class(self.target_classes, self.cfg.target_samples_per_class, self.generator)
        x = self.train_x[idx]  # (m, C, H, W), CPU
        features = self._features_without_graph(x).requires_grad_(True)  # (m, D)
        loss = weighted_class_otdd(features, positions.to(self.device), self.target_classes.weights,
                                   self.source_cache)
        value = loss.detach().item()
        if not math.isfinite(value):
            return {"train_loss": value, "samples": len(idx), "otdd": value}
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # d loss / d features only
        self._backprop_features(x, features.grad)
        self.optimizer.step()
        self.scheduler.step()
        return {"train_loss": value, "samples": len(idx), "otdd": value}

    def _chunks(self, x: torch.Tensor):
        for i in range(0, len(x), self.cfg.batch_size):
            yield i, x[i:i + self.cfg.batch_size].to(self.device)

    def _features_without_graph(self, x: torch.Tensor) -> torch.Tensor:
        """Pass 1: embed every chunk with no graph, leaving buffers and RNG as they were."""
        embedder, layout = self.model.embedder, self.model.encoder.layout
        buffers = [b.clone() for b in embedder.buffers()]  # BatchNorm statistics
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None
        with torch.no_grad():
            feats = torch.cat([token_mean_features(embedder, chunk, layout) for _, chunk in self._chunks(x)])
        for b, saved in zip(embedder.buffers(), buffers):
            b.copy_(saved)
        torch.set_rng_state(cpu_rng)  # pass 2 sees the same dropout masks, if any
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        return feats

    def _backprop_features(self, x: torch.Tensor, grad: torch.Tensor) -> None:
        """Pass 2: re-embed each chunk with a graph and back-propagate the features' gradient."""
        embedder, layout = self.model.embedder, self.model.encoder.layout
        for i, chunk in self._chunks(x):
            feats = token_mean_features(embedder, chunk, layout)  # (b, D)
            feats.backward(grad[i:i + len(chunk)].to(feats.dtype))

