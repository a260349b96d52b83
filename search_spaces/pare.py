"""Search space of ``pare``: the k curriculum, the relaxed top-k warm-up, plus stage 2.

PaRe (Cai et al., "Enhancing Cross-Modal Fine-Tuning with Gradually Intermediate Modality
Generation", ICML 2024, arXiv 2406.09003). Defaults are the public code's values
(BIT-DA/PaRe ``src/configs/spherical_PaRe.yaml`` and ``src/main_PaRe.py``):

- ``k_schedule``: {linear, exponential, cosine, step}. The public code decreases k linearly
  (``k = int(begin_num - end_num * ep / epochs)``); the other three are our additions (the
  paper's curriculum ablation compares decay shapes). Default ``linear``.
- ``k_start`` (fraction of the N tokens replaced at the first epoch): uniform on
  [0.5, 0.95]; default 2000/3136 ≈ 0.638 (``begin_num`` = 2000 of Swin-B's 56x56 = 3136).
- ``k_end`` (fraction replaced at the last epoch): uniform on [0.02, 0.5]; default
  500/3136 ≈ 0.159 (``begin_num - end_num`` = 2000 - 1500). The two ranges are disjoint so
  that every sample has ``k_end <= k_start`` (k only falls: the curriculum goes from
  source-like to target-like data) with fixed distributions (no define-by-run bounds); the
  lower bound is above 0 because the exponential schedule interpolates geometrically.
- ``warmup_epochs`` (epochs of relaxed Gumbel top-k before hard top-k): the public code
  hard-codes 10 of 60 epochs for 2D tasks (5 for 1D); the default keeps that ratio of the
  task's epochs (at least 1) and the range is [0, half the task's epochs].
- ``tau`` (Gumbel-softmax temperature): public 0.9 (fixed); log-uniform on [0.1, 3].
- ``source_batch_size`` (0 = one source image per target image, as the public code's
  equal-size loaders) and ``source_max_samples`` (5,000, the public ``maxsize=5000``) are
  constants.
"""
from __future__ import annotations

from search_spaces.common import optimizer_defaults, optimizer_space

K_SCHEDULES = ("linear", "exponential", "cosine", "step")
PUBLIC_TOKENS = 3136  # Swin-B stem on 224x224: 56 x 56 tokens
K_START_RANGE = (0.5, 0.95)
K_END_RANGE = (0.02, 0.5)
K_START_DEFAULT = 2000 / PUBLIC_TOKENS  # begin_num
K_END_DEFAULT = 500 / PUBLIC_TOKENS  # begin_num - end_num
WARMUP_RATIO = 10 / 60  # `if ep < 10` of 60 epochs (main_PaRe.py, spherical_PaRe.yaml)
TAU_RANGE = (0.1, 3.0)
TAU_DEFAULT = 0.9  # SubsetOperator(k, tau=0.9, hard=True)
CONSTANTS = {"source_batch_size": 0, "source_max_samples": 5000}


def warmup_default(epochs: int) -> int:
    """The public warm-up ratio (10 of 60 epochs) applied to ``epochs``, at least 1."""
    return max(1, round(epochs * WARMUP_RATIO))


def space(trial, defaults: dict) -> dict | None:
    """Suggest PaRe's dimensions on ``trial``; returns the constant keys.

    Args:
        trial: an Optuna trial (define-by-run).
        defaults: the task's stage-2 defaults (``lr`` and ``epochs`` are used).
    """
    optimizer_space(trial, "stage2_", defaults)
    trial.suggest_categorical("k_schedule", K_SCHEDULES)
    trial.suggest_float("k_start", *K_START_RANGE)
    trial.suggest_float("k_end", *K_END_RANGE)
    trial.suggest_int("warmup_epochs", 0, max(1, defaults["epochs"] // 2))
    trial.suggest_float("tau", *TAU_RANGE, log=True)
    return dict(CONSTANTS)


def defaults(task_defaults: dict) -> dict:
    """Every dimension's default (sensitivity runs hold all but one at these)."""
    return {
        **optimizer_defaults("stage2_", task_defaults),
        "k_schedule": "linear", "k_start": K_START_DEFAULT, "k_end": K_END_DEFAULT,
        "warmup_epochs": warmup_default(task_defaults["epochs"]), "tau": TAU_DEFAULT,
    }
