"""Task losses L(g(x), y) of Eq. (1) in the MoNA paper, by the name a ``TaskSpec`` gives."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-class classification; ``target`` holds class indices (B,)."""
    return F.cross_entropy(logits, target)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dense regression (PDEs, Darcy flow); shapes must agree."""
    return F.mse_loss(pred, target)


TASK_LOSSES = {"cross_entropy": cross_entropy, "mse": mse}
