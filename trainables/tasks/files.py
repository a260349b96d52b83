"""File checks, safe readers and the generated-data cache shared by the task modules.

One wording for every data error, so that a missing or malformed file reads the same
whichever task meets it:

- missing: ``Task 'ecg' needs challenge2017.pkl, not found in the data directory <root>
  (looked for <path>). Fix: download it (<where from>) into <root>, or pass --data-dir
  pointing at the directory that holds it[, or use --scale mini ...].`` (``require_file``);
- malformed: ``Malformed <path>: expected <what> to be <expected>, found <found>. Fix:
  download the file again.`` (``malformed`` and the checks built on it);
- unreadable: ``Cannot read <path>: expected <format>; got <error>. Fix: ...``
  (``read_pickle``, ``read_npy``).

Pickles (plain or gzip-compressed, and the pickle inside an object ``.npy``) are read only
through ``safe_pickle.restricted_load``: numpy arrays and plain containers, nothing else.

Generated (mini-scale) data is cached as ``.npz`` under ``<data_root>/generated/``
(``cache_path``); ``cached_arrays`` reads a cache back after checking its shapes, its
metadata and that its values are finite, and otherwise generates the arrays and writes them
atomically (a temporary file in the same directory, then ``os.replace``), so a crash or a
concurrent trial never leaves a half-written cache behind.
"""
from __future__ import annotations

import contextlib
import gzip
import logging
import os
import pickle
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trainables.errors import DataError
from trainables.registry import TASKS
from trainables.tasks.safe_pickle import restricted_load

CACHE_DIR = "generated"  # under the data root: <data_root>/generated/<name>.npz
REDOWNLOAD = "download the file again"

MISSING_FILE = (
    "Task {task!r} needs {rel}, not found in the data directory {root} (looked for {path}). "
    "Fix: download it ({source}) into {root}, or pass --data-dir pointing at the directory "
    "that holds it{mini}."
)
MINI_ALTERNATIVE = ", or use --scale mini (its embedded variant needs no files)"
# What a damaged file raises while it is read (zlib.error: corrupt gzip data).
READ_ERRORS = (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, zlib.error)
CACHE_ERRORS = (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError)


# ------------------------------------------------------------------------ file checks


def require_file(root: Path, rel: str, task: str, source: str) -> Path:
    """``root / rel`` if it is a file, else a ``DataError`` naming it and where to get it.

    Args:
        root: The data directory.
        rel: The file's path relative to ``root``, as the task publishes it.
        task: The registered task name; when its ``TaskSpec`` has an embedded variant the
            message offers ``--scale mini`` too.
        source: Where to get the file (site, URL, archive), quoted in the message.

    Raises:
        DataError: if ``root / rel`` is not a file.
    """
    path = Path(root) / rel
    if not path.is_file():
        mini = MINI_ALTERNATIVE if TASKS.get(task).has_mini else ""
        raise DataError(MISSING_FILE.format(task=task, rel=rel, root=root, path=path,
                                            source=source, mini=mini))
    return path


def describe(value: Any) -> str:
    """What ``value`` is, for an error message.

    >>> describe(np.zeros((2, 3), np.uint8)), describe([1])
    ('an array of dtype uint8 and shape (2, 3)', 'a list')
    """
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return f"a {type(value).__name__}"


def malformed(path: Path, what: str, expected: str, found: str, fix: str = REDOWNLOAD) -> DataError:
    """The error for a file whose content is not what its format promises.

    >>> str(malformed(Path("a.npy"), "key 'x'", "present", "only keys 'y'"))
    "Malformed a.npy: expected key 'x' to be present, found only keys 'y'. Fix: download the file again."
    """
    return DataError(f"Malformed {path}: expected {what} to be {expected}, found {found}. Fix: {fix}.")


def get_key(container: Any, key: Any, path: Path, where: str = "the top level") -> Any:
    """``container[key]`` of an unpickled dict, or a ``DataError`` naming the key.

    Args:
        where: What ``container`` is inside the file, for the message (nested dicts).
    """
    if not isinstance(container, dict):
        raise malformed(path, where, f"a dict with key {key!r}", describe(container))
    if key not in container:
        keys = ", ".join(sorted(map(repr, container)))
        what = f"key {key!r}" if where == "the top level" else f"key {key!r} in {where}"
        raise malformed(path, what, "present", f"only keys {keys}")
    return container[key]


def check_array(value: Any, path: Path, what: str, tail: tuple[int | None, ...],
                kinds: str = "uifb") -> np.ndarray:
    """``value`` if it is a numeric (N, *tail) array (None in ``tail``: any size).

    Args:
        kinds: The accepted ``dtype.kind`` letters (u, i, f, b).

    Raises:
        DataError: naming ``what``, the expected shape and what was found.
    """
    dims = ", ".join("*" if t is None else str(t) for t in tail)
    expected = f"a numeric array of shape (N{', ' if tail else ''}{dims})"
    if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds:
        raise malformed(path, what, expected, describe(value))
    if value.ndim != 1 + len(tail) or any(
        t is not None and s != t for s, t in zip(value.shape[1:], tail)
    ):
        raise malformed(path, what, expected, f"shape {value.shape}")
    return value


def check_finite(arr: np.ndarray, path: Path, what: str) -> None:
    """Raise ``DataError`` counting the NaN and infinite values of a float ``arr``."""
    if arr.dtype.kind in "fc":
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise malformed(path, what, "finite numbers", f"{bad} NaN or infinite value(s)")


def check_binary(arr: np.ndarray, path: Path, what: str) -> None:
    """Raise ``DataError`` unless every value of ``arr`` is 0 or 1."""
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise malformed(path, what, "0/1 values", f"values in [{arr.min()}, {arr.max()}]")


