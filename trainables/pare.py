"""``pare``: end-to-end fine-tuning on gradually generated intermediate modalities.

Paper: Cai et al., "Enhancing Cross-Modal Fine-Tuning with Gradually Intermediate Modality
Generation" (PaRe, ICML 2024, arXiv 2406.09003), §3 (Patch Replacement, the k curriculum, the
loss). Upstream: BIT-DA/PaRe at commit 7d2d0fc4 — ``src/main_PaRe.py`` (``SubsetOperator``,
``mixup_embedding_gate``, ``mixup_embedding_gate_ori``, ``train_one_epoch``),
``src/main_PaRe_1d.py``, ``src/main_PaRe_dense.py``, ``src/embedder_mix_PaRe.py``
(``GatingNetwork``, ``wrapper2D``, ``wrapper1D``), ``src/task_configs_PaRe.py`` (losses),
``src/utils_PaRe.py`` (``FocalLoss``) and ``src/configs/*_PaRe.yaml``. Equation numbers
are not cited: the paper's text was not available offline (only a summary); the formulas
below follow the public code.

What one step computes (symbols: N tokens per sample, k replaced tokens, λ_k = k / N):

1. Target tokens T = embedder(x) (B, N, D); source tokens S = source_embedder(x_s) (B, N, D)
   from the frozen pretrained stem on source-surrogate images (``embedder_init="source"``:
   the public code's ``align_method: srcinit``). For the EfficientNet stem (layout "nchw")
   a "token" is one spatial position of the stem's feature map. 1D backbones: S is the
   pretrained text embeddings of source token sequences of exactly N tokens (the target's
   count), so both sides have N tokens (``main_PaRe_1d`` mixes 32-token source sequences
   into N target tokens, k <= 32: see Deviations).
2. One gate g(t) = sigmoid(Linear(D -> 1)(t)), shared by source and target, scores every
   token. The k top-scored source tokens replace the k *lowest*-scored target tokens
   (target keeps its top N - k), the i-th replaced target position (in index order) taking
   the i-th selected source token (in index order): the intermediate-modality batch M.
3. Loss (``train_one_epoch``): L(P(E(T)), y) + w [(1 - λ_k) L(P(E(M)), y) + λ_k CE(H(E(M)), y_s)],
   with E the encoder, P the target predictor, H the source head (Linear over mean-pooled
   encoder tokens -> source classes); w = 1 (2D classification), 0.1 (1D, ``main_PaRe_1d``),
   0.3 (dense, ``main_PaRe_dense``).
4. k follows a decreasing curriculum over the epochs (public: linear). During the first
   ``warmup_epochs`` the selection is a relaxed Gumbel top-k with a straight-through hard
   mask (``SubsetOperator(k, tau=0.9, hard=True)``), so the gate gets gradient; afterwards a
   hard top-k (no gradient reaches the gate from the selection).

Multi-label tasks (FSD50K, DeepSEA; multi-hot (B, K) targets): the loss of step 3 as it is,
which is what the public code runs on them: ``fsd_PaRe.yaml`` and ``deepsea_PaRe.yaml`` set
``cls_method: twocls``, so ``train_one_epoch`` (``main_PaRe.py`` for FSD, w = 1;
``main_PaRe_1d.py`` for DeepSEA, w = 0.1) takes L = the task's ``BCEWithLogitsLoss`` with
``pos_weight`` 10 / 4 (``task_configs_PaRe.get_config``) on the multi-hot targets for the
target and mixed terms, and the source head's ``nn.CrossEntropyLoss`` on the source labels.
The public ``cls_method == 'multilabel'`` branch (``main_PaRe.py`` lines 277-280 and 314-315,
``utils_PaRe.FocalLoss``) is not for multi-label tasks: it is a one-head variant for
single-label classification (CIFAR-100, Spherical, NinaPro) whose mixed sample gets the soft
label (1 - λ_k) one-hot(y) + λ_k one-hot(K + y_s) over K + K_s classes. It reads y as one class
index (``torch.stack([y, y_src + cls_num])``, ``scatter_(1, y[:, None], ...)``), so it fails on
multi-hot y (FSD's loss, BCE, takes no λ_k either); no public config enables it (commented
out in the CIFAR-100, Spherical, NinaPro and FSD configs).

Logged per epoch: k, λ_k, the three loss terms, and OTDD(intermediate, source): the exact-OT
label-aware OTDD (``trainables.ot.otdd``, solver "emd") between token-mean features of a fixed
probe set of intermediate samples (hard top-k at the epoch's k, eval mode) and of a fixed probe
set of source samples (their labels). OTDD needs one class per sample: single-label targets
keep theirs; multi-hot (FSD50K, DeepSEA) and dense targets get ORCA's k-means pseudo-labels
(``trainables.ot.labels.target_labels``, ORCA's ``infer_labels``: k-means, k = 10, on the
flattened label vectors), fitted on the probe's own labels.
The paper uses OTDD as its measure of curriculum difficulty; the public code never computes it.

Deviations:
    - The relaxed top-k is vectorised: hard top-k of the Gumbel-perturbed scores in the
      forward pass, and in the backward pass the gradient of sigmoid((s + g - t) / τ), t the
      (detached) midpoint between the k-th and (k+1)-th perturbed scores. The public
      ``SubsetOperator`` runs k sequential softmaxes (3136 - k of them for the target mask);
      its forward is the top-k of that relaxation, which equals the top-k of the perturbed
      scores up to ties. The backward differs (diagonal instead of k-step softmax Jacobian).
    - The public hard branch (``mixup_embedding_gate_ori``) replaces the k *highest*-scored
      target tokens (``argsort(...)[:, -k:]``), contradicting both the paper ("bottom-k
      target patches") and its own warm-up branch (complement of the top N - k). We replace
      the lowest-scored target tokens in both phases, pairing positions in index order in
      both (the public hard branch pairs ascending target with descending source scores).
    - The k schedule reaches ``k_end`` exactly at the last epoch; the public
      ``int(begin_num - end_num * ep / epochs)`` stops one step short (525, not 500, of 3136
      after 60 epochs). k is rounded, not truncated. Exponential, cosine and step schedules
      are additions.
    - Warm-up length is a hyperparameter (public: 10 epochs hard-coded for 2D, 5 for 1D).
    - Every batch is mixed: one source image is drawn per target image (``source_batch_size``
      0) or a batch of ``source_batch_size`` is cycled over the target batch. The public code
      skips mixing (loss = task loss only) when the last target batch is smaller than the
      source batch.
    - 1D: source sequences have the target's N tokens; ``main_PaRe_1d`` mixes precomputed
      32-token source sequences (``text_xs_32.npy``) into the N target tokens, k from 32
      (``seq_num``) down, λ_k = k / N. The paper-scale 1-D defaults (``search_spaces.pare``)
      give the same k and λ_k where our N is the public run's (k_start = 32 / N).
    - Dense tasks use the source head's cross-entropy on the source labels, like
      classification; ``main_PaRe_dense`` instead applies BCE between the *target* head's
      mixed output and binarised source segmentation masks.
    - Gradient accumulation is the task's (Tables 9 and 11, ``grad_accum``, as every method
      here), not the public configs' ``accum: 8``; the public WarmupLR schedule is not
      reproduced: the base's cosine schedule.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import pare as pare_space
from trainables.base import TrialConfig, TwoStageTrainable
from trainables.models.crossmodal import to_tokens
from trainables.ot.labels import target_labels
from trainables.ot.otdd import SourceCache

K_SCHEDULES = pare_space.K_SCHEDULES
STEP_LEVELS = 4  # the "step" schedule holds k at 4 equally spaced levels
EXTRA_WEIGHT_1D = 0.1  # main_PaRe_1d.py: 0.1 * ((1-lam) * ... + lam * ...)
EXTRA_WEIGHT_DENSE = 0.3  # main_PaRe_dense.py: 0.3 * (...)
OTDD_PROBE_SAMPLES = 128  # intermediate and source samples in the per-epoch OTDD log
OTDD_PSEUDO_LABELS = 10  # k-means clusters for targets without classes (ORCA's k)
UNKNOWN_SCHEDULE = "Unknown k schedule {family!r}. Valid: {valid}. Set k_schedule to one of them."


# ---- the k curriculum ------------------------------------------------------------------------
def schedule_fraction(t: float, family: str, start: float, end: float) -> float:
    """The replaced fraction at progress ``t`` in [0, 1] (0 = first epoch, 1 = last).

    Every family equals ``start`` at t = 0 and ``end`` at t = 1 and is monotone between.

    Raises:
        ValueError: unknown family, or ``exponential`` with a zero endpoint.
    """
    if family == "linear":
        return start + (end - start) * t
    if family == "exponential":
        if start <= 0 or end <= 0:
            raise ValueError(f"the exponential k schedule interpolates geometrically and needs "
                             f"k_start > 0 and k_end > 0, got {start} and {end}")
        return start * (end / start) ** t
    if family == "cosine":
        return end + (start - end) * (1.0 + math.cos(math.pi * t)) / 2.0
    if family == "step":
        level = min(math.floor(t * STEP_LEVELS), STEP_LEVELS - 1)  # 0 .. STEP_LEVELS-1
        return start + (end - start) * level / (STEP_LEVELS - 1)
    raise ValueError(UNKNOWN_SCHEDULE.format(family=family, valid=", ".join(K_SCHEDULES)))


def k_at(epoch: int, n_epochs: int, n_tokens: int, family: str, start: float, end: float) -> int:
    """Number of replaced tokens k at 0-based ``epoch`` of ``n_epochs``.

    Args:
        epoch: 0-based epoch (values past the last epoch are held at ``end``).
        n_epochs: training epochs of the curriculum (>= 1; a single epoch uses ``start``).
        n_tokens: tokens per sample N.
        family: "linear", "exponential", "cosine" or "step".
        start, end: replaced fractions of N at the first and at the last epoch.

    Returns:
        k = round(fraction x N), clipped to [0, N].

    Raises:
        ValueError: unknown family, or bad epochs / token count.
    """
    if n_epochs < 1 or epoch < 0 or n_tokens < 1:
        raise ValueError(f"need n_epochs >= 1, epoch >= 0, n_tokens >= 1; got {n_epochs}, {epoch}, {n_tokens}")
    t = min(epoch / (n_epochs - 1), 1.0) if n_epochs > 1 else 0.0
    k = round(schedule_fraction(t, family, start, end) * n_tokens)
    return int(min(max(k, 0), n_tokens))


def extra_term_weight(modality: str, output: str) -> float:
    """Weight w of the mixed and source terms: 1 (2D classification), 0.1 (1D), 0.3 (dense)."""
    if modality == "1d":
        return EXTRA_WEIGHT_1D  # main_PaRe_1d.py is used for every 1D task
    if output == "dense":
        return EXTRA_WEIGHT_DENSE
    return 1.0


# ---- token selection -------------------------------------------------------------------------
def hard_topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N) 0/1 mask of the k highest scores per row; carries no gradient.

    Raises:
        ValueError: k outside [0, N].
    """
    _check_k(scores, k)
    idx = torch.topk(scores.detach(), k, dim=1).indices  # (B, k)
    return torch.zeros_like(scores, dtype=scores.dtype).detach().scatter(1, idx, 1.0)


