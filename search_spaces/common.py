"""Dimensions shared by every method's space, and the paper-scale convention."""
from __future__ import annotations

LR_SPAN = 10.0  # log-uniform over [default / 10, default * 10]
WEIGHT_DECAY_RANGE = (1e-5, 1e-1)  # log-uniform; the papers use 1e-5 .. 0.1 (MoNA Tables 9, 11)
NO_WEIGHT_DECAY_RANGE = (0.0, 1e-3)  # uniform, for tasks the papers train without weight decay


def is_paper_scale(defaults: dict) -> bool:
    """True when the space is built for the papers' setups (``defaults["scale"] == "paper"``)."""
    return defaults["scale"] == "paper"


def optimizer_space(trial, prefix: str, defaults: dict) -> None:
    """Learning rate log-uniform around the task default, and weight decay.

    Suggests ``<prefix>lr`` and ``<prefix>weight_decay``. Weight decay is log-uniform on
    ``WEIGHT_DECAY_RANGE``, widened to hold the task's default (Satellite's 3e-6), except where
    the default is 0 (four tasks of Tables 9 and 11): a log scale cannot hold 0, so there it
    is uniform on ``NO_WEIGHT_DECAY_RANGE``.
    """
    lr, wd = defaults["lr"], defaults["weight_decay"]
    trial.suggest_float(f"{prefix}lr", lr / LR_SPAN, lr * LR_SPAN, log=True)
    if wd > 0:
        low, high = WEIGHT_DECAY_RANGE
        trial.suggest_float(f"{prefix}weight_decay", min(low, wd), max(high, wd), log=True)
    else:
        trial.suggest_float(f"{prefix}weight_decay", *NO_WEIGHT_DECAY_RANGE)


def optimizer_defaults(prefix: str, task_defaults: dict) -> dict:
    """The task's own values for the dimensions ``optimizer_space`` suggests."""
    return {f"{prefix}lr": task_defaults["lr"], f"{prefix}weight_decay": task_defaults["weight_decay"]}


def optimizer_paper_settings(prefix: str, task_defaults: dict) -> dict:
    """The stage-2 optimiser values of MoNA Tables 9 and 11 at paper scale, else nothing."""
    return optimizer_defaults(prefix, task_defaults) if is_paper_scale(task_defaults) else {}
