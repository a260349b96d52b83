"""``python -m tuner.sweep``: run a hyperparameter sweep of one method on one task.

    python -m tuner.sweep --task spherical --method finetune            # embedded default on a CPU
    python -m tuner.sweep --task spherical --method finetune --smoke-test
    python -m tuner.sweep --task spherical --method mona --sensitivity lambda=0,0.3,0.5,1 --seeds 2
    RAY_ADDRESS=... python -m tuner.sweep ... --gpus-per-trial 0.25 --storage s3://bucket/results
    python -m tuner.sweep --resume --name NAME [--storage DIR]    # after a crash or Ctrl-C

The CLI only parses flags into a ``SweepSpec``; everything else happens in ``tuner.spec``
and ``tuner.experiment``. Errors in the input are one line and exit code 2 (``--debug``
shows the traceback).
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys

from tuner.spec import INIT_CHOICES, SCALE_CHOICES, SweepSpec

log = logging.getLogger("tuner.sweep")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuner.sweep", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", help="task name (python -m tuner list tasks); required unless --resume")
    p.add_argument("--method", help="method name (python -m tuner list methods); required unless --resume")
    p.add_argument("--scale", default="auto", choices=SCALE_CHOICES,
                   help="paper: benchmark files + paper backbone; mini: embedded default; auto: paper if present")
    p.add_argument("--backbone", default=None, help="override the scale's default backbone")
    p.add_argument("--data-dir", default=None, help="data root (default $CROSSMODAL_DATA or ~/.cache/crossmodal-tune/data)")
    p.add_argument("--init", default="pretrained", choices=INIT_CHOICES, help="encoder initialisation")
    p.add_argument("--weights", default=None, help="pretrained weight file for the backbone")
    p.add_argument("--num-samples", type=int, default=8, help="number of trials")
    p.add_argument("--max-epochs", type=int, default=None, help="stage-2 epochs (default: the task's)")
    p.add_argument("--max-train-samples", type=int, default=None, help="training subset size, 0 = all")
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation split carved from training data")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("--max-concurrent", type=int, default=0, help="0 = as many as resources allow")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial can be stopped")
    p.add_argument("--reduction-factor", type=int, default=2, help="ASHA reduction factor")
    p.add_argument("--storage", default="results", help="results directory or URI (s3://, gs://)")
    p.add_argument("--name", default=None, help="experiment name (default: <task>-<method>-<time>)")
    p.add_argument("--address", default=None, help="Ray cluster address (default $RAY_ADDRESS, else local)")
    p.add_argument("--seed", type=int, default=0, help="searcher seed; first trial seed in sensitivity mode")
    p.add_argument("--sensitivity", default=None, metavar="NAME=V1,V2,...",
                   help="run the grid over one dimension (x --seeds), no early stopping")
    p.add_argument("--seeds", type=int, default=1, help="repeats per grid value (sensitivity / --at-defaults)")
    p.add_argument("--at-defaults", action="store_true",
                   help="no search: every dimension at its default (or --set) x --seeds, to full length")
    p.add_argument("--space", dest="space_file", default=None, metavar="FILE.yaml",
                   help="override search ranges / fix dimensions (see search_spaces/overrides.py)")
    p.add_argument("--set", dest="fixed", action="append", default=[], metavar="NAME=VALUE",
                   help="hold a dimension at a value (repeatable)")
    p.add_argument("--stage1-cache", default=None, metavar="DIR",
                   help="stage-1 cache directory, shared by the experiments that name it "
                        "(default: <storage>/<experiment>/stage1_cache; off on an object-store --storage)")
    p.add_argument("--no-stage1-cache", action="store_true",
                   help="compute every trial's stage 1, never reuse a stored one")
    p.add_argument("--branching", type=int, default=0, metavar="K",
                   help="search mode: draw K stage-1 configurations (each at --seeds seeds), train each stage 1 "
                        "once and branch the other trials' stage 2 from them (tuner/branching.py); 0 = off")
    p.add_argument("--budget-samples", type=int, default=0, metavar="N",
                   help="end the sweep once its trials have trained on N samples, stage 1 included "
                        "(a replayed stage 1 counts none; tuner/budget.py); 0 = no budget")
    p.add_argument("--max-failures", type=int, default=0,
                   help="retries of a crashed trial (worker or node lost, exception), from its last checkpoint")
    p.add_argument("--resume", action="store_true",
                   help="resume experiment --name under --storage (its saved settings; other flags ignored)")
    p.add_argument("--smoke-test", action="store_true", help="2 trials, 1 epoch, 128 samples: a fast check")
    p.add_argument("--verbose", action="store_true",
                   help="Ray Tune's own console output (status tables, a box per trial) instead of one line per event")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    args = p.parse_args(argv)
    if not args.resume and not (args.task and args.method):
        p.error("--task and --method are required (or --resume --name NAME)")
    return args


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    return SweepSpec(
        task=args.task, method=args.method, scale=args.scale, backbone=args.backbone,
        data_dir=args.data_dir, init=args.init, weights=args.weights, num_samples=args.num_samples,
        max_epochs=args.max_epochs, max_train_samples=args.max_train_samples,
        val_fraction=args.val_fraction, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent,
        grace_period=args.grace_period, reduction_factor=args.reduction_factor,
        storage=args.storage, name=args.name, seed=args.seed, smoke_test=args.smoke_test,
        sensitivity=args.sensitivity, seeds=args.seeds, at_defaults=args.at_defaults, fixed=tuple(args.fixed),
        space_file=args.space_file,
        max_failures=args.max_failures, stage1_cache=args.stage1_cache, no_stage1_cache=args.no_stage1_cache,
        branching=args.branching, budget_samples=args.budget_samples,
    )


def run(spec: SweepSpec, address: str | None = None, resume: bool = False, verbose: bool = False) -> int:
    """Resolve, check, build (or restore) and fit; print the outcome and where results are.

    Everything that can be refused is refused before the first trial starts: names, ranges,
    data files (read once on the driver), the cluster's resources and the storage location.

    Returns:
        0 when every trial ended (completed, pruned or diverged) or ``--budget-samples`` was spent;
        1 if any errored or the experiment is incomplete (interrupted: resume it with ``--resume``).
    """
    from tuner import experiment
    from tuner.budget import budget_spent
    from tuner.tables import metric_label

    if resume:
        spec = experiment.load_spec(spec.storage, spec.name)
    resolved = spec.resolve()
    log.info("sweep %s: task=%s method=%s scale=%s backbone=%s trials=%d%s; objective: %s",
             resolved.name, spec.task, spec.method, resolved.scale, resolved.backbone, resolved.expected_trials,
             " (resuming)" if resume else "", metric_label(spec.task, "validation"))
    run = experiment.run_experiment(resolved, address=address, resume=resume, verbose=verbose)
    summarise(resolved, run.trials)
    if budget_spent(run.trials, spec.budget_samples):
        print(f"Sample budget spent: {run.trials['samples_total'].sum():.0f} of {spec.budget_samples} training "
              f"samples, after {len(run.trials)} of {resolved.expected_trials} trials")
    elif len(run.trials) < resolved.expected_trials:
        print(f"Experiment incomplete: {len(run.trials)} of {resolved.expected_trials} trials ended. Resume with:\n"
              f"  python -m tuner.sweep --resume --name {resolved.name} --storage {resolved.storage}",
              file=sys.stderr)
        return 1
    return 1 if run.results.num_errors > 0 else 0


def summarise(resolved, trials) -> None:
    """Print trial counts by status, the best trial's searched config and where results are."""
    from trainables.metrics import get_metric
    from trainables.registry import get_task
    from tuner.store import experiment_dir, optuna_study_path, store_dir, tensorboard_dir

    counts = trials["status"].value_counts() if len(trials) else {}
    by_status = ", ".join(f"{n} {status}" for status, n in sorted(dict(counts).items()))
    print(f"\nExperiment {resolved.name}: {len(trials)} trials ended{': ' + by_status if by_status else ''}")
    scored = trials.dropna(subset=["best_val_metric"]) if len(trials) else trials
    if len(scored):
        ascending = get_metric(get_task(resolved.spec.task).metric).mode == "min"
        row = scored.sort_values("best_val_metric", ascending=ascending).iloc[0]
        sampled = {k: _plain(row[f"config/{k}"]) for k in resolved.varying_keys()
                   if f"config/{k}" in row and _is_set(row[f"config/{k}"])}
        label = get_metric(get_task(resolved.spec.task).metric).label
        print(f"Best trial {row['trial_id']} ({row['status']}): validation {label} {row['best_val_metric']:.4g} "
              f"at its best epoch; test {row['test_metric']:.4g} with that epoch's weights")
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sampled.items())
        print(f"  {'grid value and seed' if resolved.repeats else 'searched config'}: {shown or '(none)'}")
    for row in trials[trials["status"] == "error"].itertuples() if len(trials) else ():
        print(f"Trial {row.trial_id} error: {_last_line(row.error)}")
    print(f"Results store: {store_dir(resolved.storage, resolved.name)} (tuner.store.read_trials / read_history)")
    print(f"Ray experiment dir: {experiment_dir(resolved.storage, resolved.name)}")
    print(f"TensorBoard: tensorboard --logdir {tensorboard_dir(resolved.storage, resolved.name)}")
    study = optuna_study_path(resolved.storage, resolved.name)
    if not resolved.repeats and os.path.exists(study):
        print(f"Optuna study: optuna-dashboard {study}")
    print(f"Report: python -m tuner.report {resolved.name} --storage {resolved.storage}")