def gumbel_noise(shape: torch.Size, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel samples drawn on CPU from ``generator`` (reproducible), moved to ``like``."""
    u = torch.rand(shape, generator=generator, dtype=torch.float32)
    tiny = torch.finfo(torch.float32).tiny
    return (-torch.log(-torch.log(u.clamp(tiny, 1.0 - 1e-7)))).to(like)


def relaxed_topk_mask(scores: torch.Tensor, k: int, tau: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Straight-through relaxed top-k (Gumbel-top-k), vectorised over rows and k.

    Forward value: exactly the hard top-k mask of the perturbed scores z = s + Gumbel noise
    (k ones per row). Backward: the gradient of sigmoid((z - t) / τ), t the midpoint between
    the k-th and (k+1)-th largest z of the row (held constant). The public ``SubsetOperator``
    computes the soft mask by k sequential softmaxes instead (see module Deviations).

    Args:
        scores: (B, N) token scores.
        k: tokens to select per row, 0 <= k <= N.
        tau: temperature τ > 0.
        generator: CPU generator for the Gumbel noise (None: torch's global RNG).

    Returns:
        (B, N) mask, 0/1 in value, differentiable w.r.t. ``scores``.

    Raises:
        ValueError: k outside [0, N] or τ <= 0.
    """
    _check_k(scores, k)
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    z = scores + gumbel_noise(scores.shape, generator, scores)  # (B, N)
    n = scores.shape[1]
    ordered = torch.sort(z.detach(), dim=1, descending=True).values  # (B, N)
    if k == 0:
        threshold = ordered[:, :1] + 1.0
    elif k == n:
        threshold = ordered[:, -1:] - 1.0
    else:
        threshold = (ordered[:, k - 1:k] + ordered[:, k:k + 1]) / 2.0  # (B, 1)
    soft = torch.sigmoid((z - threshold) / tau)
    hard = hard_topk_mask(z, k)
    return hard + (soft - soft.detach())  # exactly `hard` in value; d soft in the backward


def _check_k(scores: torch.Tensor, k: int) -> None:
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, N), got shape {tuple(scores.shape)}")
    if not 0 <= k <= scores.shape[1]:
        raise ValueError(f"k must be in [0, {scores.shape[1]}] (the token count), got {k}")


