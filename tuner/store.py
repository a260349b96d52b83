"""Append-only Parquet results store: ``trials``, ``history`` (and ``distortion``) tables per experiment.

Layout (``storage_path`` may be a local path, ``file://...``, ``s3://...`` or ``gs://...``)::

    <storage_path>/<experiment>/results_store/
        trials/   <seq>-<uuid>.parquet ...   one row per trial end (key: trial_id)
        history/  <seq>-<uuid>.parquet ...   one row per reported result (key: trial_id, iteration)
        distortion/ <seq>-<uuid>.parquet ... one row per analysed trial (key: trial_id), written
                                             by ``python -m tuner.analyze distortion``

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

The Ray callback that writes the store from a sweep is ``tuner.store_callback.ResultsStoreCallback``;
this module needs no Ray, so plots and reports skip its ~4 s import.

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

import logging
import os
import threading
import time
import uuid
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

STORE_DIRNAME = "results_store"
TRIALS = "trials"
HISTORY = "history"
DISTORTION = "distortion"
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    TRIALS: ("trial_id",),
    HISTORY: ("trial_id", "iteration"),
    DISTORTION: ("trial_id",),
}

#: Result keys Ray adds for its own bookkeeping; they are not written to ``history``.
#: ``training_iteration`` is kept (renamed ``iteration``) and so is ``time_this_iter_s``
#: (stage times are sums of it, and a resumed driver rebuilds them from the stored history).
RAY_BOOKKEEPING_KEYS = frozenset({
    "config", "date", "hostname", "node_ip", "pid", "time_since_restore",
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
#: Columns every distortion row has (``python -m tuner.analyze distortion``): one row per
#: analysed trial, the linear-probe error of its final encoder on the source surrogate beside
#: the same probe on the pretrained encoder (MoNA §2.2, Fig. 3).
DISTORTION_COLUMNS: dict[str, pa.DataType] = {
    "experiment": pa.string(),
    "trial_id": pa.string(),
    "method": pa.string(),
    "task": pa.string(),
    "backbone": pa.string(),
    "probe_error": pa.float64(),
    "pretrained_probe_error": pa.float64(),
    "distortion": pa.float64(),  # probe_error - pretrained_probe_error
    "surrogate": pa.string(),
    "probe_train": pa.int64(),
    "probe_test": pa.int64(),
    "probe_seed": pa.int64(),
    "checkpoint": pa.string(),
    "written_ns": pa.int64(),
}
_BASE_COLUMNS = {TRIALS: TRIAL_COLUMNS, HISTORY: HISTORY_COLUMNS, DISTORTION: DISTORTION_COLUMNS}

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


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
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


def experiment_dir(storage_path: str, experiment: str) -> str:
    """An experiment's directory, ``<storage_path>/<experiment>``: Ray's experiment state and
    trial checkpoints, the saved sweep spec and the store all live under it.

    >>> experiment_dir("s3://bucket/runs/", "mona_spherical")
    's3://bucket/runs/mona_spherical'
    """
    if not experiment or "/" in experiment:
        raise ValueError(
            f"Invalid experiment name {experiment!r}: it must be a non-empty name without '/'. "
            "Use the name given to RunConfig(name=...)."
        )
    return _join(os.fspath(storage_path), experiment)


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
    return _join(experiment_dir(storage_path, experiment), STORE_DIRNAME)


OPTUNA_STUDY_FILE = "optuna_study.journal"


def optuna_study_path(storage_path: str, experiment: str) -> str:
    """Where a search-mode experiment keeps its Optuna study (Optuna's journal file storage,
    study name = the experiment name): ``<storage_path>/<experiment>/optuna_study.journal``.
    ``optuna-dashboard <file>`` and ``optuna.load_study`` read it.

    >>> optuna_study_path("/runs", "mona_spherical")
    '/runs/mona_spherical/optuna_study.journal'
    """
    return _join(experiment_dir(storage_path, experiment), OPTUNA_STUDY_FILE)


def list_experiments(storage_path: str) -> list[str]:
    """Names of the experiments under ``storage_path`` that have a results store.

    Args:
        storage_path: A local path or URI.

    Returns:
        Sorted experiment names (directories containing ``results_store``); empty if
        ``storage_path`` does not exist.
    """
    fs, root = filesystem(storage_path)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    dirs = [i for i in infos if i.type == pafs.FileType.Directory]
    if not dirs:
        return []
    stores = fs.get_file_info([_join(i.path, STORE_DIRNAME) for i in dirs])
    return sorted(d.base_name for d, s in zip(dirs, stores) if s.type == pafs.FileType.Directory)


def _table_dir(storage_path: str, experiment: str, table: str) -> tuple[pafs.FileSystem, str]:
    if table not in TABLE_KEYS:
        raise ValueError(f"Unknown table {table!r}. Tables: {', '.join(sorted(TABLE_KEYS))}.")
    fs, root = filesystem(store_dir(storage_path, experiment))
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
        table: ``"trials"``, ``"history"`` or ``"distortion"``.
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


def read_distortion(storage_path: str, experiment: str) -> pd.DataFrame:
    """The experiment's distortion table: one row per analysed trial, the last written one.

    Args:
        storage_path: A local path or URI.
        experiment: The experiment name.

    Returns:
        A DataFrame sorted by ``trial_id`` with the :data:`DISTORTION_COLUMNS`. Empty (with
        those columns) when ``python -m tuner.analyze distortion`` has not run yet.
    """
    return _read_table(storage_path, experiment, DISTORTION)


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
