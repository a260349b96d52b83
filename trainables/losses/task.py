"""Task losses L(g(x), y) of Eq. (1) in the MoNA paper, by the name a ``TaskSpec`` gives.

The NAS-Bench-360 losses follow ORCA's ``src/task_configs.py`` (``get_config``) and
``src/utils.py``: cross-entropy (CIFAR-100, Spherical, ECG, Satellite), ``FocalLoss(alpha=1)``
(NinaPro), ``BCEWithLogitsLoss`` with ``pos_weight`` 10 (FSD50K) or 4 (DeepSEA), the COSMIC
``BCEWithLogitsLoss`` on ignore-masked logits, ``LpLoss`` relative L2 (Darcy flow) and
``MSELoss`` (PSICOV). MoNA's Table 8 prints the loss row shifted by a column (e.g. LpLoss
under NinaPro, FocalLoss under PSICOV); ORCA's code is what we follow. ``nrmse`` is ORCA's
``nrmse_loss`` for PDEBench, per channel as PDEBench's ``metric_func``.

Deviations:
    - ``relative_l2`` averages over the batch; ORCA's Darcy loss is
      ``LpLoss(size_average=False)``, a sum (a factor of the batch size, which Adam-type
      optimisers largely ignore). ORCA also applies it to de-normalised outputs and targets
      (``y_normalizer.decode``); a loss here sees what the model is trained on (the loader's
      standardised targets), since the loss signature carries no normaliser.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ORCA's pos_weight for its multi-label BCE losses (task_configs.get_config).
FSD50K_POS_WEIGHT = 10.0
DEEPSEA_POS_WEIGHT = 4.0
# ORCA's FocalLoss(alpha=1) for NinaPro keeps the class default gamma=0 and adds 1e-9 to p.
FOCAL_ALPHA = 1.0
FOCAL_GAMMA = 0.0
FOCAL_EPS = 1e-9


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-class classification; ``target`` holds class indices (B,)."""
    return F.cross_entropy(logits, target)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dense regression (PDEs, PSICOV distances); shapes must agree."""
    return F.mse_loss(pred, target)


def focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ORCA's ``FocalLoss`` (NinaPro): mean_b -alpha (1 - p_y)^gamma log(p_y + 1e-9).

    ``p = softmax(logits)``; with ORCA's alpha = 1 and gamma = 0 this is cross-entropy up to
    the 1e-9 inside the log. ``target`` holds class indices (B,).

    >>> round(focal(torch.tensor([[0.0, 0.0]]), torch.tensor([1])).item(), 6)
    0.693147
    """
    p_y = F.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1) + FOCAL_EPS  # (B,)
    return (-FOCAL_ALPHA * (1.0 - p_y) ** FOCAL_GAMMA * torch.log(p_y)).mean()


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, mean over all entries (multi-label or binary dense)."""
    return F.binary_cross_entropy_with_logits(logits, target)


def _bce_pos_weight(logits: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    pos_weight = torch.full((logits.shape[1],), weight, dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)


def bce_pos10(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """FSD50K: BCE with logits, positives weighted 10 (ORCA), (B, 200) multi-hot targets."""
    return _bce_pos_weight(logits, target, FSD50K_POS_WEIGHT)


def bce_pos4(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DeepSEA: BCE with logits, positives weighted 4 (ORCA), (B, 36) multi-hot targets.

    >>> round(bce_pos4(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])).item(), 6)
    1.732868
    """
    return _bce_pos_weight(logits, target, DEEPSEA_POS_WEIGHT)


def bce_ignore_mask(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """COSMIC: BCE with logits after ORCA's ``mask``: logits and labels times (1 - ignore).

    ``logits`` (B, 1, H, W); ``target`` (B, 2, H, W) holds the cosmic-ray labels and the
    ignore mask (or (B, 1, H, W) labels alone). As in ORCA, ignored pixels stay in the mean,
    each contributing the constant log 2 (zero logit, zero label) and no gradient.
    """
    labels = target[:, :1]
    if target.shape[1] == 2:
        keep = 1.0 - target[:, 1:2]
        logits, labels = logits * keep, labels * keep
    return F.binary_cross_entropy_with_logits(logits, labels)


def relative_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ORCA's ``LpLoss.rel`` (p = 2): mean over samples of ||pred - y||_2 / ||y||_2.

    >>> round(relative_l2(torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 5.0]])).item() ** 2, 6)
    0.4
    """
    n = target.shape[0]
    diff = torch.linalg.vector_norm((pred - target).reshape(n, -1), dim=1)  # (B,)
    norm = torch.linalg.vector_norm(target.reshape(n, -1), dim=1)  # (B,)
    return (diff / norm).mean()


def nrmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Differentiable nRMSE: mean over samples and channels of RMSE / RMS(target) over space.

    Tensors are (B, C, *spatial), as ``trainables.metrics.nrmse``.

    >>> round(nrmse(torch.tensor([[[3.0, 4.0]]]), torch.tensor([[[0.0, 5.0]]])).item() ** 2, 6)
    0.4
    """
    b, c = target.shape[:2]
    err = (pred - target).reshape(b, c, -1)  # (B, C, *spatial) -> (B, C, X)
    rmse = torch.sqrt(torch.mean(err**2, dim=2))  # (B, C)
    scale = torch.sqrt(torch.mean(target.reshape(b, c, -1) ** 2, dim=2))  # (B, C)
    return (rmse / scale).mean()


TASK_LOSSES = {
    "cross_entropy": cross_entropy,
    "mse": mse,
    "focal": focal,
    "bce": bce,
    "bce_pos10": bce_pos10,
    "bce_pos4": bce_pos4,
    "bce_ignore_mask": bce_ignore_mask,
    "relative_l2": relative_l2,
    "nrmse": nrmse,
}
