"""Experiment assembly: a ``ResolvedSpec`` becomes a ``ray.tune.Tuner`` and is run.

``run_experiment`` is the one pipeline the CLI, the benchmarks and the tests call (checks,
data preparation, Ray, build or restore, fit, the store's tables); ``build_tuner`` takes
``search`` / ``param_space`` overrides so a benchmark can swap the searcher and scheduler on
otherwise the same Tuner.

Search mode: TPE (Optuna, seeded, options explicit) proposes configurations from the
method's define-by-run space and ASHA stops weak trials on the validation metric.
Sensitivity mode: a grid over one dimension x seeds, run to full length. Either way every
result and every trial's end goes to the Parquet store through ``ResultsStoreCallback``.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import logging
import os
import pickle
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
from ray import tune
import pyarrow.fs as pafs
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from search_spaces.overrides import overridden_space
from trainables.metrics import get_metric
from trainables.registry import get_method, get_task
from tuner.branching import BranchingOptunaSearch, waiting_slots_message
from tuner.budget import SampleBudget
from tuner.optuna_search import PruneAwareOptunaSearch, fail_running_trials
from tuner.progress import ProgressCallback
from tuner.spec import DATA_SEED, ResolvedSpec, SweepSpec, absolute_storage
from tuner.store import (
    experiment_dir,
    filesystem,
    list_experiments,
    optuna_study_path,
    read_history,
    read_trials,
    unknown_experiment_message,
)
from tuner.store_callback import ResultsStoreCallback
from tuner.tensorboard import TrialTensorBoardCallback

log = logging.getLogger(__name__)

METRIC = "val_metric"
SPEC_FILE = "sweep_spec.json"  # next to Ray's experiment state: what --resume re-reads


def trial_dirname(trial) -> str:
    """Short trial directory names (Ray's default embeds every config value)."""
    return f"{trial.trainable_name}_{trial.trial_id}"


def make_searcher(resolved: ResolvedSpec, mode: str) -> PruneAwareOptunaSearch:
    """TPE over the method's define-by-run space, seeded; ``--space`` ranges applied and
    ``--set`` / fixed ``--space`` dimensions held; ``--branching K``: ``tuner.branching``'s searcher."""
    spec = resolved.spec
    sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
        seed=spec.seed, n_startup_trials=max(2, spec.num_samples // 4),
        multivariate=True, constant_liar=True,  # explicit: Optuna 5 changed the defaults
    )
    if resolved.fixed:
        with warnings.catch_warnings():  # stable since Optuna 2.4, still flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.PartialFixedSampler(resolved.fixed, sampler)
    space = functools.partial(overridden_space, space=get_method(spec.method).space, defaults=resolved.defaults,
                              ranges=resolved.ranges, held=resolved.fixed)
    kwargs = dict(space=space, metric=METRIC, mode=mode, sampler=sampler, study_name=resolved.name,
                  storage=study_storage(resolved))
    if spec.branching:
        return BranchingOptunaSearch(stage1_keys=get_method(spec.method).trainable.stage1_keys,
                                     configs=spec.branching, seeds=resolved.root_seeds, **kwargs)
    return PruneAwareOptunaSearch(**kwargs)


def study_storage(resolved: ResolvedSpec) -> optuna.storages.BaseStorage | None:
    """The Optuna study's storage: a journal file in the experiment directory
    (``store.optuna_study_path``), so ``optuna-dashboard <file>``, ``optuna.load_study`` and
    ``optuna.visualization`` work during and after the sweep; ``--resume`` keeps appending to it.

    Object-store ``--storage`` (s3://, gs://) cannot hold Optuna's file journal (it appends and
    locks in place): the study stays in memory there (still checkpointed for ``--resume``), and
    the sweep logs so.
    """
    path = optuna_study_path(resolved.storage, resolved.name)
    fs, local = filesystem(path)
    if not isinstance(fs, pafs.LocalFileSystem):
        log.warning("Optuna study kept in memory: %s is not a local or mounted path (the journal file "
                    "storage needs one); Ray's experiment checkpoint still restores it on --resume", path)
        return None
    Path(local).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(local))


