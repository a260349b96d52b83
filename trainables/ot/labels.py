"""Class labels for OTDD when a task has none: ORCA's k-means pseudo-labels.

OTDD needs one class per sample. Single-label classification targets are used as they are;
regression, dense and multi-label (multi-hot) targets get ORCA's ``infer_labels``: k-means
clusters of the flattened target vectors. Used by ORCA's stage 1 and PaRe's OTDD log.
"""
from __future__ import annotations

import numpy as np

MINIBATCH_KMEANS_ABOVE = 10_000  # ORCA's ``infer_labels`` switches to MiniBatchKMeans above this


def kmeans_pseudo_labels(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """ORCA's ``infer_labels``: k-means on the flattened targets.

    Args:
        y: (N, ...) regression / dense / multi-label targets.
        k: number of clusters (ORCA: 10).
        seed: k-means seed (ORCA's call is unseeded).

    Returns:
        (N,) int64 cluster indices in 0..k-1.

    Raises:
        ValueError: fewer than ``k`` samples.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    flat = np.asarray(y, dtype=np.float64).reshape(len(y), -1)  # (N, ...) -> (N, prod(...))
    if len(flat) < k:
        raise ValueError(f"k-means pseudo-labels need at least k={k} training samples, got {len(flat)}; "
                         "lower num_pseudo_labels")
    if len(flat) > MINIBATCH_KMEANS_ABOVE:
        model = MiniBatchKMeans(n_clusters=k, batch_size=MINIBATCH_KMEANS_ABOVE, random_state=seed, n_init="auto")
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init="auto")
    return model.fit_predict(flat).astype(np.int64)


def target_labels(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Class labels for OTDD: integer 1-D targets as they are, anything else k-means clusters."""
    y = np.asarray(y)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    return kmeans_pseudo_labels(y, k, seed)
