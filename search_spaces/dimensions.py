"""What a method's search space offers, computed from its registry entry and a task's defaults:
the space's inputs (``space_defaults``), every settable dimension with its default
(``space_dimensions``) and the searched dimensions' Optuna distributions
(``space_distributions``). Used by ``tuner.spec`` (validation), ``tuner.plot`` (log axes) and
``tuner.report`` (which values are defaults); imports Optuna only, so plots and reports stay
free of torch and Ray.
"""
from __future__ import annotations

from dataclasses import asdict

import optuna

SPACE_PROBES = 16  # random trials run through a space: enough to take each conditional branch


def space_defaults(task, scale: str) -> dict:
    """What a method's space is built from: ``task``'s (a ``TaskSpec``) stage-2 defaults at
    ``scale`` (Tables 9 and 11 at paper scale, the embedded variant's at mini) plus ``task``,
    ``modality`` and ``scale``, on which paper-scale ranges depend (``search_spaces/__init__.py``)."""
    return {**asdict(task.defaults_at(scale)), "task": task.name, "modality": task.modality, "scale": scale}


def space_dimensions(method, defaults: dict) -> dict:
    """Every name ``--set``, ``--sensitivity`` and ``--space`` accept, with its default value:
    the method's constants (``embedder_init`` ...), the constants its space returns (MoNA's
    ``meta_grad`` ...) and its searched dimensions (``defaults()``)."""
    dims = method.defaults(defaults)
    returned = method.space(optuna.trial.FixedTrial(dims), defaults=defaults) or {}
    return {**method.constants, **returned, **dims}


def space_distributions(method, task_defaults: dict, probes: int = SPACE_PROBES
                        ) -> dict[str, optuna.distributions.BaseDistribution]:
    """The searched dimensions' Optuna distributions. The space is define-by-run, so it is run
    on ``probes`` random trials of an in-memory study; a conditional dimension shows up on the
    trials that take its branch."""
    found = {}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line per call
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(probes):
            trial = study.ask()
            method.space(trial, defaults=task_defaults)
            found.update(trial.distributions)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return found


def describe_distribution(dist) -> str:
    """``log-uniform [0.0001, 0.01]``, ``integers [1, 5]``, ``one of (1, 2, 3, 5)``."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return f"one of {tuple(dist.choices)}"
    kind = "integers" if isinstance(dist, optuna.distributions.IntDistribution) else "uniform"
    return f"{'log-' if dist.log else ''}{kind} [{dist.low:g}, {dist.high:g}]"
