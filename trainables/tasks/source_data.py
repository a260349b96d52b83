"""Labelled source-surrogate data for stage-1 methods (MoNA's outer loss, ORCA's OTDD, PaRe).

The surrogate stands in for the source model's pretraining data. Which one a backbone uses
is its ``BackboneSpec.source_surrogate``.

Images (2D backbones), returned as float32 (N, 3, H, W) in [0, 1], resized to the *target*
task's (H, W) so that source and target pass through the same embedder geometry:

- ``cifar10`` (paper scale, vision backbones; MoNA §3, ORCA §3.2): CIFAR-10's python batches
  (``<data_root>/cifar-10-batches-py/data_batch_{1..5}``), read with the restricted unpickler.
- ``digits`` (embedded default): scikit-learn's bundled 1,797 8x8 handwritten digits
  (10 classes, values 0-16), planar images kept separate from the (spherical) target data.

Text (1D backbones), returned as int64 token ids (N, T) of the backbone's own tokenizer, or
as ORCA's precomputed float32 embeddings (N, T, D):

- ``conll2003`` (paper scale, RoBERTa; MoNA §4 "CoNLL-2003 ... as surrogate source datasets",
  after ORCA): ORCA's published "precomputed language features" of CoNLL-2003,
  ``<data_root>/text_xs.npy`` (RoBERTa embedding-layer outputs, (N, T, 768)) and
  ``text_ys.npy`` (labels), or the ``text_xs_32.npy`` / ``text_ys_32.npy`` pair that ORCA's
  ``load_text`` tries first. Labels are used as ORCA's ``get_tgt_model`` uses them (as given).
  Read with ``np.load(allow_pickle=False)``: no code from data files runs.
- ``stdlib-docstrings`` (embedded default): real English prose already on every machine that
  runs this code, labelled by a real property: the docstrings (module, class and function) of
  ten packages of the Python standard library, each sample labelled by its package (a topic
  label: asyncio, email, http, importlib, json, logging, multiprocessing, unittest, urllib,
  xml). Docstrings are read with ``ast`` (no module is imported), joined per package in file
  order, tokenised with the backbone's tokenizer and cut into consecutive windows of exactly
  T tokens (no padding, no special tokens). Why this: the registry packages list no small
  labelled English text set that ships its data (checked: CoNLL and news/sentiment packages
  download at run time); the docstrings need no dependency and the topics are a label a
  sentence encoder can separate. At T = 64 and MiniLM's tokenizer (Python 3.11) that is
  about 1,600 sequences, from 51 (multiprocessing) to 313 (email) per class. The text depends
  on the Python version; for one version it is fixed, and subsets are seeded.

Token sequences have exactly the target's token count T = N (PaRe mixes source and target
tokens position-wise); ORCA's precomputed features keep their published length unless a
method needs exactly N tokens, when they are cut to their first N (a DataError if shorter).

Deviations:
    - ORCA takes the first 5,000 precomputed sequences (``maxsize``); subsets here are seeded
      random draws (the same ``max_samples`` rule as the image surrogates).
"""
from __future__ import annotations

import ast
import functools
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainables.errors import DataError
from trainables.tasks.files import check_array, class_labels, get_key, malformed, read_pickle

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
DIGITS_MAX = 16.0  # scikit-learn digits are counts 0..16
CIFAR10_CLASSES = 10


@dataclass(frozen=True)
class SourceData:
    x: np.ndarray  # images (N, 3, H, W) float32 in [0, 1]; token ids (N, T) int64; features (N, T, D) float32
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
        batch = read_pickle(path, encoding="bytes")  # keys are bytes: b"data", b"labels"
        data = check_array(get_key(batch, b"data", path), path, "key b'data'", (3 * 32 * 32,), kinds="u")
        batch_labels = class_labels(get_key(batch, b"labels", path), CIFAR10_CLASSES, path,
                                    "key b'labels'")
        if len(batch_labels) != len(data):
            raise malformed(path, "key b'labels'", f"{len(data)} labels (one per image)",
                            f"{len(batch_labels)}")
        images.append(data.reshape(-1, 3, 32, 32))  # (N, 3072) -> (N, 3, 32, 32), channel-major
        labels.append(batch_labels)
    x, y = _subsample(np.concatenate(images), np.concatenate(labels), max_samples, seed)
    return SourceData(_resize_rgb(x.astype(np.float32) / 255.0, hw), y, num_classes=CIFAR10_CLASSES,
                      source="file:cifar10")


SOURCE_SURROGATES = {"digits": load_digits_surrogate, "cifar10": load_cifar10_surrogate}


# ---- text ---------------------------------------------------------------------------------------
STDLIB_PACKAGES = ("asyncio", "email", "http", "importlib", "json", "logging", "multiprocessing",
                   "unittest", "urllib", "xml")
SKIPPED_DIRS = ("test", "tests")  # package test suites (unittest/test in Python <= 3.11)
CONLL_FILES = (("text_xs_32.npy", "text_ys_32.npy"), ("text_xs.npy", "text_ys.npy"))  # ORCA's load_text order
DOCSTRING_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@functools.cache  # read-only memo: parsing is ~2 s, the stdlib is fixed per process
def package_docstrings(package: str, root: Path | None = None) -> tuple[str, ...]:
    """Every module, class and function docstring of a standard-library package, in file order.

    Raises:
        DataError: the package's sources are not on this machine.
    """
    base = (root or stdlib_dir()) / package
    files = sorted(f for f in base.rglob("*.py") if not set(f.relative_to(base).parts[:-1]) & set(SKIPPED_DIRS))
    if not files:
        raise DataError(f"stdlib-docstrings source surrogate: no Python sources under {base}. This interpreter's "
                        "standard library ships without .py files; install them (e.g. the distribution's "
                        "python3-dev / libpython3-stdlib package) or use the paper-scale surrogate.")
    docs = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        docs += [d for node in ast.walk(tree) if isinstance(node, DOCSTRING_NODES) and (d := ast.get_docstring(node))]
    return tuple(docs)


