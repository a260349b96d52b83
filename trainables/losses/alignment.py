"""Alignment and uniformity of L2-normalised features: MoNA's outer-loop loss (Eq. 4).

Paper: Wang & Isola, "Understanding Contrastive Representation Learning through Alignment and
Uniformity on the Hypersphere" (ICML 2020, arXiv 2005.10242), Eq. (4)-(5) with α = 2, t = 2;
used by MoNA (Ma et al., ICML 2024, arXiv 2406.18864) Eq. (4) to score the source features
``f_i^s`` produced by the virtually fine-tuned encoder.

Both losses are *minimised*: alignment pulls same-class features together, uniformity spreads
all features over the sphere. With ``d_ij = ||f_i - f_j||²``::

    L_align   = mean_{i≠j, y_i = y_j} d_ij
    L_uniform = log mean_{i≠j} exp(-t d_ij)

Deviations:
    - MoNA's Eq. (4) as printed reads ``L_outer = -E_{y_i=y_j}[||f_i - f_j||_2]
      - log E[exp(-2 ||f_i - f_j||_2)]``: minimising its first term would push same-class
      features *apart*, and its second term has the opposite sign to a uniformity loss (it
      would collapse the features). The text around it ("the alignment loss measures whether
      features from the same class are close, and the uniformity loss measures whether
      features ... are evenly distributed") describes Wang & Isola's losses, so we implement
      their standard minimised form above (DESIGN §4).
    - Eq. (4) also prints plain (unsquared) norms; Wang & Isola's alignment with α = 2 and
      their Gaussian-potential uniformity both use *squared* distances, which we follow
      (squared distances are smooth at d = 0, so the second-order meta-gradient is defined).
    - Supervised alignment: Wang & Isola's positive pairs are two augmentations of one
      sample; here (as in MoNA) every pair of distinct samples with the same label is a
      positive pair. A batch with no such pair has alignment 0 (nothing to align), not NaN.
"""
from __future__ import annotations

import math

import torch

UNIFORMITY_T = 2.0  # Wang & Isola's t; MoNA Eq. (4) uses exp(-2 ·)


def pairwise_sq_distances(f: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between all rows of ``f``.

    Args:
        f: (B, D) features.

    Returns:
        (B, B) matrix ``d_ij = ||f_i - f_j||²``, clamped at 0 (the Gram-matrix form can round
        to tiny negatives); twice differentiable, as the exact meta-gradient needs.
    """
    sq = (f * f).sum(dim=1)  # (B,)
    gram = f @ f.T  # (B, D) @ (D, B) -> (B, B)
    return (sq[:, None] + sq[None, :] - 2.0 * gram).clamp_min(0.0)


def _check_batch(f: torch.Tensor) -> None:
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"expected (B, D) features with B >= 2 (pairs are needed), "
                         f"got shape {tuple(f.shape)}")


def alignment_loss(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared distance over same-class pairs i ≠ j (Wang & Isola's L_align, α = 2).

    Args:
        f: (B, D) L2-normalised features.
        y: (B,) integer class labels.

    Returns:
        Scalar; 0 (still attached to the graph) when no two samples share a label.

    Raises:
        ValueError: ``f`` is not (B, D) with B >= 2, or ``y`` is not (B,).

    Example:
        >>> f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
        >>> float(alignment_loss(f, torch.tensor([0, 0, 1])))  # only the pair (0, 1): |e1 - e2|² = 2
        2.0
    """
    _check_batch(f)
    if y.shape != f.shape[:1]:
        raise ValueError(f"labels must have shape ({f.shape[0]},), got {tuple(y.shape)}")
    d2 = pairwise_sq_distances(f)  # (B, B)
    eye = torch.eye(len(f), dtype=torch.bool, device=f.device)
    same = (y[:, None] == y[None, :]) & ~eye  # (B, B) positive pairs, ordered, i ≠ j
    # sum / max(count, 1): the mean over positive pairs, and exactly 0 when there are none.
    return (d2 * same).sum() / same.sum().clamp_min(1)


def uniformity_loss(f: torch.Tensor, t: float = UNIFORMITY_T) -> torch.Tensor:
    """log of the mean Gaussian potential exp(-t ||f_i - f_j||²) over pairs i ≠ j.

    Computed as a log-sum-exp (stable when all pairs are far apart).

    Args:
        f: (B, D) L2-normalised features.
        t: the potential's sharpness (Wang & Isola's t; 2 in MoNA Eq. 4).

    Returns:
        Scalar in [-4t, 0] for unit-norm features (-4t: all pairs antipodal; 0: collapsed).

    Raises:
        ValueError: ``f`` is not (B, D) with B >= 2.

    Example:
        >>> float(uniformity_loss(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])))  # d² = 4: -2·4
        -8.0
    """
    _check_batch(f)
    b = len(f)
    logits = -t * pairwise_sq_distances(f)  # (B, B)
    eye = torch.eye(b, dtype=torch.bool, device=f.device)
    logits = logits.masked_fill(eye, float("-inf"))  # drop i = j
    # log( sum_{i≠j} exp(.) / (B (B - 1)) )
    return torch.logsumexp(logits.flatten(), dim=0) - math.log(b * (b - 1))
