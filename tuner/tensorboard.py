"""The driver-side Ray Tune callback that writes a sweep's TensorBoard runs, HParams included.

Layout: one run directory per trial, ``<storage>/<experiment>/tensorboard/<trial_id>/``
(``tuner.store.tensorboard_dir``), so ``tensorboard --logdir <storage>/<experiment>/tensorboard``
shows only this sweep's trials, named by the trial ids the results store uses.

Per result, every finite numeric scalar the trainable reports (``val_metric``,
``best_val_metric``, ``test_metric``, ``train_loss``, ``stage``, ``lr``, ...; nested dicts as
``a/b``) is logged under its own name at step ``training_iteration``. NaN and inf are not logged
(TensorBoard cannot chart them): a pruned trial has no ``test_metric`` point, and a diverged
trial's last ``val_metric`` point is its last finite one (its ``diverged`` scalar is 1).

At a trial's end an HParams session is written into its run: the hyperparameters are the
``static`` values (method, task, backbone, scale, ...) plus the trial's config values of the
``varying_keys`` (``ResolvedSpec.varying_keys()``: the searched dimensions, or the grid's
dimension and ``seed``; a callback cannot see the trials to come, so the spec says), and the
metrics are ``val_metric``, ``best_val_metric`` and ``test_metric`` (TensorBoard shows the last
logged value of each; a missing one is a blank cell).

Why a subclass of Ray's ``TBXLoggerCallback``: Tune adds its own TBX logger unless a callback of
that class is given, so this one replaces it (Ray's CSV and JSON loggers stay). Ray's logger
writes every result as ``ray/tune/<key>`` in the trial's directory, and as HParams only the
searcher's values (``trial.evaluated_params``: no method, task, backbone or scale) with the last
result's scalars as metrics. TensorBoard takes the HParams experiment (its columns) from one arbitrary run, so
every trial here writes the same metric list and every hyperparameter name seen so far.

Where the files are written: directly in the storage directory when it is a local path (live);
for a URI (``s3://...``) in Ray's driver staging directory under ``tensorboard/<trial_id>``, which
Ray uploads to ``<storage>/<experiment>/tensorboard/<trial_id>`` with its experiment state.

Restore: the callback pickles without its open writers (Tune pickles callbacks into the
experiment state). A trial's writer is opened at its first result in this driver with
``purge_step`` = that step, so the events a lost attempt wrote from that step on are dropped by
TensorBoard and a resumed trial's curve has no duplicate points.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Collection, Mapping

from ray.tune.experiment import Trial
from ray.tune.logger import TBXLoggerCallback

from tuner.store import _scalar, filesystem, tensorboard_dir
from tuner.store_callback import history_row

logger = logging.getLogger(__name__)

#: The HParams metrics: the validation metric, its best so far and the final test metric.
HPARAMS_METRICS = ("val_metric", "best_val_metric", "test_metric")
#: History-row keys that are not logged as scalars (the step itself and a time of day).
_NOT_SCALARS = frozenset({"iteration", "timestamp"})


def _hparam_value(value: Any) -> bool | int | float | str | None:
    """A config value as an HParams value: scalars as they are, anything else as JSON."""
    ok, clean = _scalar(value)
    if ok and not hasattr(clean, "isoformat"):
        return clean
    return json.dumps(value, sort_keys=True, default=str)


class TrialTensorBoardCallback(TBXLoggerCallback):
    """Writes each trial's scalars and, at its end, its HParams session (module docstring).

    Args:
        storage_path: The sweep's storage path (``RunConfig.storage_path``; a local path or URI).
        experiment: The experiment name (``RunConfig.name``).
        static: Hyperparameters every trial shares but which tell experiments apart (method,
            task, backbone, scale, ...): scalars, logged with every trial's HParams.
        varying_keys: The config keys logged as hyperparameters (those that differ between
            trials); a key missing from a trial's config is left out of its session. Lists and
            other non-scalars are logged as JSON text.
        flush_secs: How often the event files are flushed to disk.

    Raises:
        ValueError: for a bad experiment name or a non-scalar static value.
    """

    def __init__(
        self,
        storage_path: str,
        experiment: str,
        static: Mapping[str, Any] | None = None,
        varying_keys: Collection[str] = (),
        flush_secs: int = 30,
    ) -> None:
        super().__init__()
        self.logdir = tensorboard_dir(os.fspath(storage_path), experiment)  # validates the name
        self.experiment = experiment
        static = dict(static or {})
        bad = {k: type(v).__name__ for k, v in static.items() if not _scalar(v)[0]}
        if bad:
            raise ValueError(
                f"Static hyperparameters must be scalars (bool, int, float, str): {bad}.")
        self.static = static
        if isinstance(varying_keys, str):
            raise ValueError(
                "varying_keys must be a collection of config keys, got the string "
                f"{varying_keys!r}; use ({varying_keys!r},).")
        self.varying_keys = tuple(varying_keys)
        self.flush_secs = flush_secs
        # Every hyperparameter name seen, with a sample value (its type): each trial's HParams
        # experiment lists them all, whichever run TensorBoard takes the columns from.
        self._hparam_samples: dict[str, Any] = {}

    # Picklable: open writers are driver-run state (and hold threads and files).
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_trial_writer"] = {}
        state["_trial_result"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- Paths and hyperparameters ---------------------------------------------------------

    def trial_logdir(self, trial: Trial) -> str:
        """The trial's run directory (local; for a URI storage, Ray's staging copy of it)."""
        fs, path = filesystem(self.logdir)
        if fs.type_name == "local":
            return os.path.join(path, trial.trial_id)
        return os.path.join(trial.storage.experiment_driver_staging_path, "tensorboard",
                            trial.trial_id)

    def trial_hparams(self, trial: Trial) -> dict[str, Any]:
        """The trial's hyperparameters: the static values, then its varying config values."""
        config = dict(getattr(trial, "config", None) or {})
        hparams = dict(self.static)
        hparams.update({k: _hparam_value(config[k]) for k in self.varying_keys if k in config})
        return {k: v for k, v in hparams.items() if v is not None}

    # -- Ray hooks -------------------------------------------------------------------------

    def log_trial_start(self, trial: Trial) -> None:
        """Close the trial's writer if open: the next result reopens it, purging later steps."""
        self._close(trial.trial_id)

    def log_trial_restore(self, trial: Trial) -> None:
        """As :meth:`log_trial_start` (the trial continues from a checkpoint)."""
        self._close(trial.trial_id)

    def log_trial_result(self, iteration: int, trial: Trial, result: dict) -> None:
        """Log every finite numeric scalar of ``result`` at step ``training_iteration``."""
        row = history_row(self.experiment, trial.trial_id, result)
        step = row["iteration"]
        writer = self._trial_writer.get(trial.trial_id)
        if writer is None:
            # purge_step: TensorBoard drops events of an earlier attempt from this step on. The
            # suffix keeps a reopened run's file name new and later in sort order (tensorboardX
            # names files by whole seconds, and a second file of the same second overwrote the
            # first); TensorBoard reads a run's files in name order.
            writer = self._summary_writer_cls(
                self.trial_logdir(trial), flush_secs=self.flush_secs, purge_step=step,
                filename_suffix=f".{time.time_ns()}")
            self._trial_writer[trial.trial_id] = writer
        for key, value in row.items():
            if key in _NOT_SCALARS or isinstance(value, str) or value is None:
                continue
            if hasattr(value, "isoformat") or not math.isfinite(value):
                continue
            writer.add_scalar(key, float(value), global_step=step)
        self._trial_result[trial.trial_id] = row
        writer.flush()

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        """Write the trial's HParams session and close its writer."""
        writer = self._trial_writer.get(trial.trial_id)
        if writer is None:  # ended without a result in this driver: nothing to pair metrics with
            return
        from tensorboardX.summary import hparams

        own = self.trial_hparams(trial)
        for key, value in own.items():
            self._hparam_samples.setdefault(key, value)
        metrics = dict.fromkeys(HPARAMS_METRICS, 0.0)  # hparams() uses the names only
        experiment, _, _ = hparams({**self._hparam_samples, **own}, metrics)
        _, session_start, session_end = hparams(own, metrics)
        for summary in (experiment, session_start, session_end):
            writer.file_writer.add_summary(summary)
        self._close(trial.trial_id)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        """Close every writer still open (trials stopped with the experiment)."""
        for trial_id in list(self._trial_writer):
            self._close(trial_id)

    def _close(self, trial_id: str) -> None:
        # Writers and last rows are keyed by trial id (Ray's base class keys them by Trial).
        writer = self._trial_writer.pop(trial_id, None)
        self._trial_result.pop(trial_id, None)
        if writer is not None:
            writer.close()