def default_search(resolved: ResolvedSpec, mode: str) -> tuple[dict, dict]:
    """The spec's (param_space, TuneConfig search part): TPE + ASHA, or the sensitivity grid
    (or the defaults) x seeds."""
    spec = resolved.spec
    param_space = resolved.trial_constants()
    if resolved.repeats:  # sensitivity or at-defaults: every configuration x seed, to full length
        param_space.update(resolved.fixed)
        if resolved.grid is not None:
            key, values = resolved.grid
            param_space[key] = tune.grid_search(list(values))
        param_space["seed"] = tune.grid_search([spec.seed + i for i in range(spec.seeds)])
        return param_space, dict(num_samples=1, scheduler=FIFOScheduler())
    scheduler = ASHAScheduler(
        time_attr="stage2_epoch", max_t=resolved.stage2_epochs,  # stage 1 never pruned
        grace_period=spec.grace_period, reduction_factor=spec.reduction_factor,
    )
    return param_space, dict(num_samples=spec.num_samples, search_alg=make_searcher(resolved, mode),
                             scheduler=scheduler)


def build_tuner(resolved: ResolvedSpec, data_source: str, trainable: type | None = None,
                search: dict | None = None, param_space: dict | None = None,
                verbose: bool = False) -> tune.Tuner:
    """The Tuner for ``resolved``; Ray must be initialised (``start_ray``).

    Search mode: TPE proposals and ASHA. Sensitivity mode: the full grid (values x seeds),
    every trial to full length (pruning would bias the curve).

    Args:
        data_source: from ``prepare_data``; stored with every trial.
        trainable: a subclass to run instead of the method's registered Trainable (same config).
        search: ``num_samples`` / ``search_alg`` / ``scheduler`` instead of the spec's
            (benchmarks compare searchers on otherwise the same Tuner).
        param_space: instead of the spec's (``default_search``).
        verbose: Ray Tune's own console output (status tables, a box per trial) instead of
            ``tuner.progress``'s one line per trial event.
    """
    mode = get_metric(get_task(resolved.spec.task).metric).mode
    if search is None or param_space is None:
        spec_space, spec_search = default_search(resolved, mode)
        param_space = spec_space if param_space is None else param_space
        search = spec_search if search is None else search
    store = ResultsStoreCallback(resolved.storage, resolved.name,
                                 static={**resolved.result_columns(), "data_source": data_source},
                                 metric=METRIC, mode=mode)
    callbacks = [store, TrialTensorBoardCallback(resolved.storage, resolved.name, static=resolved.result_columns(),
                                                 varying_keys=resolved.varying_keys())]
    budget = SampleBudget(resolved.spec.budget_samples, resolved.storage, resolved.name) \
        if resolved.spec.budget_samples else None
    if budget is not None:
        callbacks.append(budget)  # the stopper also watches trials end (tuner.budget)
    if not verbose:
        callbacks.append(ProgressCallback(resolved.expected_trials, resolved.varying_keys(), mode,
                                          upper_bound=not resolved.repeats))
    concurrency = max_concurrent(resolved, search)
    if resolved.spec.branching and (waiting := waiting_slots_message(resolved.spec.branching, resolved.spec.seeds,
                                                                     concurrency)):
        log.warning(waiting)
    return tune.Tuner(
        resourced_trainable(resolved, trainable),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=METRIC, mode=mode, max_concurrent_trials=concurrency,
            reuse_actors=True, trial_dirname_creator=trial_dirname, **search,
        ),
        run_config=tune.RunConfig(
            name=resolved.name, storage_path=resolved.storage, callbacks=callbacks,
            # two kept: Tune snapshots its experiment state at most every 10 s, so a driver killed
            # just after a trial checkpointed resumes from a snapshot naming the previous one
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1, num_to_keep=2,
                                                    checkpoint_at_end=True),
            failure_config=tune.FailureConfig(max_failures=resolved.spec.max_failures),
            stop=budget,
            verbose=2 if verbose else 0,
        ),
    )


