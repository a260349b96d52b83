"""Live progress: one line per trial event, a status line with counts, best value and ETA."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tuner.progress import ProgressCallback

REPO = Path(__file__).resolve().parents[1]


def _trial(trial_id, status="RUNNING", **config):
    return SimpleNamespace(trial_id=trial_id, status=status, last_result={}, error_file=None,
                           config={"stage2_epochs": 3, "task": "t", **config})


def _result(stage, stage_epoch, epoch, val, best, seconds, **extra):
    return {"stage": stage, "stage_epoch": stage_epoch, "epoch": epoch, "val_metric": val,
            "best_val_metric": best, "time_this_iter_s": seconds, **extra}


def _callback(expected=3, upper_bound=True):
    out = io.StringIO()
    return ProgressCallback(expected, ("lam", "seed"), "min", upper_bound=upper_bound, interval_s=1e9,
                            stream=out), out


def test_one_line_per_event_with_searched_values_and_best_so_far():
    cb, out = _callback()
    a = _trial("a", lam=0.5, seed=0, stage1_epochs=2)
    cb.on_trial_start(0, [a], a)
    cb.on_trial_result(0, [a], a, _result(1, 1, 1, 90.0, float("nan"), 10.0))
    cb.on_trial_result(0, [a], a, _result(1, 2, 2, 88.0, float("nan"), 10.0))
    cb.on_trial_result(0, [a], a, _result(2, 1, 3, 80.0, 80.0, 4.0))
    cb.on_trial_result(0, [a], a, _result(2, 2, 4, 82.0, 80.0, 4.0))
    a.last_result = _result(2, 2, 4, 82.0, 80.0, 4.0, finished=False)
    cb.on_trial_complete(0, [a], a)
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "trial a started (1 of 3): lam=0.5 seed=0",  # searched values only, not task / stage2_epochs
        "trial a stage 1 epoch 1/2: val 90",
        "trial a stage 1 epoch 2/2: val 88",
        "trial a stage 2 epoch 1/3: val 80 (best 80)",
        "trial a stage 2 epoch 2/3: val 82 (best 80)",  # best = the best epoch's value
        "trial a pruned at stage 2 epoch 2: best val 80",
    ]
    assert "\x1b" not in out.getvalue()


def test_status_line_counts_and_eta_by_hand():
    cb, out = _callback(expected=3)
    a, b = _trial("a", lam=0.1, seed=0, stage1_epochs=2), _trial("b", lam=0.2, seed=0, stage1_epochs=2)
    for t in (a, b):
        cb.on_trial_start(0, [a, b], t)
    cb.on_trial_result(0, [a, b], a, _result(1, 1, 1, 90.0, float("nan"), 10.0))
    cb.on_trial_result(0, [a, b], b, _result(1, 1, 1, 91.0, float("nan"), 20.0))
    # no stage-2 epoch timed yet: no ETA
    assert cb.status_line([a, b]).endswith("| ETA after the first epochs")
    cb.on_trial_result(0, [a, b], a, _result(1, 2, 2, 89.0, float("nan"), 15.0))
    cb.on_trial_result(0, [a, b], a, _result(2, 1, 3, 70.0, 70.0, 6.0))
    # stage-1 epoch 15 s (mean of 10, 20, 15), stage-2 epoch 6 s. Left: a 2 stage-2 epochs,
    # b 1 stage-1 + 3 stage-2, the trial not started 2 + 3: 12 + 33 + 48 = 93 s over 2 running.
    assert cb.eta_s(running=2, not_started=1) == pytest.approx(93 / 2)
    line = cb.status_line([a, b])
    assert line == "status: 0 of 3 ended, 2 running, 1 not started | best val 70 (trial a) | ETA <= 0:46"
    a.status = "TERMINATED"
    a.last_result = _result(2, 3, 5, 65.0, 65.0, 6.0, finished=True, test_metric=66.0)
    cb.on_trial_complete(0, [a, b], a)
    assert out.getvalue().splitlines()[-1].endswith("trial a completed at stage 2 epoch 3: best val 65, test 66")
    assert cb.status_line([a, b]).startswith("status: 1 of 3 ended (1 completed), 1 running, 1 not started")


def test_eta_is_approximate_without_early_stopping_and_survives_pickling():
    cb, _ = _callback(expected=1, upper_bound=False)
    a = _trial("a", lam=0.1, seed=0)
    cb.on_trial_start(0, [a], a)
    cb.on_trial_result(0, [a], a, _result(2, 1, 1, 70.0, 70.0, 5.0))
    assert cb.status_line([a]).endswith("| ETA ~ 0:10")
    restored = pickle.loads(pickle.dumps(cb))
    assert restored.stream is None and restored.eta_s(1, 0) == 10.0


@pytest.mark.ray
def test_cli_prints_one_line_per_event_no_boxes_no_ansi(tmp_path):
    """The README's command shape on the toy task: a short, plain log with a final summary."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tuner.sweep", "--task", "test_toy_task", "--method", "finetune", "--scale", "mini",
         "--backbone", "test_efficientnet", "--init", "random", "--num-samples", "3", "--max-epochs", "2",
         "--data-dir", str(tmp_path / "data"), "--storage", str(tmp_path / "r"), "--name", "p"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert "\x1b[" not in text and "╭" not in text and "Checkpoint successfully created" not in text
    lines = proc.stdout.splitlines()
    starts = [line for line in lines if " started (" in line]
    assert len(starts) == 3 and all("stage2_lr=" in line for line in starts)
    assert any("status: 3 of 3 ended" in line for line in lines)
    assert any(line.startswith("Best trial ") for line in lines)
    assert len(lines) <= 3 * 4 + 15, proc.stdout  # start + 2 epochs + end per trial, status, summary
