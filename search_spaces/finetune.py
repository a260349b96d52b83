"""Search space of the single-stage baselines (finetune, finetune++, scratch, frozen).

Only the stage-2 optimiser is searched: learning rate around the task's default (MoNA
Tables 9 and 11) and weight decay.
"""
from __future__ import annotations

from search_spaces.common import optimizer_defaults, optimizer_paper_settings, optimizer_space


def space(trial, defaults: dict) -> dict | None:
    optimizer_space(trial, "stage2_", defaults)
    return None


def defaults(task_defaults: dict) -> dict:
    """Every dimension's default (sensitivity runs hold all but one at these)."""
    return optimizer_defaults("stage2_", task_defaults)


def paper_settings(task_defaults: dict) -> dict:
    """The stage-2 values of Tables 9 and 11 at paper scale ({} at the embedded default)."""
    return optimizer_paper_settings("stage2_", task_defaults)
