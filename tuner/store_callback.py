"""The driver-side Ray Tune callback that fills the Parquet results store (``tuner.store``).

Every result becomes a ``history`` row and every trial's end a ``trials`` row, each written as
its own atomic part file the moment Ray hands it over, so a killed driver loses nothing it
has seen; ``tuner.store``'s last-write-wins reading makes resumed experiments safe.
"""
from __future__ import annotations

import json
import logging
import math
import os
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import numpy as np
from ray.tune import Callback
from ray.tune.experiment import Trial

from tuner.store import (
    CONFIG_PREFIX,
    ERROR_TAIL_CHARS,
    HISTORY,
    RAY_BOOKKEEPING_KEYS,
    TRIAL_COLUMNS,
    TRIALS,
    _read_table,
    _scalar,
    append_rows,
    compact_store,
    store_dir,
)

logger = logging.getLogger(__name__)


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

    Keeps ``training_iteration`` as ``iteration``, ``time_total_s``, ``time_this_iter_s``, Ray's
    ``timestamp`` (unix seconds) as a UTC datetime and every other scalar key except
    :data:`RAY_BOOKKEEPING_KEYS`; nested dicts are flattened to ``outer/inner`` keys and
    non-scalar leaves (lists, arrays, objects) are skipped.

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
        "timestamp": _as_time(result.get("timestamp")),
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


def _as_time(value: Any) -> datetime | None:
    """A UTC datetime from unix seconds (or a datetime); None for anything else.

    >>> _as_time(0).isoformat(), _as_time("noon")
    ('1970-01-01T00:00:00+00:00', None)
    """
    if isinstance(value, datetime):
        return value
    value = _as_float(value)
    try:
        return datetime.fromtimestamp(value, timezone.utc)
    except (OverflowError, OSError, ValueError):  # NaN, inf or out of datetime's range
        return None


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


class ResultsStoreCallback(Callback):
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
        """The trials row of an ended trial (see :data:`TRIAL_COLUMNS`); forgets its log.

        Values that do not exist (no test metric yet, no finite metric) are NaN here and null
        in the store; the seed is ``config/seed``."""
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
        row: dict[str, Any] = {
            "experiment": self.experiment,
            "trial_id": trial.trial_id,
            "status": "error" if error is not None else trial_status(last),
            "iterations": int(last["iteration"]) if last else 0,
            "best_val_metric": best,
            "final_val_metric": _as_float(last.get(self.metric)),
            "test_metric": _as_float(last.get("test_metric")),
            "error": error,
            "time_total_s": _as_float(last.get("time_total_s")),
            **stage_times,
            # stage-1 cache (trainables.stage1_cache): reused or computed, and the seconds a reuse saved
            "stage1_reused": _flag(last.get("stage1_reused")),
            "stage1_saved_s": _as_float(last.get("stage1_saved_s")),
            # training samples the trial processed, both stages (a reused stage 1 counts none)
            "samples_total": _as_float(last.get("samples_total")),
            **self.static,
            **_config_columns(config),
        }
        return row

    def _write_trial(self, trial: Trial, error: str | None) -> None:
        append_rows(self.storage_path, self.experiment, TRIALS, [self._trial_row(trial, error)])
        self._parts_written += 1