def _last_line(text) -> str:
    """The last non-empty line of a stored error text (the exception and its message)."""
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1].strip() if lines else str(text)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _is_set(value) -> bool:
    return not (isinstance(value, float) and math.isnan(value))


# Read by Ray when it is imported (DESIGN §8): set before anything imports ray.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# Epochs of the embedded tasks take seconds and every epoch checkpoints (num_to_keep=2), which
# makes Tune warn about frequent experiment snapshots at every step; they are expected here.
QUIET_ENV = {"TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}


def console_env(verbose: bool, tty: bool) -> dict[str, str]:
    """Environment for the driver's console: Ray's own output only with ``--verbose``
    (``tuner.progress`` prints instead), no ANSI colour codes when stdout is not a terminal.

    Ray 2.60's default output engine prints its heading box even at ``verbose=0``; its legacy
    reporter (``RAY_AIR_NEW_OUTPUT=0``) prints nothing at ``verbose=0``.
    """
    env = dict(QUIET_ENV)
    if not verbose:
        env["RAY_AIR_NEW_OUTPUT"] = "0"
    if not tty:
        env["RAY_COLOR_PREFIX"] = "0"  # worker lines as "(Trainable pid=..)", not "\x1b[36m(...)\x1b[0m"
    return env


def set_driver_env(address: str | None, verbose: bool) -> None:
    """Set (unless already set) the driver's environment before Ray is imported: loopback for
    a local Ray, and ``console_env``."""
    env = console_env(verbose, sys.stdout.isatty())
    if not (address or os.environ.get("RAY_ADDRESS")):
        env.update(LOOPBACK_ENV)  # a local Ray: keep every process on 127.0.0.1
    for key, value in env.items():
        os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_driver_env(args.address, args.verbose)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created ..." and per-trial lines
        logging.getLogger("ray.tune").setLevel(logging.WARNING)  # "Wrote the latest version of all result files"
    try:
        return run(spec_from_args(args), address=args.address, resume=args.resume, verbose=args.verbose)
    except (KeyError, ValueError, FileNotFoundError) as e:
        if args.debug:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = f" --name {args.name}" if args.name else " --name <experiment>"
        print(f"interrupted before the experiment ended; what ended is in the store. Resume with: "
              f"python -m tuner.sweep --resume{where} --storage {args.storage}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
