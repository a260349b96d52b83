"""Evaluation metrics, computed over the whole evaluation set (never averaged over chunks).

Every metric here is "lower is better" as in NAS-Bench-360 (errors, 1 - score); a ``Metric``
still records its mode so the sweep passes the right one to Optuna and ASHA. Each takes the
raw model outputs (logits for classification, predictions for dense tasks) and the targets,
both as numpy arrays over the whole split, and returns a float.

ORCA (``src/main.py``, ``evaluate``) computes a metric on chunks of ``eval_batch_size``
samples (1,000 for most tasks, 1 for PSICOV) and averages the chunk values; that average is
not the metric of the whole set for anything but a mean of per-sample terms. We compute every
metric once over the whole split.

Definitions follow ORCA's ``src/utils.py`` (``inverse_score(accuracy)``, ``LpLoss``,
``psicov_mae``, ``inv_auroc``, ``auroc``, ``map_value``/``calculate_stats``, ``ecg_f1``) and
PDEBench's ``metric_func`` for nRMSE.

Deviations:
    - ``one_minus_map`` and ``one_minus_auroc_labels`` average over the classes (labels) whose
      score is defined: a class without positives has no average precision and a label with
      a single class in the targets no AUROC. ORCA's FSD50K mean counts scikit-learn's 0.0 for
      such a class; its DeepSEA ``auroc`` skips the NaN (``np.nanmean``) as we do. On the
      published test sets every class is defined, so the values agree there.
    - ``mae8`` averages per-protein MAEs over the proteins of the split using each protein's
      own extent (padding is excluded by the <= 8 A rule, it holds 100 A). ORCA's
      ``psicov_mae``, called one protein at a time, looks the length up as ``pdb_list[0]``
      for every protein and so truncates each map to the first protein's length.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def nrmse(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Normalised RMSE as PDEBench's ``metric_func``, for one time step.

    Per sample n and channel c: sqrt(mean_x (pred - y)^2) / sqrt(mean_x y^2) over the spatial
    points x; then the mean over samples and channels. Arrays are (N, C, *spatial). (ORCA's
    ``nmse`` flattens the channels together; the two agree for one channel.)

    >>> nrmse(np.array([[[3.0, 4.0]]]), np.array([[[0.0, 5.0]]]))
    0.6324555320336759
    """
    n, c = targets.shape[:2]
    err = (outputs - targets).reshape(n, c, -1)  # (N, C, *spatial) -> (N, C, X)
    ref = targets.reshape(n, c, -1)
    rmse = np.sqrt(np.mean(err**2, axis=2))  # (N, C)
    scale = np.sqrt(np.mean(ref**2, axis=2))  # (N, C)
    return float(np.mean(rmse / scale))


# PSICOV (DEEPCON / PDNet evaluation, as ORCA's ``psicov_mae``): long-range contacts only.
PSICOV_MAX_DISTANCE = 8.0  # Angstrom: pairs with a true distance <= 8 count
PSICOV_MIN_SEPARATION = 24  # residues: pairs (j, k) with k - j >= 24 count
PSICOV_MIN_PREDICTION = 0.01  # predicted distances are clipped from below at 0.01


def mae8(outputs: np.ndarray, targets: np.ndarray) -> float:
    """PSICOV's MAE8: mean absolute error of predicted distances on long-range contacts.

    As ORCA's ``psicov_mae`` (from PDNet's ``evaluate_distances``), per protein: the upper
    triangle of the prediction is set to the mean of both triangles, predictions below 0.01
    are clipped to 0.01, and the prediction for a pair j < k is then the mean of the (clipped)
    lower entry (k, j) and the updated upper entry (j, k) (so 3/4 lower + 1/4 upper before
    clipping, as published). The MAE is taken over the pairs with k - j >= 24 and true
    distance <= 8 A; the result is the mean of the per-protein MAEs over the proteins that
    have such a pair (``inf`` when none has, as ORCA). Padding (100 A) never counts.

    Args:
        outputs: (N, 1, W, W) or (N, W, W) predicted distances.
        targets: same shape, true distances (padding 100).

    >>> y = np.full((1, 1, 30, 30), 100.0); y[0, 0, 0, 25] = 6.0
    >>> mae8(np.full((1, 1, 30, 30), 5.0), y)
    1.0
    """
    if outputs.shape != targets.shape or targets.shape[-1] != targets.shape[-2]:
        raise ValueError(
            f"mae8 needs square maps of equal shape, got outputs {outputs.shape} and "
            f"targets {targets.shape}"
        )
    n, w = len(targets), targets.shape[-1]
    pred = outputs.reshape(n, w, w).astype(np.float64)  # (N, 1, W, W) -> (N, W, W)
    true = targets.reshape(n, w, w).astype(np.float64)
    row, col = np.indices((w, w))  # (W, W) each
    upper = col >= row
    pred = np.where(upper, (pred + pred.transpose(0, 2, 1)) / 2.0, pred)
    pred = np.maximum(pred, PSICOV_MIN_PREDICTION)
    pavg = (pred + pred.transpose(0, 2, 1)) / 2.0  # read on the upper triangle only
    with np.errstate(invalid="ignore"):
        keep = (col - row >= PSICOV_MIN_SEPARATION) & (true <= PSICOV_MAX_DISTANCE)  # (N, W, W)
    counts = keep.sum(axis=(1, 2))  # (N,)
    sums = np.where(keep, np.abs(true - pavg), 0.0).sum(axis=(1, 2))
    defined = counts > 0
    if not defined.any():
        return float("inf")
    return float(np.mean(sums[defined] / counts[defined]))


