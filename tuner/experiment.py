"""Experiment assembly: a ``ResolvedSpec`` becomes a ``ray.tune.Tuner``.

Search mode: TPE (Optuna, seeded, options explicit) proposes configurations from the
method's define-by-run space and ASHA stops weak trials on the validation metric.
Sensitivity mode: a grid over one dimension x seeds, run to full length. Either way every
result and every trial's end goes to the Parquet store through ``ResultsStoreCallback``.
"""
from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path

import optuna
import ray
from ray import tune
from optuna.trial import TrialState
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from search_spaces.overrides import overridden_space
from trainables.metrics import get_metric
from trainables.registry import get_method, get_task
from tuner.spec import DATA_SEED, ResolvedSpec
from tuner.store_callback import ResultsStoreCallback

log = logging.getLogger(__name__)

METRIC = "val_metric"


def start_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Attach to ``address`` (or $RAY_ADDRESS) or start a private local Ray.

    The local instance stays on loopback only if ``tuner.sweep.LOOPBACK_ENV`` was in the environment
    before ``ray`` was imported (``tuner.sweep.main`` sees to that).
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)


def check_resources(resolved: ResolvedSpec) -> None:
    """Refuse requests the cluster can never satisfy (they would stay PENDING forever).

    Raises:
        ValueError: naming the request and what the cluster has.
    """
    have = ray.cluster_resources()
    spec = resolved.spec
    if spec.gpus_per_trial > 0 and have.get("GPU", 0) < spec.gpus_per_trial:
        raise ValueError(
            f"--gpus-per-trial {spec.gpus_per_trial} asked for, but the Ray cluster has "
            f"{have.get('GPU', 0):g} GPUs: run with --gpus-per-trial 0 or attach to a GPU cluster (--address)."
        )
    if have.get("CPU", 0) < spec.cpus_per_trial:
        raise ValueError(f"--cpus-per-trial {spec.cpus_per_trial} exceeds the cluster's {have.get('CPU', 0):g} CPUs")


def trial_dirname(trial) -> str:
    """Short trial directory names (Ray's default embeds every config value)."""
    return f"{trial.trainable_name}_{trial.trial_id}"


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


def make_searcher(resolved: ResolvedSpec, mode: str) -> PruneAwareOptunaSearch:
    """TPE over the method's define-by-run space, seeded; ``--space`` ranges applied and
    ``--set`` / fixed ``--space`` dimensions held."""
    spec = resolved.spec
    sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
        seed=spec.seed, n_startup_trials=max(2, spec.num_samples // 4),
        multivariate=True, constant_liar=True,  # explicit: Optuna 5 changed the defaults
    )
    if resolved.fixed:
        with warnings.catch_warnings():  # stable since Optuna 2.4, still flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.PartialFixedSampler(resolved.fixed, sampler)
    method_space = get_method(spec.method).space
    if resolved.ranges:
        space = functools.partial(overridden_space, space=method_space, defaults=resolved.defaults,
                                  ranges=resolved.ranges)
    else:
        space = functools.partial(method_space, defaults=resolved.defaults)
    return PruneAwareOptunaSearch(space=space, metric=METRIC, mode=mode, sampler=sampler)


def build_tuner(resolved: ResolvedSpec, data_source: str) -> tune.Tuner:
    """The Tuner for ``resolved``; Ray must be initialised (``start_ray``).

    Search mode: TPE proposals and ASHA. Sensitivity mode: the full grid (values x seeds),
    every trial to full length (pruning would bias the curve).

    Args:
        data_source: from ``prepare_data``; stored with every trial.
    """
    spec = resolved.spec
    method, task = get_method(spec.method), get_task(spec.task)
    mode = get_metric(task.metric).mode
    param_space = resolved.trial_constants()
    if resolved.grid is not None:
        key, values = resolved.grid
        param_space.update(resolved.fixed)
        param_space[key] = tune.grid_search(list(values))
        param_space["seed"] = tune.grid_search([spec.seed + i for i in range(spec.seeds)])
        search = dict(num_samples=1, scheduler=FIFOScheduler())
    else:
        scheduler = ASHAScheduler(
            time_attr="stage2_epoch", max_t=resolved.stage2_epochs,  # stage 1 never pruned
            grace_period=spec.grace_period, reduction_factor=spec.reduction_factor,
        )
        search = dict(num_samples=spec.num_samples, search_alg=make_searcher(resolved, mode), scheduler=scheduler)
    store = ResultsStoreCallback(resolved.storage, resolved.name,
                                 static={**resolved.result_columns(), "data_source": data_source},
                                 metric=METRIC, mode=mode)
    trainable = tune.with_resources(method.trainable, {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial})
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=METRIC, mode=mode, max_concurrent_trials=spec.max_concurrent or None,
            reuse_actors=True, trial_dirname_creator=trial_dirname, **search,
        ),
        run_config=tune.RunConfig(
            name=resolved.name, storage_path=resolved.storage, callbacks=[store],
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1, num_to_keep=1,
                                                    checkpoint_at_end=True),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=1,
        ),
    )


def prepare_data(resolved: ResolvedSpec) -> str:
    """Generate embedded data once on the driver (trials then read the cache).

    Returns:
        The data source recorded with every trial, e.g. ``file:s2_cifar100.gz``.
    """
    task = get_task(resolved.spec.task)
    if resolved.scale == "mini":
        return task.loader(Path(resolved.data_root), "mini", DATA_SEED).source
    return "file:" + ",".join(task.data_files)
