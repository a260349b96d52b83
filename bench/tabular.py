"""A tabular benchmark for searchers: recorded learning curves replayed by a tiny Trainable.

Training here is deterministic per (configuration, trial seed), so once a full grid has been
trained for real, every searcher that proposes a configuration of that grid would see exactly
the curve the grid recorded (HPOBench's and LCBench's tabular benchmarks rest on the same
fact). ``replay_trainable`` makes a ``tune.Trainable`` that returns, epoch by epoch, the
recorded results of its configuration (every key the real trainable reports: ``val_metric``,
``stage2_epoch``, ``finished``, ``time_this_iter_s`` ...), sleeping the recorded epoch time
divided by a constant, so that trials run side by side end in the order they ended for real
while the real searchers and schedulers run on it unchanged.

``simulate_slots`` orders results without Ray at all (recorded epoch times on N slots), for a
policy simple enough to need no searcher (train everything one epoch, continue the best).

Bench-only code: imported by ``bench/search_efficiency.py``, never by the package.
"""
from __future__ import annotations

import heapq
import json
import math
import os
import time
from pathlib import Path

import pandas as pd
from ray import tune

# What the real trainable reports per epoch (``TwoStageTrainable._run_epoch`` and ``step``),
# replayed as recorded: the keys ASHA (``stage2_epoch``, ``val_metric``), Optuna
# (``val_metric``, ``finished``, ``diverged``), the store and the progress lines read.
REPLAYED_KEYS = ("stage", "stage_name", "epoch", "stage_epoch", "stage2_epoch", "train_loss", "val_metric",
                 "best_val_metric", "test_metric", "lr", "samples_per_s", "diverged", "finished",
                 "stage1_reused", "stage1_saved_s", "time_this_iter_s")
CHECKPOINT_FILE = "replay.json"


def curves_from_run(history: pd.DataFrame, trials: pd.DataFrame, key: str) -> dict[float, list[dict]]:
    """The recorded learning curves of a run, by the value of config ``key``: one result dict
    per epoch (``REPLAYED_KEYS`` that were recorded), in iteration order.

    Raises:
        ValueError: two trials share a value of ``key`` (the table would be ambiguous).
    """
    values = trials.set_index("trial_id")[f"config/{key}"]
    if values.duplicated().any():
        raise ValueError(f"several trials per {key} value: {values.tolist()}")
    keys = [k for k in REPLAYED_KEYS if k in history.columns]
    curves = {}
    for trial_id, rows in history.sort_values("iteration").groupby("trial_id", sort=False):
        curves[float(values[trial_id])] = [{k: _plain(row[k]) for k in keys} for _, row in rows.iterrows()]
    return curves


def _plain(value):
    """A store value as the trainable reported it (NULL floats back to NaN, numpy to Python)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return float("nan")
    return value.item() if hasattr(value, "item") else value


def save_curves(curves: dict[float, list[dict]], path: Path, meta: dict) -> None:
    path.write_text(json.dumps({"meta": meta, "curves": [[value, rows] for value, rows in curves.items()]}))


def load_curves(path: Path) -> tuple[dict[float, list[dict]], dict]:
    data = json.loads(path.read_text())
    return {float(value): rows for value, rows in data["curves"]}, data["meta"]


def lookup(curves: dict[float, list[dict]], value: float) -> list[dict]:
    """The curve of ``value`` (exact float, else the one within 1e-9 relative).

    Raises:
        KeyError: no recorded curve for ``value``.
    """
    if value in curves:
        return curves[value]
    for known, rows in curves.items():
        if math.isclose(known, value, rel_tol=1e-9):
            return rows
    raise KeyError(f"no recorded curve for {value!r}; recorded: {sorted(curves)}")


def replay_trainable(curves: dict[float, list[dict]], key: str, speedup: float) -> type:
    """A ``tune.Trainable`` replaying ``curves`` for its config's ``key``.

    Each ``step`` sleeps the recorded ``time_this_iter_s / speedup`` and returns the recorded
    result (``time_this_iter_s`` included, so Ray's ``time_total_s`` is the real one); the last
    recorded epoch also says ``done``. Checkpoints hold the epoch reached, so ASHA's and Tune's
    pause / restore work. The class is built here (not at module level) so Ray ships it by
    value with the table inside it.
    """

    class ReplayTrainable(tune.Trainable):
        def setup(self, config: dict) -> None:
            self.curve, self.done_epochs = lookup(curves, config[key]), 0

        def reset_config(self, new_config: dict) -> bool:
            self.setup(new_config)
            return True

        def step(self) -> dict:
            row = self.curve[self.done_epochs]
            self.done_epochs += 1
            time.sleep(row["time_this_iter_s"] / speedup)
            return {**row, **({"done": True} if self.done_epochs == len(self.curve) else {})}

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            with open(os.path.join(checkpoint_dir, CHECKPOINT_FILE), "w") as f:
                json.dump({"done_epochs": self.done_epochs}, f)

        def load_checkpoint(self, checkpoint_dir: str) -> None:
            with open(os.path.join(checkpoint_dir, CHECKPOINT_FILE)) as f:
                self.done_epochs = json.load(f)["done_epochs"]

    return ReplayTrainable


def seen_vs_recorded(history: pd.DataFrame, trials: pd.DataFrame, curves: dict[float, list[dict]],
                     key: str) -> tuple[int, float]:
    """(results compared, largest |val_metric difference|) between a run's results and the
    recorded curves, matched on (config ``key``, ``stage2_epoch``); NaN == NaN counts as equal."""
    values = trials.set_index("trial_id")[f"config/{key}"]
    worst, n = 0.0, 0
    for _, row in history.iterrows():
        recorded = lookup(curves, float(values[row["trial_id"]]))[int(row["iteration"]) - 1]
        assert recorded["stage2_epoch"] == row["stage2_epoch"], (recorded, row)
        a, b = float(row["val_metric"]), float(recorded["val_metric"])
        n += 1
        if not (math.isnan(a) and math.isnan(b)):
            worst = max(worst, abs(a - b)) if not (math.isnan(a) or math.isnan(b)) else math.inf
    return n, worst


def simulate_slots(jobs: list[tuple[object, list[float]]], slots: int, start: float = 0.0
                   ) -> list[tuple[float, object, int]]:
    """Run ``jobs`` (name, epoch durations), queued in order, on ``slots`` slots that each take
    the next queued job when free: the results ``(time, name, epoch)`` in the order they end."""
    free = [start] * slots
    heapq.heapify(free)
    results = []
    for name, durations in jobs:
        t = heapq.heappop(free)
        for epoch, d in enumerate(durations, 1):
            t += d
            results.append((t, name, epoch))
        heapq.heappush(free, t)
    return sorted(results, key=lambda r: r[0])
