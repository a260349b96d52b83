"""Approximate modality knowledge discrepancy D(M_s, M_t) (MoNA §2.3, Appendix A.4, Alg. 2).

MoNA (Ma et al., ICML 2024, arXiv 2406.18864) Def. 2.1 defines
D(M_s, M_t) = inf_{π, B} d(P(Y^s_{π,B} | X̂), P(Y^t | X̂)): the best match, over a subset B of
K source classes and a one-to-one map π between them and the K target classes, of the source
model's conditional distribution to the target's. Appendix A.4 approximates it (Alg. 2):

1. z_i = g_{θ_0^s}(x_i^t): logits of the *complete* pretrained source model (its own
   ImageNet classifier) on every target input (``source_logits``).
2. For each of I random experiments: a random subset B of K source classes and a random
   permutation π of the target labels; the source prediction restricted to B is
   y^s_{i,B} = argmax_{k ∈ B} z_ik, and D_exp = (1/n) Σ_i 1[y^s_{i,B} ≠ π(y_i^t)] (Eq. 10, 11).
3. D = min over the I experiments (the paper: I = 100,000).

Symbol map: ``subsets[e]`` is B of experiment e, sorted ascending, so its j-th class stands
for target label j; ``perms[e]`` is π, ``perms[e][y]`` the permuted label of y. The source
prediction is therefore the *position* j of the arg-max within B, compared with π(y).

Vectorised: experiments run in batches of E at once. The logits are held transposed,
(C_s, n), so the logits of the j-th class of every subset of a batch are one gather of E
contiguous rows, (E, n); a running maximum over the K positions gives the arg-max within
each B, and a comparison with the gathered permuted labels E values of Eq. (11) at once.
I = 100,000 with n = 1,000 target samples, K = 10 and 1,000 source classes is 10^9 logits
read: seconds on a CPU (Alg. 2 as a Python loop over experiments and samples takes hours).

Deviations:
    - The paper does not say how target inputs meet the source model. Here (``adapt_inputs``)
      1-channel inputs are repeated to 3, 3-channel inputs kept, any other channel count
      averaged to one channel and repeated; a set whose values leave [0, 1] is min-max scaled
      over the whole set (one affine map); then bilinear resize to the model's input size
      (timm's pretrained config; timm evaluates with bicubic resize and a centre crop) and
      the model's mean/std normalisation.
    - Random numbers come from numpy generators, one stream for subsets and one for
      permutations (``seed``), so the draws, and D, do not depend on the batch size.
    - Classification tasks with one label per sample only (Eq. 10 compares two labels);
      2D (timm) backbones only: the 1D source models here are loaded without a classifier.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Values per (E, n) work array and per (E, C_s) key array of one batch (16 MiB of float32).
BATCH_BUDGET = 1 << 22
NO_CLASSIFIER = (
    "discrepancy: backbone {backbone!r} is loaded without a classifier, and Alg. 2 needs the "
    "complete source model's class logits. Use a 2D (timm) backbone with its ImageNet head."
)
NOT_CLASSIFICATION = (
    "discrepancy: task {task!r} is a {output} task; Alg. 2 of MoNA compares class labels "
    "(Eq. 10), so the modality knowledge discrepancy is defined for classification tasks only."
)


@dataclass(frozen=True)
class Discrepancy:
    """The result of Alg. 2.

    ``values[e]`` is D_exp of experiment e (Eq. 11); ``running_min[e]`` the minimum over
    experiments 0..e; ``value`` = ``running_min[-1]``, reached first at experiment ``best``
    with ``best_subset`` (source class ids, position j stands for target label j before π)
    and ``best_perm`` (π).
    """

    value: float
    experiments: int
    values: np.ndarray  # (I,) float32
    running_min: np.ndarray  # (I,) float32
    best: int
    best_subset: np.ndarray  # (K,) int64
    best_perm: np.ndarray  # (K,) int64
    seconds: float  # time of the search (not of the logits)


# ---------------------------------------------------------------------------------------------
# Source logits


def check_classifier(model: nn.Module, name: str) -> int:
    """The number of source classes of a complete source model.

    Raises:
        ValueError: the model has no classifier (e.g. a 1D text backbone loaded as an encoder).
    """
    classes = getattr(model, "num_classes", 0)
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(NO_CLASSIFIER.format(backbone=name))
    return classes


def input_config(model: nn.Module) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """(input side, mean, std) of a timm model's pretrained configuration."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    return int(cfg["input_size"][-1]), tuple(cfg["mean"]), tuple(cfg["std"])


