"""``--budget-samples N``: end a sweep once its trials have trained on N samples, stage 1 included.

A search's cost is what its trials train, not its trial count or stage-2 epochs: ASHA's clock
(stage-2 epochs) does not see a stage 1, and a branch that replays its root's stage 1
(``tuner.branching``) costs none. Every result reports ``samples_total`` (the training samples
the trial processed so far, both stages, a replayed stage 1 counting zero:
``TwoStageTrainable.step``); ``SampleBudget`` sums the latest value of every trial and, once the
sum reaches the budget, ends each trial at its next result (as pruned, results kept) and then the
experiment. The budget is overshot by at most one epoch of each trial running at that moment.
A sample is a sample whatever it costs: a MoNA stage-1 sample costs ~3x a stage-2 one on the
embedded default (``bench/RESULTS.md``), so compare methods with different stage 1s in
trial-seconds too.

On ``--resume`` the ended trials' totals are read back from the results store, so the budget
counts what the interrupted run spent.
"""
from __future__ import annotations

import logging
import os

from ray.tune import Callback, Stopper

log = logging.getLogger(__name__)


class SampleBudget(Stopper, Callback):
    """Stop the sweep once the trials' ``samples_total`` sum to ``budget``.

    Passed to Tune twice, as ``RunConfig(stop=...)`` and in ``callbacks``: as a stopper it ends
    each trial that reports once the budget is spent (Tune's normal stop, so the scheduler, the
    searcher and the store see a pruned trial), and ends the experiment (``stop_all``, which Tune
    carries out without telling callbacks or the searcher) only once every trial it saw has ended;
    as a callback it learns which trials ended otherwise (ASHA, completion, error). A trial Tune
    started that had not reported when the experiment ends trained nothing counted and gets no
    store row; its Optuna trial is marked FAIL (``fail_running_study_trials``).

    Args:
        budget: training samples, > 0.
        storage, experiment: the results store holding the trials that ended before a resume.
    """

    def __init__(self, budget: int, storage: str, experiment: str):
        if budget <= 0:
            raise ValueError(f"--budget-samples must be > 0, got {budget}")
        self.budget, self.storage, self.experiment = budget, storage, experiment
        self.spent: dict[str, float] | None = None  # trial id -> its latest samples_total
        self.running: set[str] = set()  # trials that reported and have not ended

    def __call__(self, trial_id: str, result: dict) -> bool:
        spent = self._spent()
        spent[trial_id] = float(result.get("samples_total", 0))
        self.running.add(trial_id)  # until Tune says it ended: stop_all must not cut its stop short
        return self.spent_all()

    def stop_all(self) -> bool:
        return self.spent_all() and not self.running

    def spent_all(self) -> bool:
        return self.total() >= self.budget

    def total(self) -> float:
        return sum(self._spent().values())

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self.running.discard(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self.running.discard(trial.trial_id)

    def on_experiment_end(self, trials: list, **info) -> None:
        if self.spent_all():
            log.info("sample budget spent: %d of %d training samples", self.total(), self.budget)
            fail_running_study_trials(self.storage, self.experiment)

    def _spent(self) -> dict[str, float]:
        """The per-trial totals, first filled from the store (trials that ended before a resume)."""
        if self.spent is None:
            self.spent = stored_totals(self.storage, self.experiment)
        return self.spent

    def __getstate__(self) -> dict:  # pickled with the Tuner at the start: re-read the store after a restore
        return {**self.__dict__, "spent": None, "running": set()}


def fail_running_study_trials(storage: str, experiment: str) -> int:
    """Mark FAIL the Optuna study's RUNNING trials (Tune ended them unreported); returns how many."""
    from tuner.optuna_search import fail_running_trials
    from tuner.store import optuna_study_path

    path = optuna_study_path(storage, experiment)
    if "://" in path or not os.path.exists(path):
        return 0
    return len(fail_running_trials(path, experiment))


def stored_totals(storage: str, experiment: str) -> dict[str, float]:
    """``samples_total`` of every trial the store lists as ended (none for a new experiment)."""
    from tuner.store import read_trials

    trials = read_trials(storage, experiment)
    if not len(trials) or "samples_total" not in trials:
        return {}
    return {t: float(s) for t, s in zip(trials["trial_id"], trials["samples_total"].fillna(0.0))}


def budget_spent(trials, budget: int) -> bool:
    """Whether the ended trials (``tuner.store.read_trials``) spent ``budget`` samples (0: no budget)."""
    return bool(budget) and len(trials) > 0 and float(trials["samples_total"].fillna(0.0).sum()) >= budget
