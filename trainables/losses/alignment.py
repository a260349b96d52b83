"""MoNA's outer-loop losses on L2-normalised features: alignment + uniformity (Eq. 4), and the
two replacements of its Table 6 ablation (supervised contrastive, Davies-Bouldin index).

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
SUPCON_TEMPERATURE = 0.1  # Khosla et al. 2020 (their ImageNet setting); MoNA gives none
DB_EPS = 1e-12  # inside square roots: a class of one sample has spread 0, where sqrt has no derivative


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


def supervised_contrastive_loss(f: torch.Tensor, y: torch.Tensor, temperature: float = SUPCON_TEMPERATURE
                                ) -> torch.Tensor:
    """Khosla et al. (NeurIPS 2020, arXiv 2004.11362) Eq. (2), L^sup_out, on unit features.

    For each anchor i with positives P(i) = {p ≠ i: y_p = y_i}:
    L_i = -1/|P(i)| sum_{p in P(i)} log[exp(f_i·f_p / τ) / sum_{a ≠ i} exp(f_i·f_a / τ)],
    averaged over the anchors that have a positive (MoNA Table 6, "contrastive loss").

    Returns:
        Scalar; 0 (attached to the graph) when no two samples share a label.

    Example:
        >>> f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> round(float(supervised_contrastive_loss(f, torch.tensor([0, 0, 1]), temperature=1.0)), 4)
        0.3133
    """
    _check_batch(f)
    eye = torch.eye(len(f), dtype=torch.bool, device=f.device)
    logits = (f @ f.T / temperature).masked_fill(eye, float("-inf"))  # (B, B), a ≠ i
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (y[:, None] == y[None, :]) & ~eye
    count = positive.sum(1)  # (B,)
    per_anchor = -(log_prob.masked_fill(~positive, 0.0)).sum(1) / count.clamp_min(1)
    has = count > 0
    return (per_anchor * has).sum() / has.sum().clamp_min(1)


def davies_bouldin_loss(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The Davies-Bouldin index of ``f`` clustered by ``y`` (MoNA Table 6, "clustering metric").

    DB = mean_i max_{j ≠ i} (s_i + s_j) / ||μ_i - μ_j||, over the classes present, with μ_c
    a class's mean feature and s_c the mean Euclidean distance of its features to μ_c
    (Davies & Bouldin 1979; scikit-learn's ``davies_bouldin_score``). Lower is better
    clustering, so it is minimised as is.

    Raises:
        ValueError: fewer than two classes in the batch.

    Example:
        >>> f = torch.tensor([[0.0, 1.0], [0.0, -1.0], [3.0, 1.0], [3.0, -1.0]])
        >>> round(float(davies_bouldin_loss(f, torch.tensor([0, 0, 1, 1]))), 4)  # (1 + 1) / 3
        0.6667
    """
    _check_batch(f)
    classes = torch.unique(y)
    if len(classes) < 2:
        raise ValueError(f"the Davies-Bouldin index needs two classes in the batch, got {len(classes)}")
    onehot = (y[:, None] == classes[None, :]).to(f.dtype)  # (B, C)
    centroids = onehot.T @ f / onehot.sum(0)[:, None]  # (C, D)
    dist = torch.sqrt(((f[:, None, :] - centroids[None, :, :]) ** 2).sum(-1) + DB_EPS)  # (B, C)
    spread = (dist * onehot).sum(0) / onehot.sum(0)  # (C,)
    sep = torch.sqrt(((centroids[:, None, :] - centroids[None, :, :]) ** 2).sum(-1) + DB_EPS)  # (C, C)
    ratio = (spread[:, None] + spread[None, :]) / sep
    ratio = ratio.masked_fill(torch.eye(len(classes), dtype=torch.bool, device=f.device), float("-inf"))
    return ratio.max(dim=1).values.mean()
