"""At paper scale every method's space contains the papers' settings and defaults to them."""
from __future__ import annotations

import pytest

from trainables.registry import get_method, get_task, list_methods, list_tasks
from tuner.spec import space_defaults


class RecordingTrial:
    """An Optuna-like trial that answers every ``suggest_*`` with the dimension's default and
    records the range (or choices) it was offered."""

    def __init__(self, answers: dict):
        self.answers, self.offered = answers, {}

    def suggest_float(self, name, low, high, log=False, step=None):
        self.offered[name] = ("range", low, high)
        return self.answers[name]

    def suggest_int(self, name, low, high, log=False, step=1):
        self.offered[name] = ("range", low, high)
        return self.answers[name]

    def suggest_categorical(self, name, choices):
        self.offered[name] = ("choices", tuple(choices))
        return self.answers[name]


def offered(kind_range, value) -> bool:
    if kind_range[0] == "choices":
        return value in kind_range[1]
    _, low, high = kind_range
    return low <= value <= high or abs(value - low) <= 1e-12 * abs(low) or abs(value - high) <= 1e-12 * abs(high)


@pytest.mark.parametrize("method", list_methods())
@pytest.mark.parametrize("task", list_tasks())
def test_paper_values_are_the_defaults_and_inside_the_searched_ranges(task, method):
    spec = get_method(method)
    task_defaults = space_defaults(get_task(task), "paper")
    paper = spec.paper_settings(task_defaults)
    assert {"stage2_lr", "stage2_weight_decay"} <= set(paper)  # Tables 9 and 11 at least
    dims = spec.defaults(task_defaults)
    trial = RecordingTrial(dims)
    returned = spec.space(trial, defaults=task_defaults) or {}
    for key, value in paper.items():
        assert dims[key] == value, f"{method} on {task}: default {key}={dims[key]}, paper {value}"
        if key in trial.offered:
            assert offered(trial.offered[key], value), f"{method} on {task}: {key}={value} not in {trial.offered[key]}"
        else:  # a constant of the space
            assert returned.get(key) == value, f"{method} on {task}: {key} neither searched nor returned"


@pytest.mark.parametrize("method", list_methods())
def test_the_embedded_default_has_no_paper_settings(method):
    assert get_method(method).paper_settings(space_defaults(get_task("spherical"), "mini")) == {}


def test_paper_values_by_hand():
    """The values the issue names, spelled out: MoNA §A.1 and ORCA's embedder_epochs."""
    mona, orca = (get_method(m) for m in ("mona", "orca"))
    for task in ("spherical", "ecg", "darcyflow"):
        d = mona.defaults(space_defaults(get_task(task), "paper"))
        assert (d["stage1_lr"], d["stage1_weight_decay"], d["stage1_epochs"]) == (3e-5, 0.1, 10)
    assert orca.defaults(space_defaults(get_task("spherical"), "paper"))["stage1_epochs"] == 60
    assert orca.defaults(space_defaults(get_task("ninapro"), "paper"))["stage1_epochs"] == 100
