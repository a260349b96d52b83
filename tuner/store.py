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
lost attempt had already reported). Every row carries ``written_at``, its write's sequence.

Column conventions (schema version :data:`SCHEMA_VERSION`, in every row's ``schema_version``):

- **Null, never NaN.** A value that does not exist (yet) is a Parquet null: the test metric of
  a pruned trial, the best metric of a trial that never reported one, a metric a result lacks.
  A NaN a trainable reports (a diverged loss) is stored as null too: SQL aggregates skip nulls
  but propagate NaN (DuckDB's ``avg`` of a column with one NaN is NaN), and a NaN carries no
  value. That a trial diverged is recorded by ``status = 'diverged'`` (trials) and the
  ``diverged`` flag it reports (history). ``inf`` is a value and stays. The pandas readers
  turn nulls in float columns into NaN, as before (``dropna`` / ``isna`` work).
- **One seed column**, ``config/seed`` (the config key, as every other ``config/<key>``).
- **Times are timestamps** (:data:`TIMESTAMP_TYPE`, UTC, microseconds): ``written_at`` (when the
  driver wrote the row) and history's ``timestamp`` (Ray's, when the worker produced the
  result). Durations (``time_total_s``, ``time_this_iter_s``, ``stage<k>_time_s``) are float
  seconds.
- **Old stores keep working.** Readers bring parts of older versions to the current one as they
  read them (``written_ns`` and int ``timestamp`` -> timestamps, NaN -> null, the trials
  ``seed`` column dropped), and ``compact_store`` rewrites them so.

SQL (DuckDB, Spark, ...): read a compacted store, where each table is one file with one row per
key. ``ResultsStoreCallback`` compacts at the experiment's end; before that (or for a store of an
older version) call ``compact_store`` first. Then, e.g. in DuckDB::

    select method, avg(test_metric), count(test_metric)
    from read_parquet('<storage>/<experiment>/results_store/trials/*.parquet')
    where status = 'completed' group by method

