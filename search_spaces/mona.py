"""Search space of ``mona``: λ, the inner loop (α, S), the stage-1 optimiser, plus stage 2.

Ranges and where they come from (MoNA, Ma et al., ICML 2024, arXiv 2406.18864):

- ``lam`` (λ of Eq. 5): uniform on [0, 1], the range of Fig. 6(a, b); the paper's best
  values lie in [0.3, 0.5]. λ = 0 is Emb's stage 1 (task loss only).
- ``alpha`` (α of Eq. 3 / Alg. 1, the virtual SGD step): log-uniform on [1e-4, 1e-1]. The
  paper gives no value. The outer loss reaches the embedder only through the term
  -λ α ∂²L_inner/∂φ∂θ · ∇L_outer, so α sets (with λ) how much it counts: at 1e-4 it is
  negligible (Emb-like), and 1e-1 is the top of MAML's usual inner-loop step sizes (Finn et
  al. 2017 use 0.01 on MiniImageNet, 0.4 on Omniglot); beyond that one plain SGD step on a
  pretrained encoder overshoots. Default 1e-2 (MAML's MiniImageNet value).
- ``inner_steps`` (S): {1, 2, 3, 5}, the steps of Fig. 6(c); the paper uses S = 1.
- ``meta_grad``: a constant, ``"exact"`` (autograd through the inner loop, any S). The modes
  compute the same gradient, so searching between them would spend trials on a numerical
  choice, not a hyperparameter. ``--set meta_grad=jvp`` (S = 1) is exact too, with no second
  backward graph (on the embedded default its peak memory is 0.8-0.95x exact's: a modest saving). ``"finite_difference"`` (S = 1,
  central differences) is only right on smooth networks and is refused on ReLU-family ones
  such as the embedded default's EfficientNet-Lite0 (measured ~44x off there).
- ``inner_loss`` (True) and ``outer_loss`` ("align_uniform"; "supcon", "davies_bouldin"):
  constants for MoNA's Table 6 ablations, e.g. ``--set inner_loss=false`` or
  ``--sensitivity outer_loss=align_uniform,supcon,davies_bouldin``.
- ``stage1_lr``: the paper uses AdamW 3e-5 on every task (§A.1). Paper scale: log-uniform on
  [3e-6, 3e-4], one decade either side of 3e-5, default 3e-5, whatever the task's stage-2 lr
  (a multiple of it would exclude 3e-5 for ECG's 1e-6). Embedded default: log-uniform on
  [0.03, 10] x the task's stage-2 lr, default 0.3x (the paper's ratio to Spherical's stage-2
  lr of 1e-4, Table 9): only 1-3 CPU epochs of stage 1, so the range reaches up to 10x, the
  factor ORCA trains its embedder at.
- ``stage1_weight_decay``: the shared weight-decay range (1e-5 .. 0.1); default 0.1 (§A.1).
- ``stage1_epochs``: paper scale 1-10, default ten (§A.1; "only 5", §4). Embedded default
  1-3, default 2: an exact MoNA step costs ~3x a plain fine-tuning step there (measured:
  EfficientNet-Lite0, 32x32, batch 32, one thread), so three stage-1 epochs already cost
  more than the six-epoch stage 2 of the mini Spherical task.
- ``source_batch_size`` (32, the paper-scale target batch of Table 9) and
  ``source_max_samples`` (5,000, ORCA's source subset; the embedded digits have 1,797) are
  constants.
"""
from __future__ import annotations

from search_spaces.common import (
    LR_SPAN,
    WEIGHT_DECAY_RANGE,
    is_paper_scale,
    optimizer_defaults,
    optimizer_paper_settings,
    optimizer_space,
)