def value_range(x: np.ndarray) -> tuple[float, float]:
    """(low, high) of an affine map to [0, 1]: (0, 1) when ``x`` already lies in [0, 1].

    >>> value_range(np.array([0.2, 0.9])), value_range(np.array([-1.0, 3.0]))
    ((0.0, 1.0), (-1.0, 3.0))
    """
    low, high = float(np.min(x)), float(np.max(x))
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    return low, (high if high > low else low + 1.0)


def adapt_inputs(x: torch.Tensor, side: int, mean: tuple[float, ...], std: tuple[float, ...],
                 low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Target inputs as the source model's images (see the module's Deviations).

    Args:
        x: (B, C, H, W) target inputs.
        side: the model's input side (224 for ImageNet models).
        mean, std: the model's per-channel normalisation (3 values each).
        low, high: ``value_range`` of the whole target set.

    Returns:
        (B, 3, side, side) float32.
    """
    if x.ndim != 4:
        raise ValueError(f"discrepancy needs 2D inputs (B, C, H, W), got shape {tuple(x.shape)}")
    x = (x.float() - low) / (high - low)
    if x.shape[1] != 3:
        x = x.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)  # (B, C, H, W) -> (B, 3, H, W)
    if x.shape[-2:] != (side, side):
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


@torch.no_grad()
def source_logits(model: nn.Module, x: np.ndarray, device: torch.device | str = "cpu",
                  batch_size: int = 64) -> np.ndarray:
    """z_i^s = g_{θ_0^s}(x_i^t) for every target input (Alg. 2, line 3), in eval mode.

    Args:
        model: the complete pretrained timm model (classifier included).
        x: (n, C, H, W) target inputs.

    Returns:
        (n, C_s) float32 logits.
    """
    side, mean, std = input_config(model)
    low, high = value_range(x)
    model.eval().to(device)
    out = []
    for i in range(0, len(x), batch_size):
        batch = torch.as_tensor(x[i:i + batch_size]).to(device)
        out.append(model(adapt_inputs(batch, side, mean, std, low, high)).float().cpu())
    return torch.cat(out).numpy()


# ---------------------------------------------------------------------------------------------
# The random experiments


def experiment_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators: one draws subsets, the other permutations."""
    subsets, perms = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(subsets), np.random.default_rng(perms)