def _masked_binary(outputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORCA's COSMIC ``mask`` transform: zero logits and labels where the ignore mask is 1.

    ``targets`` is (N, 1, H, W) (labels) or (N, 2, H, W) (labels, ignore mask).
    """
    labels = targets[:, :1]  # (N, 1, H, W)
    if targets.shape[1] == 2:
        keep = 1.0 - targets[:, 1:2]
        return outputs * keep, labels * keep
    return outputs, labels


def one_minus_auroc_pixels(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Cosmic: 1 - AUROC of the thresholded pixel predictions (logit > 0), all pixels pooled.

    As ORCA's ``inv_auroc``: logits and labels are first multiplied by (1 - ignore) when the
    targets carry an ignore mask as a second channel; the ROC is that of hard 0/1 predictions,
    so the AUROC equals (TPR + TNR) / 2.

    >>> out = np.array([[[[2.0, -1.0], [3.0, -2.0]]]])
    >>> y = np.array([[[[1.0, 1.0], [0.0, 0.0]]]])
    >>> one_minus_auroc_pixels(out, y)
    0.5
    """
    from sklearn.metrics import roc_auc_score  # scikit-learn is imported only where used (~2 s)

    logits, labels = _masked_binary(outputs, targets)
    labels = labels.ravel()
    if np.unique(labels).size < 2:
        raise ValueError("one_minus_auroc_pixels: the targets hold a single class; AUROC is undefined")
    return float(1.0 - roc_auc_score(labels, (logits > 0).ravel().astype(np.float64)))


def one_minus_auroc_labels(outputs: np.ndarray, targets: np.ndarray) -> float:
    """DeepSEA: 1 - the mean over labels of the per-label AUROC (multi-label, (N, K) arrays).

    As ORCA's ``auroc``: the ROC of each label's scores, averaged over the labels where it is
    defined (both classes present), ``np.nanmean`` in ORCA.

    >>> one_minus_auroc_labels(np.array([[0.1], [0.4], [0.35], [0.8]]), np.array([[0], [0], [1], [1]]))
    0.25
    """
    from sklearn.metrics import roc_auc_score

    aurocs = [
        roc_auc_score(targets[:, k], outputs[:, k])
        for k in range(targets.shape[1])
        if np.unique(targets[:, k]).size == 2
    ]
    if not aurocs:
        raise ValueError("one_minus_auroc_labels: no label has both classes in the targets")
    return float(1.0 - np.mean(aurocs))


def one_minus_map(outputs: np.ndarray, targets: np.ndarray) -> float:
    """FSD50K: 1 - mean average precision over classes (multi-label, (N, K) arrays).

    As ORCA's ``calculate_stats`` (scikit-learn's ``average_precision_score`` per class),
    averaged over the classes with at least one positive.

    >>> one_minus_map(np.array([[0.9], [0.8], [0.3]]), np.array([[1], [0], [1]]))
    0.16666666666666674
    """
    from sklearn.metrics import average_precision_score

    aps = [
        average_precision_score(targets[:, k], outputs[:, k])
        for k in range(targets.shape[1])
        if targets[:, k].any()
    ]
    if not aps:
        raise ValueError("one_minus_map: no class has a positive in the targets")
    return float(1.0 - np.mean(aps))


def one_minus_macro_f1(outputs: np.ndarray, targets: np.ndarray) -> float:
    """ECG: 1 - macro F1 of argmax(outputs) over the classes present in targets or predictions.

    As ORCA's ``ecg_f1`` (``classification_report`` with ``zero_division=0``, mean of the
    per-class F1).

    >>> one_minus_macro_f1(np.eye(3)[[0, 2, 2, 2]], np.array([0, 1, 2, 2]))
    0.4
    """
    if len(targets) == 0:
        raise ValueError("one_minus_macro_f1 of an empty set")
    from sklearn.metrics import f1_score

    predicted = outputs.argmax(axis=1)
    return float(1.0 - f1_score(targets, predicted, average="macro", zero_division=0))


METRICS = {
    "error_rate": Metric(error_rate, "min", "0-1 error (%)"),
    "relative_l2": Metric(relative_l2, "min", "relative L2 error"),
    "nrmse": Metric(nrmse, "min", "nRMSE"),
    "mae8": Metric(mae8, "min", "MAE8 (A)"),
    "one_minus_auroc_pixels": Metric(one_minus_auroc_pixels, "min", "1 - AUROC (pixels)"),
    "one_minus_auroc_labels": Metric(one_minus_auroc_labels, "min", "1 - mean AUROC"),
    "one_minus_map": Metric(one_minus_map, "min", "1 - mAP"),
    "one_minus_macro_f1": Metric(one_minus_macro_f1, "min", "1 - macro F1"),
}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise KeyError(f"Unknown metric {name!r}. Known: {', '.join(sorted(METRICS))}")
    return METRICS[name]
