"""Append-only Parquet results store: one ``trials`` and one ``history`` table per experiment.

Layout (``storage_path`` may be a local path, ``file://...``, ``s3://...`` or ``gs://...``)::

    <storage_path>/<experiment>/results_store/
        trials/   <seq>-<uuid>.parquet ...   one row per trial end (key: trial_id)
        history/  <seq>-<uuid>.parquet ...   one row per reported result (key: trial_id, iteration)

``<seq>`` is a zero-padded nanosecond timestamp, strictly increasing within a process. Every
write is a new part file, written atomically (temp name, then rename; on object stores, where
an upload only appears once complete, directly). Nothing is ever rewritten in place, so a driver
killed with SIGKILL loses no row it has already been handed.

Reading orders the part files by ``(seq, compacted-after-parts)`` and rows within a file by
position, then keeps the **last** row per key. That one rule makes the store safe under:

- ``Tuner.restore``: resumed trials re-report iterations after their last checkpoint; the new
  rows win. A trial that errored and then completes gets a second trials row; the new one wins.
- crashed compaction: the merged file is written before its inputs are deleted, so a crash in
  between leaves duplicates with identical values, which the reader drops.

``read_history`` also drops rows of an ended trial that were written before its trials row and
lie beyond its final ``iterations`` (possible only when a resumed trial stopped earlier than a
lost attempt had already reported). Every row carries ``written_ns``, its write's sequence.

The Ray callback, :class:`ResultsStoreCallback`, is created on first access so that the readers
(used by plots and reports) need neither Ray nor its ~4 s import.

Limits: one driver writes an experiment at a time. Ordering across drivers relies on wall
clocks (a driver restored on another machine must not run behind the first one's clock).
Durability is against killed processes, not power loss (no fsync). The callback's
``storage_path`` is fixed when it is built: restoring a moved experiment directory keeps writing
the store at the old location.

Example (the writer and reader without Ray):

>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> _ = append_rows(root, "exp", HISTORY, [
...     {"experiment": "exp", "trial_id": "t1", "iteration": 1, "val_metric": 0.5},
...     {"experiment": "exp", "trial_id": "t1", "iteration": 1, "val_metric": 0.4}])
>>> read_history(root, "exp")[["trial_id", "iteration", "val_metric"]].to_dict("records")
[{'trial_id': 't1', 'iteration': 1, 'val_metric': 0.4}]
>>> list_experiments(root)
['exp']
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

if TYPE_CHECKING:  # pragma: no cover - typing only; importing Ray costs ~4 s
    from ray.tune.experiment import Trial

logger = logging.getLogger(__name__)

STORE_DIRNAME = "results_store"
TRIALS = "trials"
HISTORY = "history"
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    TRIALS: ("trial_id",),
    HISTORY: ("trial_id", "iteration"),
}

#: Result keys Ray adds for its own bookkeeping; they are not written to ``history``.
#: ``training_iteration`` is kept (renamed ``iteration``) and so is ``time_this_iter_s``
#: (stage times are sums of it, and a resumed driver rebuilds them from the stored history).
RAY_BOOKKEEPING_KEYS = frozenset({
    "config", "date", "hostname", "node_ip", "pid", "timestamp", "time_since_restore",
    "iterations_since_restore", "timesteps_total", "episodes_total", "timesteps_since_restore",
    "checkpoint_dir_name", "should_checkpoint", "experiment_tag", "done", "trial_id",
    "training_iteration",
})

#: Columns every trials row has, with their Arrow types; ``stage<k>_time_s`` columns for stages
#: other than 1 and 2, the static columns and ``config/<key>`` columns follow.
TRIAL_COLUMNS: dict[str, pa.DataType] = {
    "experiment": pa.string(),
    "trial_id": pa.string(),
    "status": pa.string(),
    "iterations": pa.int64(),
    "best_val_metric": pa.float64(),
    "final_val_metric": pa.float64(),
    "test_metric": pa.float64(),
    "error": pa.string(),
    "seed": pa.int64(),
    "time_total_s": pa.float64(),
    "stage1_time_s": pa.float64(),
    "stage2_time_s": pa.float64(),
    "written_ns": pa.int64(),
}
#: Columns every history row has; every other scalar the trainable reports follows.
#: ``written_ns`` (both tables) is the write's sequence number (unix ns), set by the store.
HISTORY_COLUMNS: dict[str, pa.DataType] = {
    "experiment": pa.string(),
    "trial_id": pa.string(),
    "iteration": pa.int64(),
    "time_total_s": pa.float64(),
    "time_this_iter_s": pa.float64(),
    "written_ns": pa.int64(),
}
_BASE_COLUMNS = {TRIALS: TRIAL_COLUMNS, HISTORY: HISTORY_COLUMNS}

STATUSES = ("completed", "pruned", "diverged", "error")
#: How much of a failed trial's error text (its tail: the latest failure) a trials row keeps.
ERROR_TAIL_CHARS = 2000
CONFIG_PREFIX = "config/"

# Filesystems where an upload becomes visible only once complete and rename is a copy:
# write the final name directly there.
_OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})
_COMPACTED_TAG = "compact"
# A reader lists the parts again (at most this many times) when a compaction deletes a part
# between its listing and its reading.
_READ_ATTEMPTS = 5

_seq_lock = threading.Lock()
_last_seq = 0


# --------------------------------------------------------------------------------------------
# Paths and filesystems


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """Resolve ``path`` (plain path or URI) to a pyarrow filesystem and the path inside it.

    Args:
        path: A local path (``~`` is expanded, relative paths made absolute) or a URI such as
            ``file:///x``, ``s3://bucket/x`` or ``gs://bucket/x``.

    Returns:
        ``(filesystem, path_in_filesystem)``.
    """
    path = os.fspath(path)
    if "://" in path:
        fs, fs_path = pafs.FileSystem.from_uri(path)
        return fs, fs_path.rstrip("/") or "/"
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def _join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts if p)


def store_dir(storage_path: str, experiment: str) -> str:
    """Where an experiment's store lives: ``<storage_path>/<experiment>/results_store``.

    Args:
        storage_path: The sweep's storage path (a local path or a URI), as given to Ray's
            ``RunConfig(storage_path=...)``.
        experiment: The experiment name (``RunConfig(name=...)``).

    Returns:
        The store directory, in the same form (path or URI) as ``storage_path``.

    >>> store_dir("s3://bucket/runs", "mona_spherical")
    's3://bucket/runs/mona_spherical/results_store'
    """
    if not experiment or "/" in experiment:
        raise ValueError(
            f"Invalid experiment name {experiment!r}: it must be a non-empty name without '/'. "
            "Use the name given to RunConfig(name=...)."
        )
    return _join(os.fspath(storage_path), experiment, STORE_DIRNAME)


def list_experiments(storage_path: str) -> list[str]:
    """Names of the experiments under ``storage_path`` that have a results store.

    Args:
        storage_path: A local path or URI.

    Returns:
        Sorted experiment names (directories containing ``results_store``); empty if
        ``storage_path`` does not exist.
    """
    fs, root = _filesystem(storage_path)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    dirs = [i for i in infos if i.type == pafs.FileType.Directory]
    if not dirs:
        return []
    stores = fs.get_file_info([_join(i.path, STORE_DIRNAME) for i in dirs])
    return sorted(d.base_name for d, s in zip(dirs, stores) if s.type == pafs.FileType.Directory)


def _table_dir(storage_path: str, experiment: str, table: str) -> tuple[pafs.FileSystem, str]:
    if table not in TABLE_KEYS:
        raise ValueError(f"Unknown table {table!r}. Tables: {', '.join(sorted(TABLE_KEYS))}.")
    fs, root = _filesystem(store_dir(storage_path, experiment))
    return fs, _join(root, table)


# --------------------------------------------------------------------------------------------
# Part files


def _next_seq() -> int:
    """Nanosecond wall-clock time, forced strictly increasing within this process."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(time.time_ns(), _last_seq + 1)
        return _last_seq


