"""Live progress of a sweep: one line per trial event and a periodic status line with an ETA.

Replaces Ray Tune's verbose output (a 24-line box per trial start and end, a status table
whose columns are the first metrics Ray sees) when the CLI runs without ``--verbose``::

    [  0:31] trial 01d6df1a started (1 of 8): stage2_lr=0.00125 stage2_weight_decay=0.00726
    [  1:02] trial 01d6df1a stage 2 epoch 1/6: val 88.25 (best 88.25)
    [  2:40] trial 01d6df1a pruned at stage 2 epoch 2/6: best val 84.00
    [  3:00] status: 3 of 8 ended (1 completed, 2 pruned), 2 running, 3 not started | best val 77.00 (trial 01d6df1a) | ETA <= 4:10

"best val" is always the best epoch's validation value (the one the store's
``best_val_metric`` and the final summary name). The ETA is the remaining trial-seconds
(every unfinished trial run to its full length, each epoch costing the mean observed time of
an epoch of its stage) divided by the trials running at once; with a scheduler that stops
trials early it is an upper bound ("<="). Lines carry no ANSI codes.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Mapping, TextIO

from ray.tune import Callback

from tuner.store_callback import trial_status


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``.

    >>> format_duration(65), format_duration(3725)
    ('1:05', '1:02:05')
    """
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _value(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class ProgressCallback(Callback):
    """Prints trial starts, epochs and ends, and a status line every ``interval_s``.

    Args:
        expected_trials: trials the experiment runs (``ResolvedSpec.expected_trials``).
        varying_keys: the config keys printed at a trial's start (``ResolvedSpec.varying_keys``).
        mode: "min" or "max" (the validation metric's direction).
        upper_bound: the scheduler may stop trials early, so the ETA is an upper bound.
        interval_s: seconds between status lines.
    """

    def __init__(self, expected_trials: int, varying_keys: tuple[str, ...], mode: str,
                 upper_bound: bool, interval_s: float = 30.0, stream: TextIO | None = None):
        self.expected_trials = expected_trials
        self.varying_keys = tuple(varying_keys)
        self.mode = mode
        self.upper_bound = upper_bound
        self.interval_s = interval_s
        self.stream = stream
        self._start = time.monotonic()
        self._last_status = self._start
        self._started: list[str] = []
        self._ended: dict[str, str] = {}  # trial_id -> status
        self._epochs: dict[str, tuple[int, int]] = {}  # trial_id -> (epochs done, planned)
        self._stage_times: dict[int, list[float]] = {1: [], 2: []}
        self._planned_stage1: dict[str, int] = {}
        self._best: tuple[float, str] | None = None

    # ---- Tune hooks
    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        if trial.trial_id not in self._started:
            self._started.append(trial.trial_id)
        config = trial.config
        self._planned_stage1[trial.trial_id] = int(config.get("stage1_epochs", 0) or 0)
        self._epochs.setdefault(trial.trial_id, (0, self._planned(trial.trial_id, config)))
        searched = " ".join(f"{k}={_value(config[k])}" for k in self.varying_keys if k in config)
        self._print(f"trial {trial.trial_id} started ({self._started.index(trial.trial_id) + 1} of "
                    f"{self.expected_trials}){': ' + searched if searched else ''}")

    def on_trial_result(self, iteration: int, trials: list, trial, result: Mapping[str, Any], **info) -> None:
        stage = int(result.get("stage", 2))
        if _finite(result.get("time_this_iter_s")):
            self._stage_times.setdefault(stage, []).append(float(result["time_this_iter_s"]))
        done, planned = self._epochs.get(trial.trial_id, (0, self._planned(trial.trial_id, trial.config)))
        self._epochs[trial.trial_id] = (int(result.get("epoch", done + 1)), planned)
        best = result.get("best_val_metric")
        if _finite(best) and (self._best is None or self._better(best, self._best[0])):
            self._best = (float(best), trial.trial_id)
        stage_total = (self._planned_stage1[trial.trial_id] if stage == 1
                       else planned - self._planned_stage1.get(trial.trial_id, 0))
        best_text = f" (best {best:.4g})" if _finite(best) else ""
        val = result.get("val_metric")
        head = f"trial {trial.trial_id} stage {stage} epoch {result.get('stage_epoch', '?')}/{stage_total}"
        self._print(f"{head}: val {val:.4g}{best_text}" if _finite(val)
                    else f"{head}: val not finite (train loss {result.get('train_loss')})")

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        result = trial.last_result or {}
        status = trial_status(result)
        self._ended[trial.trial_id] = status
        where = f"stage {result.get('stage', '?')} epoch {result.get('stage_epoch', '?')}"
        best = result.get("best_val_metric")
        best_text = f": best val {best:.4g}" if _finite(best) else ""
        test = result.get("test_metric")
        test_text = f", test {test:.4g}" if status == "completed" and _finite(test) else ""
        self._print(f"trial {trial.trial_id} {status} at {where}{best_text}{test_text}")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._ended[trial.trial_id] = "error"
        self._print(f"trial {trial.trial_id} error: {_last_line(getattr(trial, 'error_file', None))}")

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        now = time.monotonic()
        if now - self._last_status >= self.interval_s:
            self._last_status = now
            self._print(self.status_line(trials))

    def on_experiment_end(self, trials: list, **info) -> None:
        self._print(self.status_line(trials))

    # ---- status
    def status_line(self, trials: list) -> str:
        running = sum(1 for t in trials if t.status == "RUNNING")
        ended = len(self._ended)
        counts = {}
        for status in self._ended.values():
            counts[status] = counts.get(status, 0) + 1
        by_status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        not_started = max(0, self.expected_trials - len(self._started))
        text = (f"status: {ended} of {self.expected_trials} ended{f' ({by_status})' if by_status else ''}, "
                f"{running} running, {not_started} not started")
        if self._best is not None:
            text += f" | best val {self._best[0]:.4g} (trial {self._best[1]})"
        eta = self.eta_s(running, not_started)
        if ended < self.expected_trials:
            text += (f" | ETA {'<=' if self.upper_bound else '~'} {format_duration(eta)}" if eta is not None
                     else " | ETA after the first epochs")
        return text

    def eta_s(self, running: int, not_started: int) -> float | None:
        """Remaining trial-seconds / trials running at once; None until the stages still to run
        have an epoch time (trials not started are assumed to have the first trial's plan)."""
        mean = {s: sum(t) / len(t) for s, t in self._stage_times.items() if t}
        if not self._epochs:
            return None
        left = []  # (stage-1 epochs, stage-2 epochs) still to run, per unfinished trial
        for tid, (done, planned) in self._epochs.items():
            if tid not in self._ended:
                stage1 = self._planned_stage1.get(tid, 0)
                left.append((max(0, stage1 - done), planned - max(done, stage1)))
        first = next(iter(self._epochs))
        stage1, planned = self._planned_stage1.get(first, 0), self._epochs[first][1]
        left += [(stage1, planned - stage1)] * not_started
        seconds = 0.0
        for epochs in left:
            for stage, n in zip((1, 2), epochs):
                if n > 0:
                    if stage not in mean:
                        return None
                    seconds += n * mean[stage]
        return seconds / max(1, running)

    # ---- helpers
    def _planned(self, trial_id: str, config: Mapping[str, Any]) -> int:
        return int(config.get("stage2_epochs", 0)) + self._planned_stage1.get(trial_id, 0)

    def _better(self, a: float, b: float) -> bool:
        return a < b if self.mode == "min" else a > b

    def _print(self, text: str) -> None:
        elapsed = format_duration(time.monotonic() - self._start)
        print(f"[{elapsed:>6}] {text}", file=self.stream or sys.stdout, flush=True)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["stream"] = None  # pickled with the experiment state; the stream is the driver's
        return state


def _last_line(path: str | None) -> str:
    """The last non-empty line of a trial's error file (the exception and its message)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except (OSError, TypeError):
        return "(no error file)"
    return lines[-1] if lines else "(empty error file)"
