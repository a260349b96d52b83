"""Search space of ``orca``: stage-1 (OTDD alignment) optimiser and length, OT solver, plus stage 2.

Ranges and where they come from (ORCA, Shen et al., ICML 2023, arXiv 2302.05738; public code
sjunhongshen/ORCA):

- ``stage1_lr``: ORCA trains the embedder at 10x the stage-2 lr when that is <= 1e-3, else at
  the stage-2 lr (``get_optimizer_scheduler(..., module='embedder')``); that is the default,
  and the range is log-uniform over one decade either side of it.
- ``stage1_epochs``: ORCA takes one optimiser step per stage-1 "epoch", 60 of them
  (``embedder_epochs: 60``; 100 for NinaPro). Paper scale searches 20-200 steps, default
  ORCA's value for the task. On a CPU each step also pays the validation pass the base
  trainable makes after every step, so the embedded default searches 4-20 steps
  (default 10): measured on the embedded default (EfficientNet-Lite0, Spherical MNIST, 10
  classes x 128 targets, 1,797 digits, exact OT) a step takes ~1.0 s plus a 0.56 s validation
  pass, against ~10 s per stage-2 epoch.
- ``ot_solver``: "emd" (exact OT, the default: DESIGN §4 measured it within 0.2% of ORCA's
  value) or "sinkhorn" (ORCA's debiased Sinkhorn divergence).
- ``ot_reg``: conditional, suggested only for "sinkhorn": relative ε (x the source features'
  total variance, see ``trainables.ot.otdd``), log-uniform on [0.03, 1], default 0.1. POT's
  Sinkhorn needs ~C/ε iterations: on the embedded default (EfficientNet-Lite0 stem features,
  cost spread ~16 against a source variance of 0.17) one class's outer problem takes 160
  iterations at 0.1, 1,550 at 0.01 and 16,480 at 0.001, so smaller values cost minutes per
  step on a CPU. How far Sinkhorn sits from exact OT depends on the data: there, one class's
  entropic cost is 0.3% above exact OT at 0.1; on synthetic ORCA-size clouds the debiased
  divergence is 39% / 15% / 3% below it at 0.1 / 0.03 / 0.01. For "emd" it is
  the constant 0.1 (unused; the key must always be present).
- Constants: ``source_samples`` 5,000 (ORCA's ``maxsize=5000`` source subset; the embedded
  digits have 1,797), ``target_samples_per_class`` 128 (ORCA's ``maxsamples``) and
  ``num_pseudo_labels`` 10 (ORCA's k-means k for regression/dense targets).
"""
from __future__ import annotations

from search_spaces.common import (
    LR_SPAN,
    is_paper_scale,
    optimizer_defaults,
    optimizer_paper_settings,
    optimizer_space,
)

STAGE1_LR_FACTOR = 10.0  # ORCA: embedder lr = 10 x the stage-2 lr ...
STAGE1_LR_FACTOR_BELOW = 1e-3  # ... when the stage-2 lr is at most this
PAPER_STAGE1_EPOCHS = (20, 200)  # optimiser steps
PAPER_STAGE1_EPOCHS_DEFAULT = 60  # embedder_epochs in ORCA's task configs ...
PAPER_STAGE1_EPOCHS_BY_TASK = {"ninapro": 100}  # ... except these
MINI_STAGE1_EPOCHS = (4, 20)
MINI_STAGE1_EPOCHS_DEFAULT = 10
OT_SOLVERS = ("emd", "sinkhorn")
OT_REG_RANGE = (0.03, 1.0)  # relative ε, "sinkhorn" only
OT_REG_DEFAULT = 0.1
CONSTANTS = {"source_samples": 5000, "target_samples_per_class": 128, "num_pseudo_labels": 10}


def embedder_lr(stage2_lr: float) -> float:
    """ORCA's stage-1 embedder lr for a stage-2 lr (``get_optimizer_scheduler``)."""
    return stage2_lr * STAGE1_LR_FACTOR if stage2_lr <= STAGE1_LR_FACTOR_BELOW else stage2_lr


def space(trial, defaults: dict) -> dict | None:
    """Suggest ORCA's dimensions on ``trial``; returns the constant (and unsuggested) keys.

    Args:
        trial: an Optuna trial (define-by-run).
        defaults: ``tuner.spec.space_defaults`` (the task's stage-2 values and its scale).
    """
    optimizer_space(trial, "stage2_", defaults)
    center = embedder_lr(defaults["lr"])
    trial.suggest_float("stage1_lr", center / LR_SPAN, center * LR_SPAN, log=True)
    trial.suggest_int("stage1_epochs", *(PAPER_STAGE1_EPOCHS if is_paper_scale(defaults) else MINI_STAGE1_EPOCHS))
    solver = trial.suggest_categorical("ot_solver", OT_SOLVERS)
    constants = dict(CONSTANTS)
    if solver == "sinkhorn":
        trial.suggest_float("ot_reg", *OT_REG_RANGE, log=True)
    else:
        constants["ot_reg"] = OT_REG_DEFAULT
    return constants


def stage1_epochs_default(task_defaults: dict) -> int:
    if not is_paper_scale(task_defaults):
        return MINI_STAGE1_EPOCHS_DEFAULT
    return PAPER_STAGE1_EPOCHS_BY_TASK.get(task_defaults["task"], PAPER_STAGE1_EPOCHS_DEFAULT)


def paper_settings(task_defaults: dict) -> dict:
    """ORCA's values (its task configs and code) at paper scale; {} at the embedded default."""
    if not is_paper_scale(task_defaults):
        return {}
    return {**optimizer_paper_settings("stage2_", task_defaults), "stage1_lr": embedder_lr(task_defaults["lr"]),
            "stage1_epochs": stage1_epochs_default(task_defaults)}


def defaults(task_defaults: dict) -> dict:
    """Every config key this space produces, at its default (sensitivity runs hold these)."""
    return {
        **optimizer_defaults("stage2_", task_defaults),
        "stage1_lr": embedder_lr(task_defaults["lr"]), "stage1_epochs": stage1_epochs_default(task_defaults),
        "ot_solver": OT_SOLVERS[0], "ot_reg": OT_REG_DEFAULT, **CONSTANTS,
    }
