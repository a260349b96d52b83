"""``--budget-samples`` (tuner/budget.py): a sweep ends once its trials trained on N samples."""
from __future__ import annotations

import pickle

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from trial_configs import TOY

from tuner.budget import SampleBudget, budget_spent
from tuner.spec import SweepSpec
from tuner.store import TRIALS, append_rows, optuna_study_path, read_trials


class Ended:
    def __init__(self, trial_id: str):
        self.trial_id = trial_id


def test_counts_each_trials_latest_total_once_and_ends_when_none_runs(tmp_path):
    b = SampleBudget(100, str(tmp_path), "e")
    assert not b("a", {"samples_total": 30})
    assert not b("a", {"samples_total": 60})  # cumulative: the latest replaces, not adds
    assert not b("b", {"samples_total": 0})  # a branch replaying its stage 1
    assert not b("c", {"samples_total": 10})
    assert b.total() == 70 and not b.stop_all()
    assert b("b", {"samples_total": 40})  # the budget is spent: the reporting trial stops
    assert b.total() == 110 and not b.stop_all()  # until Tune has ended it (and a and c)
    for trial in ("b", "c"):  # b as asked, c e.g. by ASHA
        b.on_trial_complete(0, [], Ended(trial))
    assert b("a", {"samples_total": 90}) and not b.stop_all()
    b.on_trial_complete(0, [], Ended("a"))
    assert b.stop_all()


def test_a_restored_budget_counts_the_trials_that_ended_before(tmp_path):
    b = SampleBudget(100, str(tmp_path), "e")
    b("a", {"samples_total": 60})
    restored = pickle.loads(pickle.dumps(b))  # as Tuner.restore unpickles it
    append_rows(str(tmp_path), "e", TRIALS, [{"experiment": "e", "trial_id": "a", "status": "completed",
                                              "samples_total": 70.0}])
    assert restored("c", {"samples_total": 30}) and restored.total() == 100


def test_refuses_a_non_positive_budget(tmp_path):
    with pytest.raises(ValueError, match="must be > 0"):
        SampleBudget(0, str(tmp_path), "e")
    with pytest.raises(ValueError, match="--budget-samples is out of range"):
        SweepSpec(method="finetune", budget_samples=-1, data_dir=str(tmp_path), storage=str(tmp_path), **TOY).resolve()


@pytest.mark.ray
def test_sweep_stops_at_the_budget_and_says_so(ray_local, tmp_path, capsys):
    from tuner.sweep import run

    spec = SweepSpec(method="finetune", data_dir=str(tmp_path / "data"), max_epochs=3, max_train_samples=64,
                     storage=str(tmp_path / "r"), name="budget", num_samples=6, budget_samples=250,
                     max_concurrent=1, **TOY)
    assert run(spec) == 0
    trials = read_trials(str(tmp_path / "r"), "budget")
    spent = trials["samples_total"].sum()
    per_epoch = spent / trials["iterations"].sum()
    assert 250 <= spent < 250 + per_epoch  # one trial at a time: stopped at the epoch that crossed it
    assert len(trials) < 6 and budget_spent(trials, 250)
    assert trials.sort_values("written_at")["status"].iloc[-1] == "pruned"  # the one the budget stopped
    study = optuna.load_study(study_name="budget", storage=JournalStorage(JournalFileBackend(
        optuna_study_path(str(tmp_path / "r"), "budget"))))
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert "Sample budget spent" in capsys.readouterr().out