def class_labels(value: Any, num_classes: int, path: Path, what: str, first: int = 0) -> np.ndarray:
    """Integer labels (N,) in [first, first + num_classes), returned as int64 from 0.

    Float labels are accepted when they hold whole numbers; lists and tuples are converted.

    Raises:
        DataError: if the labels are not a 1-D numeric array, hold fractions or lie outside
            the range.
    """
    labels = np.asarray(value) if isinstance(value, (list, tuple)) else value
    labels = check_array(labels, path, what, (), kinds="uif")
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise malformed(path, what, "integer class labels", "fractional values")
    if labels.size and (labels.min() < first or labels.max() >= first + num_classes):
        raise malformed(
            path, what, f"labels in [{first}, {first + num_classes - 1}]",
            f"range [{labels.min()}, {labels.max()}]",
        )
    return labels.astype(np.int64) - first


# ---------------------------------------------------------------------------- readers


def read_pickle(path: Path, encoding: str = "ASCII", compressed: bool = False) -> Any:
    """Unpickle ``path`` through ``restricted_load``; failures become ``DataError``.

    Args:
        encoding: How Python-2 ``str`` objects are decoded (``"bytes"`` for CIFAR batches).
        compressed: The file is gzip-compressed (e.g. NAS-Bench-360's ``s2_cifar100.gz``).
    """
    kind = "a gzip-compressed pickle" if compressed else "a pickle"
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            return restricted_load(f, encoding=encoding)
    except READ_ERRORS as err:
        raise DataError(
            f"Cannot read {path}: expected {kind} of numpy arrays and plain containers; "
            f"got {type(err).__name__}: {err}. Fix: {REDOWNLOAD}."
        ) from err


def read_npy(path: Path, encoding: str = "ASCII", mmap: bool = False) -> np.ndarray:
    """``np.load`` of a ``.npy`` file; object arrays are unpickled by ``restricted_load``.

    ORCA loads these with ``allow_pickle=True``; the pickle inside an object ``.npy`` is
    the array itself (``numpy.lib.format.read_array``), so it goes through the restricted
    unpickler instead. Plain arrays are memory-mapped when ``mmap``.

    Raises:
        DataError: if the file is not a ``.npy`` array or its pickle holds anything else.
    """
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                _, _, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                _, _, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            if dtype.hasobject:
                value = restricted_load(f, encoding=encoding)
                if not isinstance(value, np.ndarray):
                    raise ValueError(f"the pickle holds {describe(value)}, not an array")
                return value
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except READ_ERRORS as err:
        raise DataError(
            f"Cannot read {path}: expected a .npy array (object arrays may hold only numpy "
            f"arrays and plain containers); got {type(err).__name__}: {err}. Fix: {REDOWNLOAD}."
        ) from err


# ---------------------------------------------------------------------------- cache


def cache_path(data_root: Path, name: str) -> Path:
    """Where generated data named ``name`` is cached: ``<data_root>/generated/<name>.npz``."""
    return Path(data_root) / CACHE_DIR / f"{name}.npz"


def read_cache(path: Path, shapes: dict[str, tuple[int, ...]], meta: dict[str, Any],
               log: logging.Logger) -> dict[str, np.ndarray] | None:
    """The arrays of a cache ``write_cache`` wrote, or None (with a warning on ``log``) if it is
    absent, unreadable, stale (other ``meta``), malformed (other ``shapes``) or not finite."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in shapes}
            found = {key: npz[key].item() for key in meta}
    except CACHE_ERRORS as err:
        log.warning("Regenerating: cannot read cache %s (%s: %s)", path, type(err).__name__, err)
        return None
    problems = [f"{key} {arrays[key].shape} != {shape}" for key, shape in shapes.items()
                if arrays[key].shape != shape]
    if found != meta:
        problems.append(f"metadata {found} != {meta}")
    if not all(np.isfinite(value).all() for value in arrays.values()):
        problems.append("non-finite values")
    if problems:
        log.warning("Regenerating: stale or malformed cache %s: %s", path, "; ".join(problems))
        return None
    return arrays


def write_cache(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``arrays`` and the scalars ``meta`` as a compressed ``.npz``, atomically.

    The file is written to a temporary file in the same directory, then moved into place
    with ``os.replace`` (atomic within one file system): readers see the old cache or the
    new one, never a partial file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays, **{key: np.asarray(value) for key, value in meta.items()})
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is ordinary data
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def cached_arrays(path: Path, shapes: dict[str, tuple[int, ...]], meta: dict[str, Any],
                  build: Callable[[], dict[str, np.ndarray]], what: str,
                  log: logging.Logger) -> dict[str, np.ndarray]:
    """The cached arrays at ``path``, or ``build()``'s, written to ``path`` for next time.

    Args:
        shapes: Every array's expected shape; a cache with other shapes is rebuilt.
        meta: Scalars (int, float, str) the cache must carry, e.g. the seed and the
            generator's parameters; a cache with other values is stale and rebuilt.
        build: Generates the arrays (the keys of ``shapes``).
        what: Names the data in the log line, e.g. ``"advection(beta=0.4, ..., seed=0)"``.
        log: The calling task module's logger.
    """
    arrays = read_cache(path, shapes, meta, log)
    if arrays is None:
        start = time.perf_counter()
        arrays = build()
        write_cache(path, arrays, meta)
        sizes = ", ".join(f"{key} {value.shape}" for key, value in arrays.items())
        log.info("Generated %s (%s) in %.1f s, cached at %s", what, sizes,
                 time.perf_counter() - start, path)
    return arrays