def _part_name(seq: int, compacted: bool = False) -> str:
    tag = f"-{_COMPACTED_TAG}" if compacted else ""
    return f"{seq:020d}{tag}-{uuid.uuid4().hex}.parquet"


def _part_order(name: str) -> tuple[int, int, str]:
    """Sort key of a part file: sequence, then a compacted file after parts of equal seq."""
    head, _, rest = name.partition("-")
    return int(head), int(rest.startswith(_COMPACTED_TAG + "-")), name


def _list_parts(fs: pafs.FileSystem, table_dir: str) -> list[str]:
    """Part files of a table in write order (temp files, which start with '.', are skipped)."""
    infos = fs.get_file_info(pafs.FileSelector(table_dir, allow_not_found=True))
    names = [
        i.base_name for i in infos
        if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
        and not i.base_name.startswith(".") and i.base_name.partition("-")[0].isdigit()
    ]
    return [_join(table_dir, n) for n in sorted(names, key=_part_order)]


def _write_atomic(fs: pafs.FileSystem, table_dir: str, name: str, table: pa.Table) -> str:
    """Write ``table`` as ``table_dir/name`` so that no reader ever sees a partial file."""
    fs.create_dir(table_dir, recursive=True)
    final = _join(table_dir, name)
    if fs.type_name in _OBJECT_STORES:
        with fs.open_output_stream(final) as f:
            pq.write_table(table, f)
        return final
    tmp = _join(table_dir, "." + name + ".tmp")
    with fs.open_output_stream(tmp) as f:
        pq.write_table(table, f)
    fs.move(tmp, final)
    return final