def selected_positions(mask: torch.Tensor, count: int) -> torch.Tensor:
    """(B, count) indices of the ``count`` ones of each row of a 0/1 mask, ascending."""
    # stable descending sort puts the ones first, each group in index order
    return torch.sort(mask.detach(), dim=1, descending=True, stable=True).indices[:, :count]


def replace_tokens(target_tokens: torch.Tensor, source_tokens: torch.Tensor,
                   source_mask: torch.Tensor, target_keep_mask: torch.Tensor) -> torch.Tensor:
    """Put the selected source tokens where the target mask drops tokens (PaRe's mixing).

    With k the number of ones of ``source_mask`` per row, the target positions where
    ``target_keep_mask`` is 0 (exactly k per row) are replaced, the i-th of them (index order)
    by the i-th selected source token (index order). Kept target tokens are multiplied by the
    keep mask and the moved source tokens by the source mask (both 1 in value), so a
    straight-through mask passes gradient to the scores, as in ``mixup_embedding_gate``.

    Args:
        target_tokens: (B, N, D).
        source_tokens: (B, N, D).
        source_mask: (B, N) 0/1 (may carry gradient), k ones per row.
        target_keep_mask: (B, N) 0/1 (may carry gradient), N - k ones per row.

    Returns:
        (B, N, D) intermediate-modality tokens.

    Raises:
        ValueError: mismatched shapes or masks whose counts disagree.
    """
    if target_tokens.shape != source_tokens.shape:
        raise ValueError(f"target and source tokens differ in shape: {tuple(target_tokens.shape)} vs "
                         f"{tuple(source_tokens.shape)}; source samples must give the target's token count")
    b, n, d = target_tokens.shape
    if source_mask.shape != (b, n) or target_keep_mask.shape != (b, n):
        raise ValueError(f"masks must be {(b, n)}, got {tuple(source_mask.shape)} and {tuple(target_keep_mask.shape)}")
    counts_src = source_mask.detach().sum(1)
    counts_drop = n - target_keep_mask.detach().sum(1)
    k = int(counts_src[0].round())
    if not (torch.all(counts_src == k) and torch.all(counts_drop == k)):
        raise ValueError("every row needs k ones in source_mask and k zeros in target_keep_mask "
                         f"(k = {k}); got {counts_src.tolist()} and {counts_drop.tolist()}")
    src_idx = selected_positions(source_mask, k)  # (B, k)
    tgt_idx = selected_positions(1.0 - target_keep_mask.detach(), k)  # (B, k)
    moved = (source_tokens * source_mask.unsqueeze(-1)).gather(1, src_idx.unsqueeze(-1).expand(b, k, d))  # (B, k, D)
    kept = target_tokens * target_keep_mask.unsqueeze(-1)  # (B, N, D)
    return kept.scatter(1, tgt_idx.unsqueeze(-1).expand(b, k, d), moved)


