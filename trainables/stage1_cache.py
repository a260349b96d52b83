"""Stage-1 cache: a trial whose stage 1 ran before with the same inputs reuses its result.

Two-stage sweeps often repeat one stage 1 (a grid over a stage-2 dimension, seeds shared across
experiments). ``TwoStageTrainable`` looks its stage 1 up here when the stage starts; on a hit it
loads the stored result and replays the stored rows instead of training.

Key: sha256 of a canonical JSON of exactly what stage 1 reads (``TwoStageTrainable.stage1_inputs``):
the Trainable's class, the config keys stage 1 reads (the base's ``BASE_STAGE1_KEYS`` and the
method's declared ``stage1_keys``), digests of the model and of the frozen source stem as built
(backbone, weights, inits and task shapes, by content rather than by path), a digest of the
source-surrogate arrays, the thread count and device type (results are bit-identical on the same
ones only), torch's version, and a digest of this package's source files (``code_digest``: an
uncommitted edit invalidates the cache too).

Entry: one file ``<dir>/<key>.pt`` holding the model tensors stage 1 changed (the others equal
the freshly built model, whose digest is in the key), the stage-1 result rows and step times,
and the RNG states at the end of stage 1, so that stage 2 draws the same batches and dropout
masks after a reused stage 1 as after a computed one.

Publishing writes a temporary file in the same directory and hard-links it to the final name
(``os.link`` fails when the name exists): of trials racing on one key exactly one publishes, the
others keep their own (identical) result, and no reader ever sees a partial file. Hard links
are atomic on local disks and NFS; an object store is not supported (the sweep turns the cache
off there). Entries are read with ``torch.load(weights_only=True)``; an unreadable or
inconsistent one is refused with one warning line naming the file, moved aside to
``<key>.pt.refused`` and recomputed, and the recomputed entry takes its place.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch

log = logging.getLogger(__name__)

ENTRY_FORMAT = 1
ENTRY_FIELDS = ("format", "key", "inputs", "state", "rows", "times", "rng")
PACKAGE_DIR = Path(__file__).resolve().parent


class EntryRefused(Exception):
    """A cache entry that cannot be used (its text says why)."""


@dataclass(frozen=True)
class Stage1Entry:
    """A stored stage 1: what it changed in the model, what it reported, where the RNGs ended."""

    state: dict[str, torch.Tensor]  # the model tensors stage 1 changed, on the CPU
    rows: list[dict]  # the stage-1 results, one per epoch, without the trial's placement
    times: list[float]  # seconds each stage-1 step took
    rng: dict[str, torch.Tensor]  # "torch" (global CPU), "data" (the trial's generator), "cuda" on a GPU


@dataclass
class Stage1Record:
    """A trial's stage-1 cache bookkeeping; checkpointed with the trial (``to_state``)."""

    key: str = ""  # "" = not cached: cache off, or stage 1 not started
    reused: bool = False
    rows: list = field(default_factory=list)  # computed so far, or the stored ones being replayed
    times: list = field(default_factory=list)
    digests: dict = field(default_factory=dict)  # tensor digests of the model when stage 1 started
    saved_s: float = 0.0  # stored stage-1 time minus the replay's time, so far

    def to_state(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> "Stage1Record":
        return cls(**state)


# ---- digests and the key ----------------------------------------------------------------------
def tensor_digest(t: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (any device, any dtype)."""
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy())
    return h.hexdigest()


def state_digests(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """Each tensor's ``tensor_digest``, by name."""
    return {name: tensor_digest(t) for name, t in state.items()}


def combined_digest(digests: dict[str, str]) -> str:
    """One digest of a whole ``state_digests`` dict (names included)."""
    return hashlib.sha256(canonical(digests).encode()).hexdigest()


def code_digest(root: Path = PACKAGE_DIR) -> str:
    """sha256 of every ``*.py`` file under ``root`` (path and content): the code stage 1 runs."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def canonical(inputs: dict) -> str:
    """The JSON text the key hashes: sorted keys, no spaces, floats as Python's exact repr."""
    return json.dumps(inputs, sort_keys=True, separators=(",", ":"))


def cache_key(inputs: dict) -> str:
    return hashlib.sha256(canonical(inputs).encode()).hexdigest()


def entry_path(directory: str, key: str) -> Path:
    return Path(directory) / f"{key}.pt"


# ---- reading ----------------------------------------------------------------------------------
def load_entry(directory: str, key: str, model_state: dict[str, torch.Tensor], epochs: int,
               rng: dict[str, torch.Tensor]) -> Stage1Entry | None:
    """The stored stage 1 of ``key``, checked against this trial; None when there is none.

    Args:
        model_state: the trial's model state (names, shapes and dtypes the entry must fit).
        epochs: stage-1 epochs (one stored row and time each).
        rng: the trial's current RNG states (the names and sizes the stored ones must have).

    Returns:
        The entry, or None on a miss and on a refused entry (one warning line naming the file;
        the file is moved aside so that the recomputed result can be published).
    """
    path = entry_path(directory, key)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    with f:
        try:
            raw = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises UnpicklingError, RuntimeError, KeyError, EOFError, ... on bad bytes
            refuse(path, f"unreadable: {type(e).__name__}: {_first_line(e)}")
            return None
    try:
        return check_entry(raw, key, model_state, epochs, rng)
    except EntryRefused as e:
        refuse(path, str(e))
        return None


def check_entry(raw, key: str, model_state: dict[str, torch.Tensor], epochs: int,
                rng: dict[str, torch.Tensor]) -> Stage1Entry:
    """``raw`` (a loaded entry file) as a ``Stage1Entry``, if it fits this trial.

    Raises:
        EntryRefused: a missing or extra field, another key or format, a tensor that is not one
            of the model's (name, shape, dtype), rows or times that are not one per epoch, RNG
            states of another kind.
    """
    if not isinstance(raw, dict) or sorted(raw) != sorted(ENTRY_FIELDS):
        found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise EntryRefused(f"fields {found}, expected {list(ENTRY_FIELDS)}")
    if raw["format"] != ENTRY_FORMAT or raw["key"] != key:
        raise EntryRefused(f"format {raw['format']!r} / key {raw['key']!r}, expected {ENTRY_FORMAT} / {key}")
    _check_tensors("state", raw["state"], model_state, subset=True)
    _check_tensors("rng", raw["rng"], rng, subset=False)
    rows, times = raw["rows"], raw["times"]
    if not (isinstance(rows, list) and isinstance(times, list) and len(rows) == len(times) == epochs):
        raise EntryRefused(f"rows and times are not {epochs} each (one per stage-1 epoch)")
    for i, (row, seconds) in enumerate(zip(rows, times)):
        if not (isinstance(row, dict) and row.get("stage") == 1 and row.get("stage_epoch") == i + 1):
            raise EntryRefused(f"row {i} is not stage 1, epoch {i + 1}")
        if not (isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0):
            raise EntryRefused(f"time {i} is {seconds!r}, not a finite number of seconds")
    return Stage1Entry(raw["state"], rows, times, raw["rng"])


def _check_tensors(what: str, stored, expected: dict[str, torch.Tensor], subset: bool) -> None:
    """Stored tensors must be among (``subset``) or exactly the expected names, shapes and dtypes."""
    if not isinstance(stored, dict):
        raise EntryRefused(f"{what} is a {type(stored).__name__}, not a dict of tensors")
    names = set(stored) <= set(expected) if subset else set(stored) == set(expected)
    if not names:
        raise EntryRefused(f"{what} names {sorted(set(stored) ^ set(expected))[:5]} do not match the trial's")
    for name, t in stored.items():
        ref = expected[name]
        if not (isinstance(t, torch.Tensor) and t.shape == ref.shape and t.dtype == ref.dtype):
            found = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise EntryRefused(f"{what} {name!r} is {found}, expected {ref.dtype} {tuple(ref.shape)}")


def refuse(path: Path, reason: str) -> None:
    """One warning line naming the file; move it aside (``.refused``) so a new entry can take its place."""
    log.warning("stage-1 cache: refusing %s (%s); recomputing stage 1 and replacing the entry", path, reason)
    with contextlib.suppress(FileNotFoundError):  # another trial refused it first
        os.replace(path, path.with_name(path.name + ".refused"))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


# ---- publishing -------------------------------------------------------------------------------
def publish(directory: str, key: str, inputs: dict, entry: Stage1Entry) -> bool:
    """Store ``entry`` under ``key`` unless another trial has; exactly one of racing trials does.

    The file is written under a temporary name in ``directory`` and hard-linked to
    ``<key>.pt``; the link fails if that name exists.

    Returns:
        True when this call published the entry; False when another trial had (this trial keeps
        its own result) or the directory cannot take it (a warning says why; the sweep goes on).
    """
    final = entry_path(directory, key)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    payload = {"format": ENTRY_FORMAT, "key": key, "inputs": canonical(inputs), "state": entry.state,
               "rows": entry.rows, "times": entry.times, "rng": entry.rng}
    try:
        os.makedirs(directory, exist_ok=True)
        torch.save(payload, tmp)
        os.link(tmp, final)
        return True
    except FileExistsError:
        log.info("stage-1 cache: %s was published by another trial first; this trial keeps its own result", final)
        return False
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as RuntimeError
        log.warning("stage-1 cache: cannot publish %s (%s: %s); stage 1 is not stored. The cache needs a "
                    "writable local or NFS directory with hard links.", final, type(e).__name__, _first_line(e))
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