def _scalar(value: Any) -> tuple[bool, Any]:
    """``(True, python_value)`` for a value storable in one Parquet cell, else ``(False, None)``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    if isinstance(value, np.generic) and np.ndim(value) == 0:
        return True, value.item()
    return False, None


def _rows_to_table(table: str, rows: list[Mapping[str, Any]]) -> pa.Table:
    """Arrow table of ``rows``, with the fixed columns first and at their fixed types."""
    base = _BASE_COLUMNS[table]
    names = list(base)
    for row in rows:
        names.extend(k for k in row if k not in names)
    arrays, fields = [], []
    for name in names:
        values = [row.get(name) for row in rows]
        if name in base:
            arr = pa.array(values, type=base[name], from_pandas=False)
        else:
            arr = pa.array(values, from_pandas=False)
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def append_rows(
    storage_path: str, experiment: str, table: str, rows: Iterable[Mapping[str, Any]]
) -> str | None:
    """Append ``rows`` to one table of an experiment's store as a new part file.

    Rows need the table's key columns (``trial_id``; plus ``iteration`` for history). Missing
    fixed columns are written as null; values must be scalars (bool, int, float incl. NaN and
    inf, str or None). Each row gets ``written_ns``, the part's sequence number.

    Args:
        storage_path: A local path or URI.
        experiment: The experiment name.
        table: ``"trials"`` or ``"history"``.
        rows: The rows to write, in order (a later row wins over an earlier one with its key).

    Returns:
        The part file written, or None when ``rows`` is empty.

    Raises:
        ValueError: for an unknown table, a row without a key column or a non-scalar value.
    """
    rows = list(rows)
    if not rows:
        return None
    fs, table_dir = _table_dir(storage_path, experiment, table)
    for row in rows:
        missing = [k for k in TABLE_KEYS[table] if row.get(k) is None]
        if missing:
            raise ValueError(f"A {table} row lacks its key column(s) {missing}: {dict(row)!r}.")
        bad = {k: type(v).__name__ for k, v in row.items() if not _scalar(v)[0]}
        if bad:
            raise ValueError(
                f"Non-scalar value(s) in a {table} row: {bad}. The store takes bool, int, "
                "float, str or None; JSON-encode anything else first."
            )
    seq = _next_seq()
    clean = [{**{k: _scalar(v)[1] for k, v in row.items()}, "written_ns": seq} for row in rows]
    return _write_atomic(fs, table_dir, _part_name(seq), _rows_to_table(table, clean))


# --------------------------------------------------------------------------------------------
# Reading


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    """One table from parts whose columns may differ (missing columns become null).

    Numeric columns widen (int64 + float64 -> float64). Returns None when a column's types
    cannot be unified (e.g. str in one part, float in another).
    """
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


class _PartVanished(Exception):
    """A listed part file was deleted before it was read (a compaction ran meanwhile)."""


def _read_parts(fs: pafs.FileSystem, paths: list[str]) -> list[pa.Table]:
    tables = []
    for path in paths:
        try:
            tables.append(pq.read_table(path, filesystem=fs))
        except (pa.ArrowInvalid, OSError) as exc:
            if fs.get_file_info(path).type == pafs.FileType.NotFound:
                raise _PartVanished(path) from exc
            raise ValueError(
                f"Unreadable results-store part file {path!r} ({exc}). Part files are written "
                "atomically, so this one was damaged outside the store (disk full, power loss, "
                "manual edit). Move it aside to read the rest of the store."
            ) from exc
    return tables


def _read_listed(fs: pafs.FileSystem, table_dir: str) -> list[pa.Table]:
    """All part tables of ``table_dir``, listing again if a compaction removed a listed part."""
    for _ in range(_READ_ATTEMPTS - 1):
        try:
            return _read_parts(fs, _list_parts(fs, table_dir))
        except _PartVanished:
            continue
    return _read_parts(fs, _list_parts(fs, table_dir))


def _keep_last(keys_df: pd.DataFrame, table: str) -> np.ndarray:
    """Row positions keeping the last row per key, ordered by key."""
    keys = list(TABLE_KEYS[table])
    kept = keys_df[keys].reset_index(drop=True).drop_duplicates(keep="last")
    return kept.sort_values(keys, kind="stable").index.to_numpy()


def _dedup_arrow(merged: pa.Table, table: str) -> pa.Table:
    positions = _keep_last(merged.select(list(TABLE_KEYS[table])).to_pandas(), table)
    return merged.take(pa.array(positions, type=pa.int64()))


def _empty(table: str) -> pd.DataFrame:
    schema = pa.schema(list(_BASE_COLUMNS[table].items()))
    return schema.empty_table().to_pandas()


def _read_table(storage_path: str, experiment: str, table: str) -> pd.DataFrame:
    fs, table_dir = _table_dir(storage_path, experiment, table)
    tables = _read_listed(fs, table_dir)
    if not tables:
        return _empty(table)
    merged = _concat(tables)
    if merged is not None:
        return _dedup_arrow(merged, table).to_pandas()
    # Types that Arrow cannot unify: pandas holds such a column as object.
    df = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    return df.iloc[_keep_last(df, table)].reset_index(drop=True)


def read_trials(storage_path: str, experiment: str) -> pd.DataFrame:
    """The experiment's trials table: one row per ended trial, the last written one.

    Args:
        storage_path: A local path or URI.
        experiment: The experiment name.

    Returns:
        A DataFrame sorted by ``trial_id`` with the :data:`TRIAL_COLUMNS`, the static columns,
        any other ``stage<k>_time_s`` columns and ``config/<key>`` columns. Empty (with the
        fixed columns) when nothing was written yet.
    """
    return _read_table(storage_path, experiment, TRIALS)


def read_history(storage_path: str, experiment: str) -> pd.DataFrame:
    """The experiment's history table: one row per (trial_id, iteration), the last written one.

    Rows of an ended trial that were written before its trials row and lie beyond its final
    ``iterations`` (left by a lost attempt that got further than the resumed one) are dropped.

    Args:
        storage_path: A local path or URI.
        experiment: The experiment name.

    Returns:
        A DataFrame sorted by ``(trial_id, iteration)`` with the :data:`HISTORY_COLUMNS` and
        every scalar the trainables reported. Empty (with the fixed columns) when nothing was
        written yet.
    """
    history = _read_table(storage_path, experiment, HISTORY)
    trials = _read_table(storage_path, experiment, TRIALS)
    if history.empty or trials.empty:
        return history
    final = trials.set_index("trial_id")
    limit = history["trial_id"].map(final["iterations"])
    ended_ns = history["trial_id"].map(final["written_ns"])
    # Written before the trial's end row and beyond its final iteration: a lost attempt's row.
    # (A resumed trial still running after an error row is newer than that row: kept.)
    stale = (history["iteration"] > limit) & (history["written_ns"] < ended_ns)
    return history.loc[~stale.fillna(False).astype(bool)].reset_index(drop=True)


def compact_store(storage_path: str, experiment: str) -> None:
    """Merge each table's part files into one deduplicated file, losing nothing on a crash.

    The merged file is written atomically under the newest input's sequence (so it orders
    after every input and before any later part); the inputs are deleted only afterwards. A
    crash in between leaves the inputs next to an equal merged copy, which readers deduplicate.

    Args:
        storage_path: A local path or URI.
        experiment: The experiment name.
    """
    for table in TABLE_KEYS:
        fs, table_dir = _table_dir(storage_path, experiment, table)
        parts = _list_parts(fs, table_dir)
        merged = _concat(_read_parts(fs, parts)) if len(parts) > 1 else None
        if len(parts) > 1 and merged is None:
            logger.warning(
                "Not compacting %s: a column has types that cannot be unified across its %d "
                "part files; they stay as they are (nothing is lost).", table_dir, len(parts))
        elif merged is not None:
            seq = _part_order(parts[-1].rsplit("/", 1)[-1])[0]
            _write_atomic(
                fs, table_dir, _part_name(seq, compacted=True), _dedup_arrow(merged, table))
            for path in parts:
                fs.delete_file(path)
        # Temp files of writes killed half-way: never visible to readers, now removed.
        leftovers = fs.get_file_info(pafs.FileSelector(table_dir, allow_not_found=True))
        for info in leftovers:
            if info.type == pafs.FileType.File and info.base_name.endswith(".tmp"):
                fs.delete_file(info.path)


# --------------------------------------------------------------------------------------------
# Rows from Ray results and trials


def _flatten_scalars(result: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """``(key, scalar)`` pairs of a result; nested dicts become ``a/b`` keys, lists are skipped."""
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten_scalars(value, prefix=name + "/")
            continue
        ok, clean = _scalar(value)
        if ok:
            yield name, clean


def history_row(experiment: str, trial_id: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """The history row of one Ray result.

    Keeps ``training_iteration`` as ``iteration``, ``time_total_s``, ``time_this_iter_s`` and
    every other scalar key except :data:`RAY_BOOKKEEPING_KEYS`; nested dicts are flattened to
    ``outer/inner`` keys and non-scalar leaves (lists, arrays, objects) are skipped.

    Args:
        experiment: The experiment name.
        trial_id: The trial's id.
        result: The result dict Ray passed to ``on_trial_result``.

    Returns:
        The row as a dict.

    >>> history_row("e", "t", {"training_iteration": 2, "val_metric": 0.5, "pid": 7,
    ...                        "hist": [1, 2], "time_total_s": 3.0})["iteration"]
    2
    """
    row: dict[str, Any] = {
        "experiment": experiment,
        "trial_id": trial_id,
        "iteration": int(result["training_iteration"]),
        "time_total_s": _as_float(result.get("time_total_s")),
        "time_this_iter_s": _as_float(result.get("time_this_iter_s")),
    }
    for key, value in _flatten_scalars(result):
        if key.partition("/")[0] in RAY_BOOKKEEPING_KEYS or key in row:
            continue
        row[key] = value
    return row


def _as_float(value: Any) -> float:
    """``value`` as a float; NaN for None, strings and anything else non-numeric."""
    ok, clean = _scalar(value)
    if ok and isinstance(clean, (int, float)):
        return float(clean)
    return math.nan


def _config_columns(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config/<key>`` columns: scalars as they are, anything else JSON-encoded."""
    columns = {}
    for key, value in config.items():
        ok, clean = _scalar(value)
        columns[CONFIG_PREFIX + str(key)] = (
            clean if ok else json.dumps(value, sort_keys=True, default=str)
        )
    return columns