def from_tokens(tokens: torch.Tensor, layout: str, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``to_tokens``: (B, N, D) tokens back into the stem's ``layout``.

    Args:
        tokens: (B, N, D) with N = grid[0] * grid[1] for the spatial layouts.
        layout: "nchw", "nhwc" or "nld".
        grid: the stem output's (h, w).

    Raises:
        ValueError: unknown layout.
    """
    b, _, d = tokens.shape
    if layout == "nchw":
        return tokens.transpose(1, 2).reshape(b, d, *grid)  # (B, N, D) -> (B, D, h, w)
    if layout == "nhwc":
        return tokens.reshape(b, *grid, d)  # (B, N, D) -> (B, h, w, D)
    if layout == "nld":
        return tokens
    raise ValueError(f"unknown layout {layout!r}")


def stem_grid(x: torch.Tensor, layout: str) -> tuple[int, int]:
    """The (h, w) token grid of a stem output in ``layout`` ((1, N) for "nld")."""
    if layout == "nchw":
        return tuple(x.shape[2:4])
    if layout == "nhwc":
        return tuple(x.shape[1:3])
    return (1, x.shape[1])


# ---- loss ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PareLoss:
    total: torch.Tensor
    task: torch.Tensor  # L(out, y)
    mixed: torch.Tensor  # L(out_mixed, y)
    source: torch.Tensor  # CE(source_head(mixed), y_s)


def pare_loss(out: torch.Tensor, out_mixed: torch.Tensor, out_source: torch.Tensor, y: torch.Tensor,
              y_source: torch.Tensor, lam: float, task_loss: Callable, weight: float = 1.0) -> PareLoss:
    """PaRe's objective: L(out, y) + w [(1 - λ_k) L(out_mixed, y) + λ_k CE(out_source, y_s)].

    Args:
        out: target predictor on the target batch.
        out_mixed: target predictor on the intermediate batch.
        out_source: (B, K_s) source-head logits on the intermediate batch.
        y, y_source: target labels, (B,) source labels.
        lam: λ_k = k / N.
        task_loss: the task's loss L(pred, target).
        weight: w (``extra_term_weight``: 1, 0.1 for 1D, 0.3 for dense).

    Raises:
        ValueError: λ_k outside [0, 1].
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda_k = k / N must be in [0, 1], got {lam}")
    task = task_loss(out, y)
    mixed = task_loss(out_mixed, y)
    source = F.cross_entropy(out_source, y_source)
    total = task + weight * ((1.0 - lam) * mixed + lam * source)
    return PareLoss(total, task, mixed, source)


# ---- the trainable ---------------------------------------------------------------------------
class PareModules(nn.Module):
    """The gate (shared by source and target tokens) and the source head.

    Lives inside the model (``model.pare``) so the optimizer, checkpoints and best-state
    copies cover it with no extra code.
    """

    def __init__(self, token_dim: int, feature_dim: int, source_classes: int):
        super().__init__()
        self.gate = nn.Linear(token_dim, 1)  # GatingNetwork: sigmoid(Linear(D -> 1))
        self.source_head = nn.Linear(feature_dim, source_classes)  # wrapper2D.predictor_src

    def scores(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gate(tokens)).squeeze(-1)  # (B, N, D) -> (B, N)


@dataclass(frozen=True)
class PareConfig(TrialConfig):
    k_schedule: str  # "linear" | "exponential" | "cosine" | "step"
    k_start: float  # fraction of N replaced at the first epoch
    k_end: float  # fraction of N replaced at the last epoch
    warmup_epochs: int  # epochs of relaxed (Gumbel, straight-through) top-k
    tau: float  # Gumbel-softmax temperature τ
    source_batch_size: int  # 0 = one source image per target image
    source_max_samples: int  # 0 = the whole source surrogate

    def validate(self) -> None:
        """Check the base fields and PaRe's.

        Raises:
            ValueError: naming the field, the value received and the valid range or the fix.
        """
        super().validate()
        if self.k_schedule not in K_SCHEDULES:
            raise ValueError(UNKNOWN_SCHEDULE.format(family=self.k_schedule, valid=", ".join(K_SCHEDULES)))
        checks = [
            ("k_start", 0.0 <= self.k_start <= 1.0, "in [0, 1] (a fraction of the tokens)"),
            ("k_end", 0.0 <= self.k_end <= 1.0, "in [0, 1] (a fraction of the tokens)"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
            ("tau", self.tau > 0, "> 0"),
            ("source_batch_size", self.source_batch_size >= 0, ">= 0 (0 = the target batch size)"),
            ("source_max_samples", self.source_max_samples >= 0, ">= 0 (0 = all)"),
        ]
        for name, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name} must be {valid}, got {getattr(self, name)!r}")
        if self.k_end > self.k_start:
            raise ValueError(f"k_end ({self.k_end}) must be <= k_start ({self.k_start}): PaRe's curriculum "
                             "replaces fewer source tokens as training goes on")
        if self.k_schedule == "exponential" and self.k_end <= 0:
            raise ValueError(f"k_schedule='exponential' needs k_end > 0 (geometric interpolation), got "
                             f"{self.k_end}; use a positive k_end or another schedule")


class PareTrainable(TwoStageTrainable):
    """Single stage: the whole model (and gate, source head) on PaRe's objective."""

    config_class = PareConfig
    loss_part_keys = ("k", "lambda_k", "loss_task", "loss_mixed", "loss_source", "otdd_intermediate_source")

    def setup_method(self) -> None:
        self.load_source(self.cfg.source_max_samples, exact_length=True)  # N source tokens per sample
        self.layout = self.model.encoder.layout
        with torch.no_grad():
            mode = self.model.training
            self.model.eval()  # BatchNorm statistics untouched by the probe
            probe = to_tokens(self.model.embedder(torch.zeros(1, *self.data.input_shape, device=self.device)),
                              self.layout)
            self.model.train(mode)
        self.n_tokens, token_dim = probe.shape[1], probe.shape[2]
        self.extra_weight = extra_term_weight(self.task.modality, self.task.output)
        self.model.add_module("pare", PareModules(token_dim, self.model.encoder.out_dim,
                                                  self.source_num_classes).to(self.device))
        self._setup_otdd_probe()

    def _setup_otdd_probe(self) -> None:
        """Fixed probe sets for the per-epoch OTDD(intermediate, source); source side cached."""
        rng = np.random.default_rng(self.cfg.data_seed)
        m = min(OTDD_PROBE_SAMPLES, len(self.train_x), len(self.source_x))
        t_idx = torch.as_tensor(rng.choice(len(self.train_x), m, replace=False))
        s_idx = torch.as_tensor(rng.choice(len(self.source_x), m, replace=False))
        self.probe_x = self.train_x[t_idx]
        # class labels as they are; multi-hot labels (FSD50K, DeepSEA) and dense targets get
        # ORCA's k-means pseudo-labels (OTDD needs one class per sample)
        self.probe_y = torch.as_tensor(target_labels(self.train_y[t_idx].numpy(), min(OTDD_PSEUDO_LABELS, m),
                                                     self.cfg.data_seed))
        self.probe_source_x = self.source_x[s_idx]
        with torch.no_grad():
            feats = self._source_tokens(self.probe_source_x.to(self.device)).mean(1)  # (m, N, D) -> (m, D)
        self.otdd_cache = SourceCache.build(feats.cpu(), self.source_y[s_idx], solver="emd")

    # ---- pieces of a step -------------------------------------------------------------------
    def current_k(self) -> int:
        return k_at(self.stage_epoch, self.cfg.stage2_epochs, self.n_tokens, self.cfg.k_schedule,
                    self.cfg.k_start, self.cfg.k_end)

    def in_warmup(self) -> bool:
        return self.stage_epoch < self.cfg.warmup_epochs

    def _source_tokens(self, x_s: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # frozen pretrained stem
            return to_tokens(self.source_embedder(x_s), self.layout)  # (B, N, D)

    def _paired_source(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Source images and labels for a target batch of ``batch`` (one per target sample)."""
        size = self.cfg.source_batch_size or batch
        x_s, y_s = self.source_batch(size)
        if size != batch:
            cycle = torch.arange(batch, device=x_s.device) % size  # target i <- source i mod S
            x_s, y_s = x_s[cycle], y_s[cycle]
        return x_s, y_s.long()

    def masks(self, target_tokens: torch.Tensor, source_tokens: torch.Tensor, k: int,
              relaxed: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(source_mask with k ones, target_keep_mask with N - k ones), both (B, N)."""
        n = target_tokens.shape[1]
        if relaxed:
            s_src, s_tgt = self.model.pare.scores(source_tokens), self.model.pare.scores(target_tokens)
            return (relaxed_topk_mask(s_src, k, self.cfg.tau, self.generator),
                    relaxed_topk_mask(s_tgt, n - k, self.cfg.tau, self.generator))
        with torch.no_grad():  # indices only: the gate gets no gradient after warm-up
            s_src, s_tgt = self.model.pare.scores(source_tokens), self.model.pare.scores(target_tokens)
        return hard_topk_mask(s_src, k), hard_topk_mask(s_tgt, n - k)

    def mix(self, raw: torch.Tensor, source_tokens: torch.Tensor, k: int, relaxed: bool) -> torch.Tensor:
        """Intermediate-modality stem output (same layout as ``raw``) with k source tokens."""
        tokens = to_tokens(raw, self.layout)  # (B, N, D)
        src_mask, keep_mask = self.masks(tokens, source_tokens, k, relaxed)
        mixed = replace_tokens(tokens, source_tokens, src_mask, keep_mask)
        return from_tokens(mixed, self.layout, stem_grid(raw, self.layout))

    def step_loss(self, x: torch.Tensor, y: torch.Tensor, x_s: torch.Tensor, y_s: torch.Tensor,
                  k: int, relaxed: bool) -> PareLoss:
        """PaRe's loss on one target batch and its paired source batch."""
        raw = self.model.embedder(x)
        out = self.model.predictor(self.model.encoder(raw))
        mixed_raw = self.mix(raw, self._source_tokens(x_s), k, relaxed)
        feats = self.model.encoder(mixed_raw)  # (B, N', D_out)
        out_mixed = self.model.predictor(feats)
        out_source = self.model.pare.source_head(feats.mean(1))  # (B, D_out) -> (B, K_s)
        return pare_loss(out, out_mixed, out_source, y, y_s, k / self.n_tokens, self.loss_fn, self.extra_weight)

    @torch.no_grad()
    def otdd_intermediate_source(self, k: int) -> float:
        """OTDD between token-mean features of the probe intermediate batch and probe source."""
        self.model.eval()
        x = self.probe_x.to(self.device)
        src = self._source_tokens(self.probe_source_x.to(self.device))
        mixed = to_tokens(self.mix(self.model.embedder(x), src, k, relaxed=False), self.layout)
        return float(self.otdd_cache.distance(mixed.mean(1).cpu(), self.probe_y))

    # ---- the epoch ----------------------------------------------------------------------------
    def train_epoch(self) -> dict:
        """One epoch of PaRe's objective at this epoch's k (relaxed selection in warm-up)."""
        k, relaxed = self.current_k(), self.in_warmup()
        self.set_train_mode()
        sums = {"total": 0.0, "task": 0.0, "mixed": 0.0, "source": 0.0}
        seen = 0
        self.optimizer.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(self.train_batches()):
            x_s, y_s = self._paired_source(len(x))
            parts = self.step_loss(x, y, x_s, y_s, k, relaxed)
            if not torch.isfinite(parts.total):
                return {"train_loss": parts.total.item(), "samples": seen}
            self.accumulate_and_step(parts.total, i)
            for name in sums:
                sums[name] += getattr(parts, name).item() * len(x)
            seen += len(x)
        otdd_value = self.otdd_intermediate_source(k)
        return {"train_loss": sums["total"] / seen, "samples": seen, "k": k, "lambda_k": k / self.n_tokens,
                "loss_task": sums["task"] / seen, "loss_mixed": sums["mixed"] / seen,
                "loss_source": sums["source"] / seen, "otdd_intermediate_source": otdd_value}