def token_windows(ids: list[int], length: int) -> np.ndarray:
    """Consecutive, non-overlapping windows of ``length`` ids; the remainder is dropped.

    >>> token_windows([1, 2, 3, 4, 5, 6, 7], 3).tolist()
    [[1, 2, 3], [4, 5, 6]]
    """
    n = len(ids) // length
    return np.asarray(ids[:n * length], dtype=np.int64).reshape(n, length)  # (n·T,) -> (n, T)


def load_stdlib_docstrings_surrogate(data_root: Path, seq_len: int, tokenizer: Callable[[], Any],
                                     max_samples: int, seed: int, exact_length: bool) -> SourceData:
    """Standard-library docstrings as (N, seq_len) token ids labelled by package (see module docstring)."""
    tok = tokenizer()
    xs, ys = [], []
    for label, package in enumerate(STDLIB_PACKAGES):
        text = "\n\n".join(package_docstrings(package))
        ids = tok(text, add_special_tokens=False, verbose=False)["input_ids"]
        windows = token_windows(ids, seq_len)
        xs.append(windows)
        ys.append(np.full(len(windows), label, dtype=np.int64))
    x, y = _subsample(np.concatenate(xs), np.concatenate(ys), max_samples, seed)
    return SourceData(x, y, num_classes=len(STDLIB_PACKAGES), source="python-stdlib:docstrings")


def _conll_files(data_root: Path) -> tuple[Path, Path]:
    for xs_name, ys_name in CONLL_FILES:
        xs, ys = data_root / xs_name, data_root / ys_name
        if xs.is_file() and ys.is_file():
            return xs, ys
    names = " or ".join(f"{a} + {b}" for a, b in CONLL_FILES)
    raise DataError(f"CoNLL-2003 source surrogate: {names} not found in {data_root}. Put ORCA's precomputed "
                    "language features (text_xs.npy, text_ys.npy, linked from ORCA's README) in the data "
                    "directory, or use --scale mini (all-MiniLM-L6-v2 with its embedded text surrogate).")


def load_conll2003_surrogate(data_root: Path, seq_len: int, tokenizer: Callable[[], Any],
                             max_samples: int, seed: int, exact_length: bool) -> SourceData:
    """ORCA's precomputed CoNLL-2003 RoBERTa embeddings and labels (see module docstring).

    Raises:
        DataError: files missing or malformed, or sequences shorter than ``seq_len`` when an
            exact length is needed.
    """
    xs_path, ys_path = _conll_files(Path(data_root))
    try:
        x, y = np.load(xs_path, allow_pickle=False), np.load(ys_path, allow_pickle=False)
    except ValueError as e:  # object arrays need pickle: refused
        raise DataError(f"{xs_path} / {ys_path} hold pickled objects; expected plain numeric arrays ({e})") from e
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"Malformed {xs_path.name}/{ys_path.name}: expected features (N, T, D) and integer labels "
                        f"(N,), got {x.shape} and {y.shape} {y.dtype}")
    if exact_length:
        if x.shape[1] < seq_len:
            raise DataError(f"{xs_path} has {x.shape[1]} tokens per sequence; the target makes {seq_len} and this "
                            "method mixes them position-wise. Lower the backbone's target_seq_len.")
        x = x[:, :seq_len]
    x, y = _subsample(x, y.astype(np.int64), max_samples, seed)
    return SourceData(x.astype(np.float32), y, num_classes=int(y.max()) + 1, source=f"file:{xs_path.name}")


TEXT_SURROGATES = {"stdlib-docstrings": load_stdlib_docstrings_surrogate, "conll2003": load_conll2003_surrogate}


def load_text_surrogate(name: str, data_root: Path, seq_len: int, tokenizer: Callable[[], Any],
                        max_samples: int = 0, seed: int = 0, exact_length: bool = False) -> SourceData:
    """The labelled text surrogate ``name`` as sequences of ``seq_len`` tokens.

    Args:
        seq_len: tokens per sequence (the target embedder's N).
        tokenizer: returns the backbone's tokenizer (called only by surrogates that tokenise).
        max_samples: keep a seeded subset of this many (0 = all); ORCA uses 5,000.
        exact_length: precomputed features must then have exactly ``seq_len`` tokens (PaRe).
    """
    if name not in TEXT_SURROGATES:
        raise KeyError(f"Unknown text source surrogate {name!r}. Known: {', '.join(sorted(TEXT_SURROGATES))}")
    return TEXT_SURROGATES[name](Path(data_root), seq_len, tokenizer, max_samples, seed, exact_length)


def load_source_surrogate(name: str, data_root: Path, hw: tuple[int, int], max_samples: int = 0,
                          seed: int = 0) -> SourceData:
    """The labelled source surrogate ``name`` at the target's spatial size ``hw``.

    Args:
        max_samples: keep a seeded subset of this many (0 = all); ORCA uses 5,000.
    """
    if name not in SOURCE_SURROGATES:
        raise KeyError(f"Unknown source surrogate {name!r}. Known: {', '.join(sorted(SOURCE_SURROGATES))}")
    return SOURCE_SURROGATES[name](Path(data_root), hw, max_samples, seed)