def trial_status(last_result: Mapping[str, Any]) -> str:
    """Status of a trial that ended without error, from its last result.

    ``"diverged"`` if it reported ``diverged=True``; ``"completed"`` if it reported
    ``finished=True``; otherwise ``"pruned"`` (stopped by the scheduler or a stopper). A trainable
    that never reports ``finished`` therefore always reads as pruned.

    >>> trial_status({"finished": True, "diverged": False}), trial_status({"finished": False})
    ('completed', 'pruned')
    """
    if _flag(last_result.get("diverged")):
        return "diverged"
    if _flag(last_result.get("finished")):
        return "completed"
    return "pruned"


def _flag(value: Any) -> bool:
    """True only for a reported true flag: ``True`` or ``1`` (a null read back as NaN is not)."""
    ok, clean = _scalar(value)
    return ok and isinstance(clean, (bool, int, float)) and clean == 1


def _error_text(trial: Trial) -> str | None:
    """Tail of the trial's error file (Ray appends one entry per failure; the tail is the last)."""
    text = None
    get_error = getattr(trial, "get_error", None)
    if callable(get_error):
        err = get_error()
        text = None if err is None else str(err)
    path = getattr(trial, "error_file", None)
    if not text and path and os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    if not text:
        text = getattr(trial, "error_msg", None)
    return text[-ERROR_TAIL_CHARS:] if text else None


