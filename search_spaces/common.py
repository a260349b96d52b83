"""Dimensions shared by every method's space."""
from __future__ import annotations

LR_SPAN = 10.0  # log-uniform over [default / 10, default * 10]
WEIGHT_DECAY_RANGE = (1e-5, 1e-1)  # log-uniform; the papers use 1e-5 .. 0.1 (MoNA Tables 9, 11)


def optimizer_space(trial, prefix: str, lr_default: float) -> None:
    """Learning rate log-uniform around the task default, and weight decay.

    Suggests ``<prefix>lr`` and ``<prefix>weight_decay``.
    """
    trial.suggest_float(f"{prefix}lr", lr_default / LR_SPAN, lr_default * LR_SPAN, log=True)
    trial.suggest_float(f"{prefix}weight_decay", *WEIGHT_DECAY_RANGE, log=True)


def optimizer_defaults(prefix: str, task_defaults: dict) -> dict:
    """The task's own values for the dimensions ``optimizer_space`` suggests."""
    return {f"{prefix}lr": task_defaults["lr"], f"{prefix}weight_decay": task_defaults["weight_decay"]}