def max_concurrent(resolved: ResolvedSpec, search: dict) -> int | None:
    """Trials at once: ``--max-concurrent``, else for a searcher as many as the cluster runs now.

    Tune keeps only one trial pending for a searcher unless its concurrency is limited, so
    without a limit the second trial was asked for (and its actor started) only once the first
    ran: a CPU idled ~15 s at start. Limited to the cluster's slots, every slot's trial starts
    at once, and a new trial is still asked for only when a slot frees (with every result so far).
    """
    if resolved.spec.max_concurrent or "search_alg" not in search:
        return resolved.spec.max_concurrent or None
    from tuner import cluster

    return cluster.trial_slots(resolved.spec.cpus_per_trial, resolved.spec.gpus_per_trial)


@dataclass
class ExperimentRun:
    """A finished (or interrupted) experiment: Tune's result grid, the store's tables, wall time."""

    resolved: ResolvedSpec
    results: object  # ray.tune.ResultGrid
    trials: pd.DataFrame  # tuner.store.read_trials
    history: pd.DataFrame  # tuner.store.read_history
    wall_s: float  # Tuner.fit() alone (data preparation and Ray start excluded)


def run_experiment(resolved: ResolvedSpec, address: str | None = None, resume: bool = False,
                   trainable: type | None = None, search: dict | None = None,
                   param_space: dict | None = None, verbose: bool = False) -> ExperimentRun:
    """The one sweep pipeline (CLI, benchmarks and tests): check, prepare, build or restore, fit.

    Everything that can be refused is refused before the first trial starts: the storage
    location, an existing experiment name, the data files (read once on the driver), the
    cluster's resources. Starts a private local Ray (or attaches to ``address``) unless Ray is
    already initialised, and shuts down only a Ray it started; the data is read while Ray starts.

    Args:
        resume: restore the experiment ``resolved.name`` (``restore_tuner``) instead of building it.
        trainable, search, param_space, verbose: as ``build_tuner``.

    Raises:
        ValueError: bad input as above (one line each).
    """
    import ray

    from tuner import cluster

    cluster.check_storage_writable(resolved.storage)
    if not resume and saved_spec_exists(resolved.storage, resolved.name):
        raise ValueError(f"experiment {resolved.name!r} already exists under {resolved.storage}: "
                         f"resume it with --resume --name {resolved.name}, or pick another --name")
    owns_ray = not ray.is_initialized()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # the data is read while Ray starts
        data = pool.submit(prepare_data, resolved)
        cluster.start_ray(address)
    try:  # a data error is raised here, after Ray started: the finally shuts it down
        data_source = data.result()
        cluster.check_resources(resolved.spec.cpus_per_trial, resolved.spec.gpus_per_trial)
        cluster.check_storage_shared(resolved.storage, cluster.cluster_hosts())
        if resume:
            tuner = restore_tuner(resolved)
        else:
            tuner = build_tuner(resolved, data_source, trainable, search, param_space, verbose)
            save_spec(resolved)
        start = time.perf_counter()
        results = tuner.fit()  # Ctrl-C: Tune stops the trials, saves its state and returns
        wall = time.perf_counter() - start
    finally:
        if owns_ray:
            ray.shutdown()
    return ExperimentRun(resolved, results, read_trials(resolved.storage, resolved.name),
                         read_history(resolved.storage, resolved.name), wall)


def resourced_trainable(resolved: ResolvedSpec, trainable: type | None = None):
    """The method's Trainable with its per-trial request: CPUs always alongside GPUs (DESIGN §8)."""
    spec = resolved.spec
    return tune.with_resources(trainable or get_method(spec.method).trainable,
                               {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial})


def experiment_path(resolved: ResolvedSpec) -> str:
    return experiment_dir(resolved.storage, resolved.name)


