"""``PruneAwareOptunaSearch``: Ray Tune's OptunaSearch, telling Optuna which trials were pruned.

The base of the sweep's searchers (``tuner.experiment.make_searcher``, ``tuner.branching``).
"""
from __future__ import annotations

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna the truth about trials the scheduler stopped.

    Ray's OptunaSearch reports an ASHA-stopped trial as COMPLETE with its truncated value,
    which TPE then treats as a finished result. Here a trial whose last result is not
    ``finished`` is told as PRUNED (its intermediate values stay reported), and a
    ``diverged`` one as FAIL.
    """

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result and not error and not result.get("finished", False) and trial_id not in self._completed_trials:
            state = TrialState.FAIL if result.get("diverged", False) else TrialState.PRUNED
            self._ot_study.tell(self._ot_trials[trial_id], state=state)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def fail_running_trials(journal_path: str, study_name: str, keep: frozenset[int] = frozenset()) -> list[int]:
    """Mark FAIL the RUNNING trials (numbers not in ``keep``) of the study in an Optuna journal file:
    trials no searcher will ever tell (``tuner.experiment.fail_orphaned_study_trials``, ``tuner.budget``).

    Returns:
        The numbers of the trials marked FAIL.
    """
    storage = JournalStorage(JournalFileBackend(journal_path))
    study = optuna.load_study(study_name=study_name, storage=storage)
    running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number not in keep]
    for t in running:
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return [t.number for t in running]
