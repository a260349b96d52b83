"""Task data containers and the validation split shared by every task.

Loaders return a ``RawTask`` (train and test as published); ``carve_validation`` turns it
into a ``TaskData`` with a validation split taken from the training data. Model selection
and ASHA use the validation split; the test split is scored once, at the end of a trial.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainables.registry import SCALES, TASKS

SCALE_NOT_AVAILABLE = (
    "Task {task!r} has no scale {scale!r}. Valid scales: {valid}{why}. Fix: pass {fix}."
)
NO_MINI = " (it has no embedded mini variant: it reads its published files, see --data-dir)"


@dataclass(frozen=True)
class RawTask:
    """Arrays as a loader read or generated them.

    ``x_*``: float32 (N, C, H, W) for 2D tasks or (N, C, L) for 1D tasks.
    ``y_*``: int64 (N,) class indices for classification, float32 arrays for dense targets.
    ``y_*``: float32 (N, K) multi-hot for multi-label tasks.
    ``source``: where the data came from, e.g. ``"file:s2_cifar100.gz"`` or
    ``"generated:spherical-mnist(b=16,seed=0)"``; it is stored with every result.
    ``y_mean``/``y_std``: set when a loader standardised dense targets as (y - mean) / std
    (ORCA's ``UnitGaussianNormalizer`` for Darcy flow): the model trains on standardised
    targets, metrics see de-normalised ones (``denormalize``). Broadcastable to one target.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_outputs: int
    source: str
    y_mean: np.ndarray | None = None
    y_std: np.ndarray | None = None


@dataclass(frozen=True)
class TaskData(RawTask):
    """A ``RawTask`` whose training data gave up a validation split, ``x_val``/``y_val``
    (``carve_validation``); model selection and ASHA use it, the test split is scored once."""

    x_val: np.ndarray = field(kw_only=True)
    y_val: np.ndarray = field(kw_only=True)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def carve_validation(raw: RawTask, fraction: float, seed: int) -> TaskData:
    """Split ``fraction`` of the training data off as a validation set (seeded permutation).

    Raises:
        ValueError: if ``fraction`` is not in (0, 1) or leaves an empty split.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    n = len(raw.x_train)
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"val_fraction={fraction} of {n} training samples leaves an empty split")
    perm = np.random.default_rng(seed).permutation(n)
    val, train = perm[:n_val], perm[n_val:]
    return TaskData(
        x_train=raw.x_train[train], y_train=raw.y_train[train],
        x_val=raw.x_train[val], y_val=raw.y_train[val],
        x_test=raw.x_test, y_test=raw.y_test,
        num_outputs=raw.num_outputs, source=raw.source, y_mean=raw.y_mean, y_std=raw.y_std,
    )


def denormalize(y: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    """Undo a loader's target standardisation (identity when it did none).

    >>> denormalize(np.array([[0.0, 1.0]]), np.array([1.0, 1.0]), np.array([2.0, 2.0]))
    array([[1., 3.]])
    """
    if std is None:
        return y
    return y * std + mean


def task_scales(task: str) -> tuple[str, ...]:
    """The scales task ``task`` has: "paper" always, "mini" when its ``TaskSpec.has_mini``."""
    has_mini = TASKS.get(task).has_mini
    return tuple(s for s in SCALES if s == "paper" or has_mini)


def require_scale(task: str, scale: str) -> None:
    """Refuse a scale task ``task`` does not have; every loader calls this first.

    Raises:
        ValueError: naming the task, the scale, the task's valid scales and the fix.
    """
    valid = task_scales(task)
    if scale not in valid:
        why = "" if "mini" in valid else NO_MINI
        fix = " or ".join(f"--scale {s}" for s in valid)
        raise ValueError(SCALE_NOT_AVAILABLE.format(task=task, scale=scale, valid=", ".join(valid),
                                                    why=why, fix=fix))


def load_task(name: str, data_root, scale: str, data_seed: int, val_fraction: float) -> TaskData:
    """Read (or generate) task ``name`` at ``scale`` and carve its validation split."""
    from trainables.registry import get_task

    raw = get_task(name).loader(data_root, scale, data_seed)
    return carve_validation(raw, val_fraction, data_seed)