(:func:`table_glob` gives the path.) A live, uncompacted store may hold several rows per key
across parts (a resumed trial's re-reports); reading it directly, keep the newest per key:
``read_parquet(..., union_by_name = true) qualify row_number() over (partition by trial_id
order by written_at desc) = 1`` (history: ``partition by trial_id, iteration``), which is
:func:`read_trials`'s rule except for rows of one part sharing a key (the callback writes none).

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

import difflib
import logging
import os
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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

#: The store's schema version, written in every row's ``schema_version`` column. Rows without
#: it are version 1 (stores written before it existed); readers bring older parts up to this
#: version (:func:`_normalise`), and ``compact_store`` rewrites them in it. A part written by a
#: newer version is refused rather than misread.
#:
#: 1. ``written_ns`` (int unix ns), NaN for a missing float, ``seed`` next to ``config/seed``,
#:    history's Ray ``timestamp`` as int unix seconds.
#: 2. ``written_at`` (timestamp), null for a missing or NaN float, only ``config/seed``,
#:    ``timestamp`` as a timestamp.
SCHEMA_VERSION = 2
#: Arrow type of every time-of-day column (``written_at``, history's ``timestamp``).
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

#: Columns every trials row has, with their Arrow types; ``stage<k>_time_s`` columns for stages
#: other than 1 and 2, the static columns and ``config/<key>`` columns follow. The trial's seed
#: is ``config/seed`` (the config key).
TRIAL_COLUMNS: dict[str, pa.DataType] = {
    "experiment": pa.string(),
    "trial_id": pa.string(),
    "status": pa.string(),
    "iterations": pa.int64(),
    "best_val_metric": pa.float64(),
    "final_val_metric": pa.float64(),
    "test_metric": pa.float64(),
    "error": pa.string(),
    "time_total_s": pa.float64(),
    "stage1_time_s": pa.float64(),
    "stage2_time_s": pa.float64(),
    "written_at": TIMESTAMP_TYPE,
    "schema_version": pa.int64(),
}
#: Columns every history row has; every other scalar the trainable reports follows.
#: ``timestamp`` is Ray's (when the worker produced the result, whole seconds). ``written_at``
#: (every table) is when the driver wrote the row: its write's sequence, set by the store.
HISTORY_COLUMNS: dict[str, pa.DataType] = {
    "experiment": pa.string(),
    "trial_id": pa.string(),
    "iteration": pa.int64(),
    "time_total_s": pa.float64(),
    "time_this_iter_s": pa.float64(),
    "timestamp": TIMESTAMP_TYPE,
    "written_at": TIMESTAMP_TYPE,
    "schema_version": pa.int64(),
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
    "written_at": TIMESTAMP_TYPE,
    "schema_version": pa.int64(),
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


def table_glob(storage_path: str, experiment: str, table: str) -> str:
    """A glob naming the part files of one table, for SQL engines (``read_parquet``).

    Args:
        storage_path: The sweep's storage path (a local path or a URI).
        experiment: The experiment name.
        table: ``"trials"``, ``"history"`` or ``"distortion"``.

    Returns:
        ``<storage_path>/<experiment>/results_store/<table>/*.parquet``; temp files of
        unfinished writes (``.<name>.tmp``) do not match it.

    Raises:
        ValueError: for an unknown table or a bad experiment name.

    >>> table_glob("s3://bucket/runs", "mona_spherical", "trials")
    's3://bucket/runs/mona_spherical/results_store/trials/*.parquet'
    """
    if table not in TABLE_KEYS:
        raise ValueError(f"Unknown table {table!r}. Tables: {', '.join(sorted(TABLE_KEYS))}.")
    return _join(store_dir(storage_path, experiment), table, "*.parquet")


TENSORBOARD_DIRNAME = "tensorboard"


def tensorboard_dir(storage_path: str, experiment: str) -> str:
    """Where an experiment's TensorBoard runs live, one directory per trial id (written by
    ``tuner.tensorboard.TrialTensorBoardCallback``): ``<storage_path>/<experiment>/tensorboard``.
    ``tensorboard --logdir <it>`` shows every trial's curves and the HParams table.

    >>> tensorboard_dir("/runs", "mona_spherical")
    '/runs/mona_spherical/tensorboard'
    """
    return _join(experiment_dir(storage_path, experiment), TENSORBOARD_DIRNAME)


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


def require_experiments(storage_path: str, experiments: list[str]) -> None:
    """Refuse experiment names that have no results store under ``storage_path``.

    Raises:
        ValueError: naming the experiments that are there and the closest name, e.g. "no
            experiment 'sph-mnoa' in results. Experiments there: sph-emb, sph-mona. Did you
            mean 'sph-mona'?"
    """
    known = list_experiments(storage_path)
    for name in experiments:
        if name not in known:
            raise ValueError(unknown_experiment_message(storage_path, name, known))


def unknown_experiment_message(storage_path: str, name: str, known: list[str]) -> str:
    """What to say about an experiment name that is not in ``storage_path``.

    >>> unknown_experiment_message("results", "sph-mnoa", ["sph-emb", "sph-mona"])
    "no experiment 'sph-mnoa' in results. Experiments there: sph-emb, sph-mona. Did you mean 'sph-mona'?"
    """
    if not known:
        return f"no experiment {name!r} in {storage_path}: it holds no experiment (is --storage right?)"
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"no experiment {name!r} in {storage_path}. Experiments there: {', '.join(known)}.{hint}"


def _table_dir(storage_path: str, experiment: str, table: str) -> tuple[pafs.FileSystem, str]:
    if table not in TABLE_KEYS:
        raise ValueError(f"Unknown table {table!r}. Tables: {', '.join(sorted(TABLE_KEYS))}.")
    fs, root = filesystem(store_dir(storage_path, experiment))
    return fs, _join(root, table)


# --------------------------------------------------------------------------------------------
# Part files


def _next_seq() -> int:
    """Wall-clock time in unix ns, a whole number of microseconds, strictly increasing within
    this process (so that ``written_at``, at microsecond precision, orders every write)."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(time.time_ns() // 1000 * 1000, _last_seq + 1000)
        return _last_seq


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _seq_time(seq: int) -> datetime:
    """The ``written_at`` of sequence ``seq`` (exact: ``seq`` is whole microseconds)."""
    return _EPOCH + timedelta(microseconds=seq // 1000)


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
    if value is None or isinstance(value, (bool, int, float, str, datetime)):
        return True, value
    if isinstance(value, np.generic) and np.ndim(value) == 0:
        return True, value.item()
    return False, None


def _nan_to_null(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A float column with every NaN made null (other columns unchanged)."""
    if not pa.types.is_floating(arr.type) or arr.null_count == len(arr):
        return arr
    return pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr)


def _rows_to_table(table: str, rows: list[Mapping[str, Any]]) -> pa.Table:
    """Arrow table of ``rows``, with the fixed columns first and at their fixed types.

    A float column keeps its type when all its values are NaN or None, and NaN becomes null.
    """
    base = _BASE_COLUMNS[table]
    names = list(base)
    for row in rows:
        names.extend(k for k in row if k not in names)
    arrays, fields = [], []
    for name in names:
        values = [row.get(name) for row in rows]
        kind = base.get(name)
        if kind is not None and pa.types.is_timestamp(kind):
            bad = [v for v in values if v is not None and not isinstance(v, datetime)]
            if bad:
                raise ValueError(
                    f"Column {name!r} of the {table} table takes datetime values (or None), "
                    f"got {bad[0]!r}. Convert unix seconds with datetime.fromtimestamp(v, "
                    "timezone.utc).")
        # Inferred with NaN as a float (from_pandas=True would make an all-NaN column null-typed).
        arr = _nan_to_null(pa.array(values, type=kind, from_pandas=False))
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def append_rows(
    storage_path: str, experiment: str, table: str, rows: Iterable[Mapping[str, Any]]
) -> str | None:
    """Append ``rows`` to one table of an experiment's store as a new part file.

    Rows need the table's key columns (``trial_id``; plus ``iteration`` for history). Missing
    fixed columns are written as null; values must be scalars (bool, int, float incl. NaN and
    inf, str, datetime or None). NaN is written as null (see the module docstring); inf stays.
    Each row gets ``written_at``, the part's sequence as a time, and ``schema_version``.

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
    stamp = {"written_at": _seq_time(seq), "schema_version": SCHEMA_VERSION}
    clean = [{**{k: _scalar(v)[1] for k, v in row.items()}, **stamp} for row in rows]
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


def _version(part: pa.Table, path: str) -> int:
    """The schema version of a part's rows (1 without a ``schema_version`` column).

    Raises:
        ValueError: for a part written by a newer version of this code.
    """
    if "schema_version" not in part.column_names:
        return 1
    version = pc.max(part["schema_version"]).as_py()
    if version is not None and version > SCHEMA_VERSION:
        raise ValueError(
            f"Results-store part file {path!r} has schema version {version}; this code reads "
            f"versions up to {SCHEMA_VERSION}. Update the code (git pull) to read it.")
    return 1 if version is None else int(version)


def _replace(part: pa.Table, name: str, new_name: str, column: pa.ChunkedArray) -> pa.Table:
    """``part`` with column ``name`` replaced, in place, by ``column`` named ``new_name``."""
    i = part.column_names.index(name)
    return part.set_column(i, pa.field(new_name, column.type), column)


def _normalise(table: str, part: pa.Table, path: str) -> pa.Table:
    """A part's rows in the current schema (:data:`SCHEMA_VERSION`); older parts converted.

    Version 1 -> 2: ``written_ns`` (int ns) becomes ``written_at`` and history's ``timestamp``
    (int s) a timestamp; float NaN becomes null; the trials ``seed`` column is dropped (it
    repeated ``config/seed``; kept as ``config/seed`` where that is missing).
    """
    if _version(part, path) == SCHEMA_VERSION:
        return part
    names = part.column_names
    if "written_ns" in names and "written_at" in names:
        part = part.drop_columns(["written_ns"])
    elif "written_ns" in names:
        # int ns -> whole us (the version-2 sequence is whole us; ties within 1 us stay ties)
        us = pc.divide(part["written_ns"].cast(pa.int64()), 1000)
        part = _replace(part, "written_ns", "written_at", us.cast(TIMESTAMP_TYPE))
    if table == HISTORY and "timestamp" in names:
        ts = part["timestamp"]
        if pa.types.is_integer(ts.type) or pa.types.is_floating(ts.type):
            seconds = _nan_to_null(ts.cast(pa.float64()))
            us = pc.round(pc.multiply(seconds, 1e6)).cast(pa.int64())  # unix s -> us
            part = _replace(part, "timestamp", "timestamp", us.cast(TIMESTAMP_TYPE))
    if table == TRIALS and "seed" in names:
        if CONFIG_PREFIX + "seed" in names:
            part = part.drop_columns(["seed"])
        else:
            part = _replace(part, "seed", CONFIG_PREFIX + "seed", part["seed"])
    for i, name in enumerate(part.column_names):
        if pa.types.is_floating(part.schema.field(i).type):
            part = part.set_column(i, part.schema.field(i), _nan_to_null(part[name]))
    version = pa.array([SCHEMA_VERSION] * part.num_rows, type=pa.int64())
    if "schema_version" in part.column_names:
        return _replace(part, "schema_version", "schema_version", pa.chunked_array([version]))
    return part.append_column(pa.field("schema_version", pa.int64()), version)


def _read_parts(fs: pafs.FileSystem, paths: list[str], table: str) -> list[pa.Table]:
    """The part files ``paths`` of ``table``, each in the current schema."""
    tables = []
    for path in paths:
        try:
            part = pq.read_table(path, filesystem=fs)
        except (pa.ArrowInvalid, OSError) as exc:
            if fs.get_file_info(path).type == pafs.FileType.NotFound:
                raise _PartVanished(path) from exc
            raise ValueError(
                f"Unreadable results-store part file {path!r} ({exc}). Part files are written "
                "atomically, so this one was damaged outside the store (disk full, power loss, "
                "manual edit). Move it aside to read the rest of the store."
            ) from exc
        tables.append(_normalise(table, part, path))
    return tables


def _read_listed(fs: pafs.FileSystem, table_dir: str, table: str) -> list[pa.Table]:
    """All part tables of ``table_dir``, listing again if a compaction removed a listed part."""
    for _ in range(_READ_ATTEMPTS - 1):
        try:
            return _read_parts(fs, _list_parts(fs, table_dir), table)
        except _PartVanished:
            continue
    return _read_parts(fs, _list_parts(fs, table_dir), table)


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
    tables = _read_listed(fs, table_dir, table)
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
    ended_at = history["trial_id"].map(final["written_at"])
    # Written before the trial's end row and beyond its final iteration: a lost attempt's row.
    # (A resumed trial still running after an error row is newer than that row: kept.)
    stale = (history["iteration"] > limit) & (history["written_at"] < ended_at)
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


def _outdated(fs: pafs.FileSystem, path: str) -> bool:
    """Whether the part file ``path`` was written in an older schema version."""
    if "schema_version" not in pq.read_schema(path, filesystem=fs).names:
        return True
    versions = pq.read_table(path, columns=["schema_version"], filesystem=fs)["schema_version"]
    return _version(pa.table({"schema_version": versions}), path) < SCHEMA_VERSION


def compact_store(storage_path: str, experiment: str) -> None:
    """Merge each table's part files into one deduplicated file, losing nothing on a crash.

    The merged file is written atomically under the newest input's sequence (so it orders
    after every input and before any later part); the inputs are deleted only afterwards. A
    crash in between leaves the inputs next to an equal merged copy, which readers deduplicate.
    Rows are written in the current schema (:data:`SCHEMA_VERSION`): a store of an older
    version, even one already compacted into one file per table, is migrated.

    Afterwards each table is one file with one row per key, what SQL engines should read
    (module docstring, "SQL").

    Args:
        storage_path: A local path or URI.
        experiment: The experiment name.
    """
    for table in TABLE_KEYS:
        fs, table_dir = _table_dir(storage_path, experiment, table)
        parts = _list_parts(fs, table_dir)
        rewrite = len(parts) > 1 or (len(parts) == 1 and _outdated(fs, parts[0]))
        merged = _concat(_read_parts(fs, parts, table)) if rewrite else None
        if rewrite and merged is None:
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
