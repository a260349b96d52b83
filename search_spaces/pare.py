"""Search space of ``pare``: the k curriculum, the relaxed top-k warm-up, plus stage 2.

PaRe (Cai et al., "Enhancing Cross-Modal Fine-Tuning with Gradually Intermediate Modality
Generation", ICML 2024, arXiv 2406.09003). Defaults are the public code's values
(BIT-DA/PaRe at 7d2d0fc4: ``src/configs/spherical_PaRe.yaml`` and ``src/main_PaRe.py``; 1-D
tasks at paper scale ``src/main_PaRe_1d.py`` and ``src/configs/{ecg,satellite,deepsea}_PaRe.yaml``):

- ``k_schedule``: {linear, exponential, cosine, step}. The public code decreases k linearly
  (``k = int(begin_num - end_num * ep / epochs)``); the other three are our additions (the
  paper's curriculum ablation compares decay shapes). Default ``linear``.
- ``k_start`` (fraction of the N target tokens replaced at the first epoch): uniform on
  [0.5, 0.95]; default 2000/3136 ≈ 0.638 (``begin_num`` = 2000 of Swin-B's 56x56 = 3136).
- ``k_end`` (fraction replaced at the last epoch): uniform on [0.02, 0.5]; default
  500/3136 ≈ 0.159 (``begin_num - end_num`` = 2000 - 1500, the value the public line
  ``int(begin_num - end_num * ep / epochs)`` reaches at ep = epochs).
- 1-D tasks at paper scale (``main_PaRe_1d.py``, run for every 1-D task, lines 190 and 226):
  ``k = int(seq_num - seq_num * ep / epochs)`` with ``seq_num: 32`` in all three 1-D configs
  (ECG, Satellite, DeepSEA): k starts at all 32 tokens of a source sequence
  (``text_xs_32.npy``), not at the target's N, and falls to 0 (the value at ep = epochs);
  λ_k = k / N with N the *target's* token count. As a fraction of N: ``k_start`` = 32 / N
  of the public run (ECG 32/50 = 0.64, Satellite 32/46 ≈ 0.696, DeepSEA 32/500 = 0.064;
  ``PUBLIC_1D_TOKENS``) and ``k_end`` = 0 for every 1-D task; 1-D tasks the public code
  never ran have no paper ``k_start`` (default 2000/3136 as 2-D). Ranges: ``k_start`` on
  [min(0.5, paper k_start), 1] (1 = all N tokens), ``k_end`` on [0, min(0.5, paper k_start)].
- The ``k_start`` and ``k_end`` ranges are disjoint so that every sample has
  ``k_end <= k_start`` (k only falls: the curriculum goes from source-like to target-like
  data) with bounds fixed per task (no define-by-run bounds); the 2-D lower bound is above
  0 because the exponential schedule interpolates geometrically (which refuses k_end = 0;
  at the 1-D paper default k_end = 0 pick another schedule or a positive k_end).
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
# main_PaRe_1d.py at paper scale: k = int(seq_num - seq_num * ep / epochs), seq_num: 32 (the
# source sequences' length, text_xs_32.npy) in ecg/satellite/deepsea_PaRe.yaml; falls to 0
PUBLIC_SEQ_NUM = 32
# N target tokens of those runs: Embeddings1D.get_stack_num(L, target_seq_len) (embedder_mix_PaRe.py)
# with the configs' target_seq_len: ECG 1000 / 20 = 50 (64); Satellite 46 (512); DeepSEA 1000 / 2 = 500 (512)
PUBLIC_1D_TOKENS = {"ecg": 50, "satellite": 46, "deepsea": 500}
K_START_RANGE_1D = (0.5, 1.0)  # 1.0: all N target tokens replaced
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


def public_1d_k_start(defaults: dict) -> float | None:
    """32 / N: the public 1-D runs' first-epoch k as a fraction of their N target tokens;
    None for tasks ``main_PaRe_1d.py`` never ran (N unknown)."""
    n = PUBLIC_1D_TOKENS.get(defaults["task"])
    return None if n is None else PUBLIC_SEQ_NUM / n


def _k_ranges(defaults: dict) -> tuple[tuple[float, float], tuple[float, float]]:
    """(k_start range, k_end range), disjoint so that k_end <= k_start; 1-D paper ranges hold
    the public k_start (DeepSEA's 0.064 lowers the split between them)."""
    if not _one_d_paper(defaults):
        return K_START_RANGE, K_END_RANGE
    public = public_1d_k_start(defaults)
    split = K_END_RANGE_1D[1] if public is None else min(K_END_RANGE_1D[1], public)
    return (split, K_START_RANGE_1D[1]), (K_END_RANGE_1D[0], split)


def space(trial, defaults: dict) -> dict | None:
    """Suggest PaRe's dimensions on ``trial``; returns the constant keys.

    Args:
        trial: an Optuna trial (define-by-run).
        defaults: ``tuner.spec.space_defaults`` (the task's stage-2 values, modality and scale).
    """
    start_range, end_range = _k_ranges(defaults)
    optimizer_space(trial, "stage2_", defaults)
    trial.suggest_categorical("k_schedule", K_SCHEDULES)
    trial.suggest_float("k_start", *start_range)
    trial.suggest_float("k_end", *end_range)
    trial.suggest_int("warmup_epochs", 0, _warmup(defaults)[1])
    trial.suggest_float("tau", *TAU_RANGE, log=True)
    return dict(CONSTANTS)


def paper_settings(task_defaults: dict) -> dict:
    """The public code's values at paper scale ({} at the embedded default)."""
    if not is_paper_scale(task_defaults):
        return {}
    settings = {**optimizer_paper_settings("stage2_", task_defaults), **_curriculum(task_defaults)}
    if _one_d_paper(task_defaults) and public_1d_k_start(task_defaults) is None:
        del settings["k_start"]  # 32 tokens of an N the public code never had
    return settings


def _curriculum(task_defaults: dict) -> dict:
    k_start, k_end = K_START_DEFAULT, K_END_DEFAULT
    if _one_d_paper(task_defaults):
        k_start, k_end = public_1d_k_start(task_defaults) or K_START_DEFAULT, K_END_1D
    return {"k_schedule": "linear", "k_start": k_start, "k_end": k_end,
            "warmup_epochs": _warmup(task_defaults)[0], "tau": TAU_DEFAULT}


def defaults(task_defaults: dict) -> dict:
    """Every dimension's default (sensitivity runs hold all but one at these)."""
    return {**optimizer_defaults("stage2_", task_defaults), **_curriculum(task_defaults)}
