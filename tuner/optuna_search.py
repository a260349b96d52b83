"""``PruneAwareOptunaSearch``: Ray Tune's OptunaSearch, telling Optuna which trials were pruned.

The base of the sweep's searchers (``tuner.experiment.make_searcher``, ``tuner.branching``).
"""
from __future__ import annotations

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
