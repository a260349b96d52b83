"""Search space of ``pare``: the k curriculum, the relaxed top-k warm-up, plus stage 2.

PaRe (Cai et al., "Enhancing Cross-Modal Fine-Tuning with Gradually Intermediate Modality
Generation", ICML 2024, arXiv 2406.09003). Defaults are the public code's values
(BIT-DA/PaRe ``src/configs/spherical_PaRe.yaml`` and ``src/main_PaRe.py``):

- ``k_schedule``: {linear, exponential, cosine, step}. The public code decreases k linearly
  (``k = int(begin_num - end_num * ep / epochs)``); the other three are our additions (the
  paper's curriculum ablation compares decay shapes). Default ``linear``.
- ``k_start`` (fraction of the N tokens replaced at the first epoch): uniform on
  [0.5, 0.95]; default 2000/3136 ≈ 0.638 (``begin_num`` = 2000 of Swin-B's 56x56 = 3136).
  1-D tasks at paper scale: [0.5, 1], default 1 (``main_PaRe_1d.py``:
  ``coefficient = int(seq_num - seq_num * ep / epochs)``, all N tokens at the first epoch).
- ``k_end`` (fraction replaced at the last epoch): uniform on [0.02, 0.5]; default
  500/3136 ≈ 0.159 (``begin_num - end_num`` = 2000 - 1500). 1-D tasks at paper scale:
  [0, 0.5], default 0 (the 1-D schedule falls towards 0). The two ranges are disjoint so
  that every sample has ``k_end <= k_start`` (k only falls: the curriculum goes from
  source-like to target-like data) with fixed distributions (no define-by-run bounds); the
  2-D lower bound is above 0 because the exponential schedule interpolates geometrically
  (which refuses k_end = 0).
- ``warmup_epochs`` (epochs of relaxed Gumbel top-k before hard top-k): the public code
  hard-codes 10 epochs for 2D tasks (``if ep < 10``, of spherical's 60) and 5 for 1D
  (``main_PaRe_1d.py``: ``if ep < 5``). Paper scale: that value (at most the task's epochs),
  range [0, max(that, half the task's epochs)]. Embedded default: the 2-D ratio (10 of 60)
  of the task's epochs (at least 1), range [0, half the task's epochs].
- ``tau`` (Gumbel-softmax temperature): public 0.9 (fixed); log-uniform on [0.1, 3].
- ``source_batch_size`` (0 = one source image per target image, as the public code's
  equal-size loaders) and ``source_max_samples`` (5,000, the public ``maxsize=5000``) are
  constants.
"""
from __future__ import annotations

from search_spaces.common import (
    is_paper_scale,
    optimizer_defaults,
    optimizer_paper_settings,
    optimizer_space,
)

K_SCHEDULES = ("linear", "exponential", "cosine", "step")
PUBLIC_TOKENS = 3136  # Swin-B stem on 224x224: 56 x 56 tokens
K_START_RANGE = (0.5, 0.95)
K_END_RANGE = (0.02, 0.5)
K_START_DEFAULT = 2000 / PUBLIC_TOKENS  # begin_num
K_END_DEFAULT = 500 / PUBLIC_TOKENS  # begin_num - end_num
# main_PaRe_1d.py at paper scale: k from all N tokens down towards 0
K_START_RANGE_1D, K_START_1D = (0.5, 1.0), 1.0
K_END_RANGE_1D, K_END_1D = (0.0, 0.5), 0.0
WARMUP_RATIO = 10 / 60  # `if ep < 10` of 60 epochs (main_PaRe.py, spherical_PaRe.yaml)
PUBLIC_WARMUP = {"2d": 10, "1d": 5}  # `if ep < 10` (main_PaRe.py), `if ep < 5` (main_PaRe_1d.py)
TAU_RANGE = (0.1, 3.0)
TAU_DEFAULT = 0.9  # SubsetOperator(k, tau=0.9, hard=True)
CONSTANTS = {"source_batch_size": 0, "source_max_samples": 5000}


def warmup_default(epochs: int) -> int:
    """The public warm-up ratio (10 of 60 epochs) applied to ``epochs``, at least 1."""
    return max(1, round(epochs * WARMUP_RATIO))


def _one_d_paper(defaults: dict) -> bool:
    return is_paper_scale(defaults) and defaults["modality"] == "1d"


def _warmup(defaults: dict) -> tuple[int, int]:
    """(default, highest searched) warm-up epochs."""
    epochs = defaults["epochs"]
    if is_paper_scale(defaults):
        public = min(PUBLIC_WARMUP[defaults["modality"]], epochs)
        return public, max(public, epochs // 2)
    return warmup_default(epochs), max(1, epochs // 2)


def space(trial, defaults: dict) -> dict | None:
    """Suggest PaRe's dimensions on ``trial``; returns the constant keys.

    Args:
        trial: an Optuna trial (define-by-run).
        defaults: ``tuner.spec.space_defaults`` (the task's stage-2 values, modality and scale).
    """
    one_d = _one_d_paper(defaults)
    optimizer_space(trial, "stage2_", defaults)
    trial.suggest_categorical("k_schedule", K_SCHEDULES)
    trial.suggest_float("k_start", *(K_START_RANGE_1D if one_d else K_START_RANGE))
    trial.suggest_float("k_end", *(K_END_RANGE_1D if one_d else K_END_RANGE))
    trial.suggest_int("warmup_epochs", 0, _warmup(defaults)[1])
    trial.suggest_float("tau", *TAU_RANGE, log=True)
    return dict(CONSTANTS)


def paper_settings(task_defaults: dict) -> dict:
    """The public code's values at paper scale ({} at the embedded default)."""
    if not is_paper_scale(task_defaults):
        return {}
    return {**optimizer_paper_settings("stage2_", task_defaults), **_curriculum(task_defaults)}


def _curriculum(task_defaults: dict) -> dict:
    one_d = _one_d_paper(task_defaults)
    return {"k_schedule": "linear", "k_start": K_START_1D if one_d else K_START_DEFAULT,
            "k_end": K_END_1D if one_d else K_END_DEFAULT, "warmup_epochs": _warmup(task_defaults)[0],
            "tau": TAU_DEFAULT}


def defaults(task_defaults: dict) -> dict:
    """Every dimension's default (sensitivity runs hold all but one at these)."""
    return {**optimizer_defaults("stage2_", task_defaults), **_curriculum(task_defaults)}
