"""Search space of ``emb``: stage-1 (embedder warm-up) epochs and learning rate, plus stage 2.

Stage-1 lr spans the same decade either side as stage 2, around 10x the task's stage-2
default (the embedder is new and small; ORCA also trains it at 10x). Epochs 1-4 keep the
embedded default's trials short on a CPU.
"""
from __future__ import annotations

from search_spaces.common import LR_SPAN, optimizer_defaults, optimizer_paper_settings, optimizer_space

STAGE1_EPOCHS = (1, 4)
STAGE1_LR_FACTOR = 10.0
STAGE1_EPOCHS_DEFAULT = 2


def space(trial, defaults: dict) -> dict | None:
    optimizer_space(trial, "stage2_", defaults)
    center = defaults["lr"] * STAGE1_LR_FACTOR
    trial.suggest_float("stage1_lr", center / LR_SPAN, center * LR_SPAN, log=True)
    trial.suggest_int("stage1_epochs", *STAGE1_EPOCHS)
    return None


def defaults(task_defaults: dict) -> dict:
    """Every dimension's default (sensitivity runs hold all but one at these)."""
    return {**optimizer_defaults("stage2_", task_defaults),
            "stage1_lr": task_defaults["lr"] * STAGE1_LR_FACTOR, "stage1_epochs": STAGE1_EPOCHS_DEFAULT}


def paper_settings(task_defaults: dict) -> dict:
    """The stage-2 values of Tables 9 and 11 at paper scale ({} at the embedded default)."""
    return optimizer_paper_settings("stage2_", task_defaults)