LAM_RANGE = (0.0, 1.0)
LAM_DEFAULT = 0.5  # upper end of the paper's best range [0.3, 0.5] (Fig. 6)
ALPHA_RANGE = (1e-4, 1e-1)
ALPHA_DEFAULT = 1e-2
INNER_STEPS = (1, 2, 3, 5)  # Fig. 6(c); the paper trains with S = 1
STAGE1_WEIGHT_DECAY_DEFAULT = 0.1  # §A.1
# paper scale (§A.1): AdamW lr 3e-5 and ten epochs on every task
PAPER_STAGE1_LR = 3e-5
PAPER_STAGE1_EPOCHS = (1, 10)
PAPER_STAGE1_EPOCHS_DEFAULT = 10
# embedded default: sized for a CPU
MINI_STAGE1_LR_FACTORS = (0.03, 10.0)  # x the task's stage-2 lr
MINI_STAGE1_LR_FACTOR = 0.3  # 3e-5 / 1e-4: §A.1 vs Table 9 (Spherical)
MINI_STAGE1_EPOCHS = (1, 3)
MINI_STAGE1_EPOCHS_DEFAULT = 2
CONSTANTS = {"meta_grad": "exact", "inner_loss": True, "outer_loss": "align_uniform",
             "source_batch_size": 32, "source_max_samples": 5000}
ALIASES = {"lambda": "lam", "inner_lr": "alpha"}


def space(trial, defaults: dict) -> dict | None:
    """Suggest MoNA's dimensions on ``trial``; returns the constant keys.

    Args:
        trial: an Optuna trial (define-by-run).
        defaults: ``tuner.spec.space_defaults`` (the task's stage-2 values and its scale).
    """
    optimizer_space(trial, "stage2_", defaults)
    trial.suggest_float("lam", *LAM_RANGE)
    trial.suggest_float("alpha", *ALPHA_RANGE, log=True)
    trial.suggest_categorical("inner_steps", INNER_STEPS)
    trial.suggest_float("stage1_lr", *stage1_lr_range(defaults), log=True)
    trial.suggest_float("stage1_weight_decay", *WEIGHT_DECAY_RANGE, log=True)
    trial.suggest_int("stage1_epochs", *stage1_epochs_range(defaults))
    return dict(CONSTANTS)


def stage1_lr_range(defaults: dict) -> tuple[float, float]:
    if is_paper_scale(defaults):
        return PAPER_STAGE1_LR / LR_SPAN, PAPER_STAGE1_LR * LR_SPAN
    low, high = MINI_STAGE1_LR_FACTORS
    return defaults["lr"] * low, defaults["lr"] * high


def stage1_epochs_range(defaults: dict) -> tuple[int, int]:
    return PAPER_STAGE1_EPOCHS if is_paper_scale(defaults) else MINI_STAGE1_EPOCHS


def paper_settings(task_defaults: dict) -> dict:
    """The paper's values (§A.1, Tables 9/11, S = 1) at paper scale; {} at the embedded default."""
    if not is_paper_scale(task_defaults):
        return {}
    return {**optimizer_paper_settings("stage2_", task_defaults), "inner_steps": 1,
            "stage1_lr": PAPER_STAGE1_LR, "stage1_weight_decay": STAGE1_WEIGHT_DECAY_DEFAULT,
            "stage1_epochs": PAPER_STAGE1_EPOCHS_DEFAULT}


def defaults(task_defaults: dict) -> dict:
    """Every dimension's default (sensitivity runs hold all but one at these)."""
    paper = is_paper_scale(task_defaults)
    return {
        **optimizer_defaults("stage2_", task_defaults),
        "lam": LAM_DEFAULT, "alpha": ALPHA_DEFAULT, "inner_steps": INNER_STEPS[0],
        "stage1_lr": PAPER_STAGE1_LR if paper else task_defaults["lr"] * MINI_STAGE1_LR_FACTOR,
        "stage1_weight_decay": STAGE1_WEIGHT_DECAY_DEFAULT,
        "stage1_epochs": PAPER_STAGE1_EPOCHS_DEFAULT if paper else MINI_STAGE1_EPOCHS_DEFAULT,
    }
