"""Evaluation metrics, computed over the whole evaluation set (never averaged over chunks).

Every metric here is "lower is better" as in NAS-Bench-360 (errors, 1 - score); a ``Metric``
still records its mode so the sweep passes the right one to Optuna and ASHA.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Metric:
    fn: Callable[[np.ndarray, np.ndarray], float]
    mode: str  # "min" | "max"
    label: str  # axis label for plots and tables


def error_rate(outputs: np.ndarray, targets: np.ndarray) -> float:
    """0-1 error in percent: 100 · mean(argmax(outputs) != targets).

    >>> error_rate(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 0, 0]))
    33.33333333333333
    """
    if len(targets) == 0:
        raise ValueError("error_rate of an empty set")
    return float(100.0 * np.mean(outputs.argmax(axis=1) != targets))


def relative_l2(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean over samples of ||pred - y||_2 / ||y||_2 (Darcy flow, PDEBench-style).

    >>> relative_l2(np.array([[3.0, 4.0]]), np.array([[0.0, 5.0]]))
    0.6324555320336759
    """
    diff = (outputs - targets).reshape(len(targets), -1)
    norm = targets.reshape(len(targets), -1)
    return float(np.mean(np.linalg.norm(diff, axis=1) / np.linalg.norm(norm, axis=1)))


METRICS = {
    "error_rate": Metric(error_rate, "min", "0-1 error (%)"),
    "relative_l2": Metric(relative_l2, "min", "relative L2 error"),
}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise KeyError(f"Unknown metric {name!r}. Known: {', '.join(sorted(METRICS))}")
    return METRICS[name]
