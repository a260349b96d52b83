"""Faults of a real driver process: SIGKILL then ``--resume``, and Ctrl-C.

Each test runs ``python -m tuner.sweep`` in a subprocess with its own local Ray. Ray's agent
processes outlive a SIGKILLed driver, so every process the test started carries a marker in its
environment and is ended by PID afterwards (never ``ray stop``, which ends every Ray on the host).
"""
from __future__ import annotations

import glob
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tuner import store

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
MARKER_VAR = "CROSSMODAL_TEST_MARKER"
TOY_ARGS = ["--task", "test_toy_task", "--method", "finetune", "--backbone", "test_efficientnet",
            "--init", "random", "--scale", "mini", "--num-samples", "4", "--max-concurrent", "2"]


@pytest.fixture
def driver_env():
    """Environment for driver subprocesses, with a marker; ends every marked process afterwards."""
    marker = uuid.uuid4().hex
    env = {**os.environ, MARKER_VAR: marker, "HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}
    yield env
    _kill_marked(marker)


def _kill_marked(marker: str) -> None:
    needle = f"{MARKER_VAR}={marker}".encode()
    for environ in glob.glob("/proc/[0-9]*/environ"):
        try:
            if needle in Path(environ).read_bytes().split(b"\0"):
                os.kill(int(environ.split("/")[2]), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _start(env, tmp_path, *args) -> subprocess.Popen:
    log = open(tmp_path / f"driver-{time.time_ns()}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "tuner.sweep", *args], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {condition.__doc__}")


def _consistent(trials, history) -> None:
    assert trials.trial_id.is_unique and not history.duplicated(["trial_id", "iteration"]).any()
    for row in trials.itertuples():
        its = sorted(history[history.trial_id == row.trial_id].iteration)
        assert its == list(range(1, row.iterations + 1)), row.trial_id


def test_sigkilled_driver_resumes_without_rerunning_or_duplicating(driver_env, tmp_path):
    storage, name = str(tmp_path / "results"), "killed"
    args = [*TOY_ARGS, "--max-epochs", "8", "--grace-period", "8", "--data-dir", str(tmp_path / "data"),
            "--storage", storage, "--name", name]
    driver = _start(driver_env, tmp_path, *args)

    def one_ended_and_one_running():
        """one trial ended while another has reported, and Tune's experiment snapshot (written at
        most every 10 s, more rarely when a snapshot is slow) is newer than every ended trial's end
        and every running trial's first checkpoint. Tune resumes from that snapshot: a trial that
        ended after it rightly re-runs its epochs since the checkpoint it names (to the same result),
        and a trial killed before any snapshot names its checkpoint restarts from its first epoch;
        neither is what this test checks"""
        trials, history = store.read_trials(storage, name), store.read_history(storage, name)
        running = set(history.trial_id) - set(trials.trial_id) if len(history) else set()
        if not (len(trials) >= 1 and running):
            return False
        snapshots = glob.glob(os.path.join(storage, name, "experiment_state-*.json"))
        latest = max((os.path.getmtime(f) for f in snapshots), default=0.0)
        first_reports = history[history.trial_id.isin(running)].groupby("trial_id")["written_at"].min()
        covered = max(t.timestamp() for t in [*first_reports, *trials.written_at])
        return latest - 0.5 > covered and (trials, history)

    ended_before, _ = _wait_for(one_ended_and_one_running)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    _kill_marked(driver_env[MARKER_VAR])
    ended_before = store.read_trials(storage, name)  # re-read: nothing can change it now
    first_run = store.read_history(storage, name)
    assert len(ended_before) < 4

    resumed = _start(driver_env, tmp_path, "--resume", "--name", name, "--storage", storage)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]

    trials, history = store.read_trials(storage, name), store.read_history(storage, name)
    assert len(trials) == 4 and set(trials.status) == {"completed"}
    _consistent(trials, history)
    for row in ended_before.itertuples():  # ended trials were not re-run or rewritten
        again = trials.set_index("trial_id").loc[row.trial_id]
        assert again.iterations == row.iterations and again.test_metric == row.test_metric
        assert set(history[history.trial_id == row.trial_id].node_id) == set(first_run.node_id)
    # Unfinished trials continued from a checkpoint: their rows from the killed run are kept and
    # the new driver's Ray node reported only the later iterations.
    unfinished = set(first_run.trial_id) - set(ended_before.trial_id)
    old_node = set(first_run.node_id)
    for trial_id in unfinished:
        rows = history[history.trial_id == trial_id].sort_values("iteration")
        new_rows = rows[~rows.node_id.isin(old_node)]
        if new_rows.empty:  # it had reported its last epoch before the kill: resuming only ended it
            assert rows.iteration.max() == trials.set_index("trial_id").loc[trial_id, "iterations"], trial_id
        else:
            assert new_rows.iteration.min() > 1, trial_id
    # The Optuna study came back with the experiment (its journal on disk): the four trials told
    # COMPLETE with the stored configurations; whatever the killed driver asked for after Tune's
    # last snapshot is FAIL, nothing is left RUNNING.
    state_file = sorted(glob.glob(f"{storage}/{name}/searcher-state-*.pkl"))[-1]
    with open(state_file, "rb") as f:
        study = pickle.load(f)["_ot_study"]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4 and {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.FAIL}
    sampled = sorted(t.params["stage2_lr"] for t in complete)
    assert sampled == pytest.approx(sorted(trials["config/stage2_lr"]))


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(driver_env, tmp_path):
    storage, name = str(tmp_path / "results"), "interrupted"
    args = [*TOY_ARGS, "--max-epochs", "30", "--grace-period", "30", "--data-dir", str(tmp_path / "data"),
            "--storage", storage, "--name", name]
    driver = _start(driver_env, tmp_path, *args)

    def reported():
        """a first result in the store"""
        return len(store.read_history(storage, name)) > 0

    _wait_for(reported)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=180)
    assert driver.returncode != 0
    assert f"--resume --name {name} --storage {storage}" in err
    assert "Traceback" not in err
    trials, history = store.read_trials(storage, name), store.read_history(storage, name)
    assert len(trials) < 4 and len(history) > 0
    _consistent(trials, history)
    unfinished = set(history.trial_id) - set(trials.trial_id)
    for trial_id in unfinished:  # Tune checkpointed what was running before it stopped
        assert glob.glob(f"{storage}/{name}/*_{trial_id}/checkpoint_*/state.pt"), trial_id