def draw_experiments(subset_rng: np.random.Generator, perm_rng: np.random.Generator,
                     num_source: int, k: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random (subset, permutation) pairs (Alg. 2, lines 6 and 8).

    Returns:
        ``(subsets, perms)``, both (count, k) int64: subsets of ``range(num_source)`` sorted
        ascending (uniform over k-subsets), and uniform permutations of ``range(k)``.
    """
    keys = subset_rng.random((count, num_source), dtype=np.float32)  # (E, C_s)
    subsets = np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)  # (E, K): k smallest keys
    perms = np.argsort(perm_rng.random((count, k), dtype=np.float32), axis=1)  # (E, K)
    return subsets.astype(np.int64), perms.astype(np.int64)


def disagreement(logits_t: torch.Tensor, labels: torch.Tensor, subsets: torch.Tensor,
                 perms: torch.Tensor) -> torch.Tensor:
    """Eq. (11) for a batch of experiments at once.

    The arg-max within B is a running maximum over the K positions, each step one (E, n)
    gather of contiguous logit rows (5x faster on a CPU than ``argmax`` over a gathered
    (E, K, n) block, which reduces over a strided axis). Ties go to the first position, as
    ``argmax`` does.

    Args:
        logits_t: (C_s, n) source logits, transposed.
        labels: (n,) int64 target labels in [0, K).
        subsets: (E, K) int64 source class ids (position j stands for target label j).
        perms: (E, K) int64 permutations π of the target labels.

    Returns:
        (E,) float32: the fraction of samples with argmax_{j} z_{i, B_j} ≠ π(y_i).
    """
    k = subsets.shape[1]
    index = torch.uint8 if k <= 256 else torch.int64  # positions 0..K-1
    best = logits_t.index_select(0, subsets[:, 0])  # (E, n): z_{i, B_0}
    predicted = torch.zeros(best.shape, dtype=index)  # (E, n): arg-max position so far
    for j in range(1, k):
        current = logits_t.index_select(0, subsets[:, j])  # (E, n): z_{i, B_j}
        predicted.masked_fill_(current > best, j)
        torch.maximum(best, current, out=best)
    target = perms.to(index).index_select(1, labels)  # (E, K) -> (E, n): π(y_i)
    return (predicted != target).float().mean(dim=1)


def batch_size_for(n: int, num_source: int, budget: int = BATCH_BUDGET) -> int:
    """Experiments per batch: (E, n) work arrays and (E, C_s) subset keys of <= ``budget`` values.

    >>> batch_size_for(1000, 1000), batch_size_for(10**7, 100)
    (4194, 1)
    """
    return max(1, budget // max(n, num_source))


def modality_discrepancy(logits: np.ndarray, labels: np.ndarray, num_classes: int,
                         experiments: int = 100_000, seed: int = 0,
                         batch_size: int | None = None) -> Discrepancy:
    """Alg. 2 of MoNA: the minimum over ``experiments`` random (B, π) of Eq. (11).

    Args:
        logits: (n, C_s) source logits on the target inputs.
        labels: (n,) target class indices in [0, num_classes).
        num_classes: K, the target task's number of classes (|B| = K).
        experiments: I.
        seed: seeds the subset and permutation streams.
        batch_size: experiments per batch (default: ``batch_size_for``); D does not depend on it.

    Raises:
        ValueError: mismatched or empty inputs, labels outside [0, K), K > C_s (MoNA's
            assumption |Y^s| >= |Y^t| fails), or ``experiments`` < 1.
    """
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.ndim != 1 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(f"discrepancy needs logits (n, C_s) and labels (n,), n >= 1; got "
                         f"{logits.shape} and {labels.shape}")
    num_source = logits.shape[1]
    if not 1 <= num_classes <= num_source:
        raise ValueError(f"discrepancy needs 1 <= K <= C_s (MoNA §2.3: |Y^s| >= |Y^t|); got K = "
                         f"{num_classes} target classes and {num_source} source classes")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"target labels must lie in [0, {num_classes}); found [{labels.min()}, {labels.max()}]")
    if experiments < 1:
        raise ValueError(f"the number of experiments I must be >= 1, got {experiments}")
    start = time.perf_counter()
    logits_t = torch.as_tensor(np.ascontiguousarray(logits.T, dtype=np.float32))  # (n, C_s) -> (C_s, n)
    y = torch.as_tensor(labels.astype(np.int64))
    step = batch_size or batch_size_for(len(labels), num_source)
    subset_rng, perm_rng = experiment_streams(seed)
    values = np.empty(experiments, dtype=np.float32)
    best, best_value = 0, math.inf
    best_subset = best_perm = np.empty(0, dtype=np.int64)
    for first in range(0, experiments, step):
        count = min(step, experiments - first)
        subsets, perms = draw_experiments(subset_rng, perm_rng, num_source, num_classes, count)
        batch = disagreement(logits_t, y, torch.from_numpy(subsets), torch.from_numpy(perms)).numpy()
        values[first:first + count] = batch
        i = int(batch.argmin())
        if batch[i] < best_value:  # strict: the first experiment reaching the minimum
            best, best_value = first + i, float(batch[i])
            best_subset, best_perm = subsets[i], perms[i]
    return Discrepancy(
        value=best_value, experiments=experiments, values=values,
        running_min=np.minimum.accumulate(values), best=best,
        best_subset=best_subset, best_perm=best_perm, seconds=time.perf_counter() - start,
    )