class _TrialLog:
    """What the driver keeps per running trial: per-iteration stage, time and metric."""

    __slots__ = ("iterations", "last")

    def __init__(self) -> None:
        # iteration -> (stage, time_this_iter_s, metric)
        self.iterations: dict[int, tuple[Any, float, float]] = {}
        self.last: dict[str, Any] = {}

    def record(self, row: Mapping[str, Any], metric: str) -> None:
        self.iterations[int(row["iteration"])] = (
            row.get("stage"), _as_float(row.get("time_this_iter_s")), _as_float(row.get(metric))
        )
        self.last = dict(row)

    def complete(self) -> bool:
        """Whether iterations 1..last are all here (false after a resume in a new driver)."""
        if not self.last:
            return False
        n = int(self.last["iteration"])
        return len(self.iterations) >= n and all(i in self.iterations for i in range(1, n + 1))


class _ResultsStoreHooks:
    """Driver-side Tune callback writing every result and every trial end to the Parquet store.

    One history part file is written per ``on_trial_result`` call and one trials part file per
    trial end, each atomically, so a killed driver loses nothing already reported. At the end of
    the experiment (also after Ctrl-C) each table is compacted into one file.

    On ``Tuner.restore`` Ray unpickles the instance that was pickled into ``tuner.pkl`` when the
    ``Tuner`` was built (before any result), so the restored driver starts with an empty
    per-trial log; a trial that resumes from a checkpoint has its earlier iterations read back
    from the stored history when it ends (for ``best_val_metric`` and stage times).

    Args:
        storage_path: Where the store lives (normally the ``RunConfig.storage_path``).
        experiment: The experiment name (normally ``RunConfig.name``).
        static: Columns added to every trials row (task, method, backbone, scale, data_source,
            code_version, ...). Must not clash with the fixed trials columns or start with
            ``config/``.
        metric: The validation-metric key the trainables report.
        mode: ``"min"`` or ``"max"``: which ``metric`` value is best.
        compact_every: Also compact during the run, at the end of the first tuning-loop step
            after this many part files were written (readers cost ~1 ms per part file);
            None compacts only at the end.

    Raises:
        ValueError: for a bad mode, experiment name, static column name or compact_every.
    """

    def __init__(
        self,
        storage_path: str,
        experiment: str,
        static: Mapping[str, Any] | None = None,
        metric: str = "val_metric",
        mode: str = "min",
        compact_every: int | None = 1000,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"Invalid mode {mode!r} for ResultsStoreCallback: use 'min' or 'max'.")
        if compact_every is not None and (isinstance(compact_every, bool) or
                                          not isinstance(compact_every, int) or compact_every < 1):
            raise ValueError(
                f"Invalid compact_every {compact_every!r}: use a positive int (part files "
                "written between compactions) or None (compact only at the end).")
        store_dir(os.fspath(storage_path), experiment)  # validates the experiment name
        static = dict(static or {})
        clash = sorted(
            k for k in static if k in TRIAL_COLUMNS or k.startswith(CONFIG_PREFIX)
            or (k.startswith("stage") and k.endswith("_time_s"))
        )
        if clash:
            raise ValueError(
                f"Static column(s) {clash} clash with the trials table's own columns "
                f"({', '.join(TRIAL_COLUMNS)}, stage<k>_time_s, config/<key>). Rename them."
            )
        bad = {k: type(v).__name__ for k, v in static.items() if not _scalar(v)[0]}
        if bad:
            raise ValueError(
                f"Static columns must be scalars (bool, int, float, str, None): {bad}.")
        self.storage_path = os.fspath(storage_path)
        self.experiment = experiment
        self.static = static
        self.metric = metric
        self.mode = mode
        self.compact_every = compact_every
        self._logs: dict[str, _TrialLog] = {}
        self._parts_written = 0

    # Picklable: Ray pickles callbacks into tuner.pkl. The per-trial log is driver-run state
    # and is rebuilt from the store, so it is not pickled.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_logs"] = {}
        state["_parts_written"] = 0
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._logs = {}
        self._parts_written = 0

    # -- Ray hooks ------------------------------------------------------------------------

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        """Write one history row for ``result`` (a part file of its own)."""
        self.write_results(trial.trial_id, [result])

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """Write the trial's row: status completed / diverged / pruned."""
        self._write_trial(trial, error=None)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """Write the trial's row with status ``error`` and the tail of its error text."""
        text = _error_text(trial)
        self._write_trial(trial, error=text if text else "unknown error (Ray kept no error text)")

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        """Compact when ``compact_every`` part files were written since the last compaction."""
        if self.compact_every is not None and self._parts_written >= self.compact_every:
            compact_store(self.storage_path, self.experiment)
            self._parts_written = 0

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        """Compact both tables into one file each."""
        compact_store(self.storage_path, self.experiment)
        self._parts_written = 0

    # -- Writing --------------------------------------------------------------------------

    def write_results(self, trial_id: str, results: Iterable[Mapping[str, Any]]) -> None:
        """Write the history rows of several results of one trial as one part file."""
        rows = [history_row(self.experiment, trial_id, r) for r in results]
        if append_rows(self.storage_path, self.experiment, HISTORY, rows) is not None:
            self._parts_written += 1
        log = self._logs.setdefault(trial_id, _TrialLog())
        for row in rows:
            log.record(row, self.metric)

    def _trial_log(self, trial: Trial) -> _TrialLog:
        """The trial's per-iteration log, completed from the stored history if needed."""
        log = self._logs.pop(trial.trial_id, None) or _TrialLog()
        ray_last = getattr(getattr(trial, "run_metadata", None), "last_result", None) or {}
        if not log.complete() and (log.last or "training_iteration" in ray_last):
            # A trial resumed by a restored driver: its earlier iterations are only in the store.
            history = _read_table(self.storage_path, self.experiment, HISTORY)
            merged = _TrialLog()
            for row in history[history["trial_id"] == trial.trial_id].to_dict("records"):
                merged.record(row, self.metric)
            merged.iterations.update(log.iterations)  # this driver's rows are the newer ones
            if log.last:
                merged.last = log.last
            elif "training_iteration" in ray_last:  # Ray's view: the restored checkpoint's
                merged.last = history_row(self.experiment, trial.trial_id, ray_last)
            log = merged
        if log.last:  # iterations after the final one belong to a lost earlier attempt
            n = int(log.last["iteration"])
            log.iterations = {i: e for i, e in log.iterations.items() if i <= n}
        return log

    def _trial_row(self, trial: Trial, error: str | None) -> dict[str, Any]:
        """The trials row of an ended trial (see :data:`TRIAL_COLUMNS`); forgets its log."""
        log = self._trial_log(trial)
        last = log.last
        metrics = np.array([m for _, _, m in log.iterations.values()], dtype=float)
        finite = metrics[~np.isnan(metrics)]
        if finite.size:
            best = float(finite.min() if self.mode == "min" else finite.max())
        else:
            best = math.nan
        stage_times: dict[str, float] = {"stage1_time_s": 0.0, "stage2_time_s": 0.0}
        for stage, seconds, _ in log.iterations.values():
            if stage is None or (isinstance(stage, float) and math.isnan(stage)):
                continue
            if isinstance(stage, float) and stage.is_integer():
                stage = int(stage)
            key = f"stage{stage}_time_s"
            stage_times[key] = stage_times.get(key, 0.0) + (0.0 if math.isnan(seconds) else seconds)
        config = dict(getattr(trial, "config", None) or {})
        seed = config.get("seed")
        row: dict[str, Any] = {
            "experiment": self.experiment,
            "trial_id": trial.trial_id,
            "status": "error" if error is not None else trial_status(last),
            "iterations": int(last["iteration"]) if last else 0,
            "best_val_metric": best,
            "final_val_metric": _as_float(last.get(self.metric)),
            "test_metric": _as_float(last.get("test_metric")),
            "error": error,
            "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            "time_total_s": _as_float(last.get("time_total_s")),
            **stage_times,
            **self.static,
            **_config_columns(config),
        }
        return row

    def _write_trial(self, trial: Trial, error: str | None) -> None:
        append_rows(self.storage_path, self.experiment, TRIALS, [self._trial_row(trial, error)])
        self._parts_written += 1


def _make_callback_class() -> type:
    """Build ``ResultsStoreCallback`` = the hooks on Ray Tune's ``Callback`` base."""
    from ray.tune import Callback

    cls = type(
        "ResultsStoreCallback",
        (_ResultsStoreHooks, Callback),
        {"__module__": __name__, "__doc__": _ResultsStoreHooks.__doc__},
    )
    cls.__qualname__ = "ResultsStoreCallback"
    return cls


def __getattr__(name: str) -> Any:
    # PEP 562: the Ray-dependent class is built on first access (import or unpickling).
    if name == "ResultsStoreCallback":
        cls = _make_callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HISTORY", "TRIALS", "ResultsStoreCallback", "append_rows", "compact_store", "history_row",
    "list_experiments", "read_history", "read_trials", "store_dir", "trial_status",
]
