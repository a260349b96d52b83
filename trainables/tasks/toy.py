"""Tiny synthetic tasks for tests (hidden from the CLI): fast, offline, learnable.

``test_toy_task``: 1x32x32 images, 4 classes; class c lights up quadrant c (plus noise).
``test_toy_dense``: 1x32x32 inputs, the target is the input shifted by one pixel (dense).
``test_toy_1d``: (C=2, L=64) series, 4 classes; class c is a sine of c + 1 periods in channel 0
(plus noise; channel 1 is noise).
``test_toy_1d_dense``: (2, 64) noise inputs, the target (1, 64) is channel 0 shifted by one step.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from trainables.registry import TaskDefaults, register_task
from trainables.tasks.data import RawTask

SIDE = 32
N_TRAIN, N_TEST = 320, 64
TOY_DEFAULTS = TaskDefaults(lr=1e-3, weight_decay=1e-4, batch_size=16, epochs=2, optimizer="adamw")


def _toy_task(name: str, modality: str, output: str, input_shape: tuple[int, ...], num_outputs: int,
              loss: str, metric: str) -> Callable[[Callable], Callable]:
    """``register_task`` for a hidden test fixture: no files, the same defaults at both scales."""
    return register_task(
        name, modality=modality, output=output, input_shape=input_shape, num_outputs=num_outputs,
        loss=loss, metric=metric, data_files=(), paper="test fixture",
        defaults=TOY_DEFAULTS, mini=TOY_DEFAULTS, hidden=True,
    )


def _quadrant_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 4, size=n)
    x = rng.normal(0.0, 0.3, size=(n, 1, SIDE, SIDE)).astype(np.float32)
    half = SIDE // 2
    for c in range(4):
        r, k = divmod(c, 2)
        x[y == c, :, r * half:(r + 1) * half, k * half:(k + 1) * half] += 1.0
    return x, y.astype(np.int64)


@_toy_task("test_toy_task", "2d", "classification", (1, SIDE, SIDE), 4, "cross_entropy", "error_rate")
def load_toy_task(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    rng = np.random.default_rng(seed)
    x_train, y_train = _quadrant_images(N_TRAIN, rng)
    x_test, y_test = _quadrant_images(N_TEST, rng)
    return RawTask(x_train, y_train, x_test, y_test, num_outputs=4, source=f"generated:toy(seed={seed})")


@_toy_task("test_toy_dense", "2d", "dense", (1, SIDE, SIDE), 1, "mse", "relative_l2")
def load_toy_dense(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_TRAIN + N_TEST, 1, SIDE, SIDE)).astype(np.float32)
    y = np.roll(x, 1, axis=-1) + 0.1
    return RawTask(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:], num_outputs=1,
                   source=f"generated:toy-dense(seed={seed})")


LENGTH_1D, CHANNELS_1D = 64, 2
N_TRAIN_1D, N_TEST_1D = 96, 32


def _sine_series(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 4, size=n)
    t = np.arange(LENGTH_1D) / LENGTH_1D
    x = rng.normal(0.0, 0.3, size=(n, CHANNELS_1D, LENGTH_1D)).astype(np.float32)
    x[:, 0] += np.sin(2 * np.pi * (y[:, None] + 1) * t).astype(np.float32)  # (n, L): c + 1 periods
    return x, y.astype(np.int64)


@_toy_task("test_toy_1d", "1d", "classification", (CHANNELS_1D, LENGTH_1D), 4, "cross_entropy",
           "error_rate")
def load_toy_1d(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    rng = np.random.default_rng(seed)
    x_train, y_train = _sine_series(N_TRAIN_1D, rng)
    x_test, y_test = _sine_series(N_TEST_1D, rng)
    return RawTask(x_train, y_train, x_test, y_test, num_outputs=4, source=f"generated:toy-1d(seed={seed})")


@_toy_task("test_toy_1d_dense", "1d", "dense", (CHANNELS_1D, LENGTH_1D), 1, "mse", "relative_l2")
def load_toy_1d_dense(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_TRAIN_1D + N_TEST_1D, CHANNELS_1D, LENGTH_1D)).astype(np.float32)
    y = np.roll(x[:, :1], 1, axis=-1) + 0.1  # (n, 1, L)
    return RawTask(x[:N_TRAIN_1D], y[:N_TRAIN_1D], x[N_TRAIN_1D:], y[N_TRAIN_1D:], num_outputs=1,
                   source=f"generated:toy-1d-dense(seed={seed})")
