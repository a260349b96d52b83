"""Complete trial configs for tests: the sweep's constants plus one sample of a method's space."""
from __future__ import annotations

from pathlib import Path

import optuna

from trainables.registry import get_method
from tuner.spec import SweepSpec

TOY = dict(task="test_toy_task", scale="mini", backbone="test_efficientnet", init="random")


def sample_config(method: str, data_dir: Path, seed: int = 0, **spec_kwargs) -> dict:
    """A full config for ``method`` on the toy task and tiny backbone (override via spec_kwargs)."""
    spec_kwargs = {"storage": str(data_dir), **spec_kwargs}  # the stage-1 cache lives under the storage
    resolved = SweepSpec(method=method, data_dir=str(data_dir), seed=seed, **{**TOY, **spec_kwargs}).resolve()
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
    extra = get_method(method).space(trial, defaults=resolved.defaults) or {}
    return {**resolved.trial_constants(), **trial.params, **extra}
