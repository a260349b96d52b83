"""Labelled source-surrogate data for stage-1 methods (MoNA's outer loss, ORCA's OTDD, PaRe).

The surrogate stands in for the source model's pretraining data. Which one a backbone uses
is its ``BackboneSpec.source_surrogate``:

- ``cifar10`` (paper scale, vision backbones; MoNA §3, ORCA §3.2): CIFAR-10's python batches
  (``<data_root>/cifar-10-batches-py/data_batch_{1..5}``), read with the restricted unpickler.
- ``digits`` (embedded default): scikit-learn's bundled 1,797 8x8 handwritten digits
  (10 classes, values 0-16), planar images kept separate from the (spherical) target data.

Images are returned as float32 (N, 3, H, W) in [0, 1], resized to the *target* task's (H, W)
so that source and target pass through the same embedder geometry (same token grid).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainables.errors import DataError
from trainables.tasks.safe_pickle import restricted_load

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
DIGITS_MAX = 16.0  # scikit-learn digits are counts 0..16


@dataclass(frozen=True)
class SourceData:
    x: np.ndarray  # (N, 3, H, W) float32 in [0, 1]
    y: np.ndarray  # (N,) int64
    num_classes: int
    source: str


def _resize_rgb(images: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(N, C, h, w) -> (N, 3, H, W) float32: bilinear resize, grey repeated to RGB."""
    x = torch.as_tensor(images, dtype=torch.float32)
    x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False).clamp(0, 1)
    return x.expand(-1, 3, -1, -1).contiguous().numpy() if x.shape[1] == 1 else x.numpy()


def _subsample(x: np.ndarray, y: np.ndarray, max_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if 0 < max_samples < len(x):
        keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:max_samples])
        return x[keep], y[keep]
    return x, y


def load_digits_surrogate(data_root: Path, hw: tuple[int, int], max_samples: int, seed: int) -> SourceData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / DIGITS_MAX)[:, None].astype(np.float32)  # (1797, 1, 8, 8)
    x, y = _subsample(images, digits.target.astype(np.int64), max_samples, seed)
    return SourceData(_resize_rgb(x, hw), y, num_classes=10, source="sklearn:digits")


def load_cifar10_surrogate(data_root: Path, hw: tuple[int, int], max_samples: int, seed: int) -> SourceData:
    """CIFAR-10 training batches in the python format its authors publish.

    Raises:
        DataError: a batch is missing or malformed (naming the file).
    """
    images, labels = [], []
    for name in CIFAR10_BATCHES:
        path = Path(data_root) / CIFAR10_DIR / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 source surrogate: {path} not found. Put the python version of "
                            f"CIFAR-10 ({CIFAR10_DIR}/) in the data directory, or use --scale mini.")
        with open(path, "rb") as f:
            batch = restricted_load(f, encoding="bytes")
        data, batch_labels = batch.get(b"data"), batch.get(b"labels")
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or batch_labels is None:
            raise DataError(f"Malformed {path}: expected b'data' (N, 3072) uint8 and b'labels'")
        images.append(data.reshape(-1, 3, 32, 32))  # (N, 3072) -> (N, 3, 32, 32), channel-major
        labels.append(np.asarray(batch_labels, dtype=np.int64))
    x, y = _subsample(np.concatenate(images), np.concatenate(labels), max_samples, seed)
    return SourceData(_resize_rgb(x.astype(np.float32) / 255.0, hw), y, num_classes=10, source="file:cifar10")


SOURCE_SURROGATES = {"digits": load_digits_surrogate, "cifar10": load_cifar10_surrogate}


def load_source_surrogate(name: str, data_root: Path, hw: tuple[int, int], max_samples: int = 0,
                          seed: int = 0) -> SourceData:
    """The labelled source surrogate ``name`` at the target's spatial size ``hw``.

    Args:
        max_samples: keep a seeded subset of this many (0 = all); ORCA uses 5,000.
    """
    if name not in SOURCE_SURROGATES:
        raise KeyError(f"Unknown source surrogate {name!r}. Known: {', '.join(sorted(SOURCE_SURROGATES))}")
    return SOURCE_SURROGATES[name](Path(data_root), hw, max_samples, seed)