def restore_tuner(resolved: ResolvedSpec) -> tune.Tuner:
    """Resume an interrupted experiment (``--resume``): Tune's own restore.

    Ended trials are not re-run, unfinished ones continue from their last checkpoint, the
    searcher (Optuna study) and scheduler state come back from the experiment checkpoint, and
    the store callback is the one pickled with the experiment. Errored trials stay errored.

    Raises:
        ValueError: no restorable experiment at the path.
    """
    path = experiment_path(resolved)
    if not tune.Tuner.can_restore(path):
        raise ValueError(f"--resume: no Ray Tune experiment state under {path}")
    fail_orphaned_study_trials(resolved)
    return tune.Tuner.restore(path, trainable=resourced_trainable(resolved), resume_unfinished=True,
                              resume_errored=False, restart_errored=False)


def fail_orphaned_study_trials(resolved: ResolvedSpec) -> list[int]:
    """Mark FAIL the on-disk study's RUNNING trials that Tune's last searcher snapshot does not know.

    The journal is written as the driver goes; Tune snapshots its searcher at most every 10 s. A
    driver killed in between leaves trials it had asked for in the journal as RUNNING forever,
    though the restored searcher will never tell them (their Tune trials are not in the snapshot).

    Returns:
        The numbers of the trials marked FAIL (none for sensitivity / at-defaults experiments).
    """
    study_path = optuna_study_path(resolved.storage, resolved.name)
    snapshots = sorted(Path(experiment_path(resolved)).glob("searcher-state-*.pkl"))
    if not (os.path.exists(study_path) and snapshots):
        return []
    with open(snapshots[-1], "rb") as f:  # Tune's own file, written by this code's driver
        known = frozenset(t.number for t in pickle.load(f).get("_ot_trials", {}).values())
    orphans = fail_running_trials(study_path, resolved.name, keep=known)
    if orphans:
        log.info("Optuna study: %d trial(s) asked by the interrupted driver after its last snapshot marked FAIL",
                 len(orphans))
    return orphans


def save_spec(resolved: ResolvedSpec) -> None:
    """Write the sweep's ``SweepSpec`` next to the experiment, for ``--resume``."""
    fs, root = filesystem(experiment_path(resolved))
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root}/{SPEC_FILE}") as f:
        f.write(json.dumps(resolved.spec.to_dict(), indent=1).encode())


def saved_spec_exists(storage: str, name: str) -> bool:
    fs, root = filesystem(experiment_dir(storage, name))
    return fs.get_file_info(f"{root}/{SPEC_FILE}").is_file


def load_spec(storage: str, name: str | None) -> SweepSpec:
    """The ``SweepSpec`` an experiment was started with, at ``storage`` as given now.

    Raises:
        ValueError: no name given, or no saved spec under ``storage/name``.
    """
    if not name:
        raise ValueError("--resume needs --name: the experiment to resume (and its --storage)")
    storage = absolute_storage(storage)
    fs, root = filesystem(experiment_dir(storage, name))
    try:
        with fs.open_input_stream(f"{root}/{SPEC_FILE}") as f:
            saved = SweepSpec.from_dict(json.loads(f.read()))
    except FileNotFoundError:
        known = [e for e in list_experiments(storage) if saved_spec_exists(storage, e)]
        raise ValueError(f"--resume: {unknown_experiment_message(storage, name, known)}") from None
    return dataclasses.replace(saved, storage=storage)  # a relative path was relative to another cwd


def prepare_data(resolved: ResolvedSpec) -> str:
    """Read (paper) or generate (mini) the task's data once on the driver, before any trial.

    Embedded data is generated and cached here, so trials only read the cache; benchmark files
    are read once to validate them, so a corrupt or wrong-shaped file is one clear error now,
    not an error in every trial. Costs one load of the data set on the driver.

    Returns:
        The data source recorded with every trial, e.g. ``file:s2_cifar100.gz``.
    """
    task = get_task(resolved.spec.task)
    return task.loader(Path(resolved.data_root), resolved.scale, DATA_SEED).source
