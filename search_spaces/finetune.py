"""Search space of the single-stage baselines (finetune, finetune++, scratch, frozen).

Only the stage-2 optimiser is searched: learning rate around the task's default (MoNA
Tables 9 and 11) and weight decay.
"""
from __future__ import annotations

from search_spaces.common import optimizer_defaults, optimizer_space


def space(trial, defaults: dict) -> dict | None:
    optimizer_space(trial, "stage2_", defaults["lr"])
    return None


def defaults(task_defaults: dict) -> dict:
    """Every dimension's default (sensitivity runs hold all but one at these)."""
    return optimizer_defaults("stage2_", task_defaults)
