"""Figure 4 of issue #8: how many trial-epochs TPE+ASHA, random search and the full grid spend to
reach a validation error within 1 point of the grid's best, on MoNA over a small discrete space.

The space: λ x stage-2 lr (``LAMBDAS`` x ``STAGE2_LRS``, 12 points); every other dimension of
MoNA's space is held (``FIXED``: one stage-1 epoch; the space's defaults otherwise), in the grid
and the searches alike. Every trial uses the same seed (0), so a configuration scores the same
whichever searcher proposes it (the block reports the largest difference seen). Three sweeps on
the embedded default (Spherical MNIST, EfficientNet-Lite0, a small training subset, a few
stage-2 epochs), two trials at a time on 2 CPUs:

- grid: every point, to full length (Tune's ``grid_search`` over the two keys, FIFO; as the
  project's sensitivity mode does for one key);
- TPE+ASHA: the project's searcher and scheduler (``PruneAwareOptunaSearch`` with the seeded
  multivariate TPE of ``tuner.experiment.make_searcher``, ``ASHAScheduler`` on
  ``stage2_epoch``) over the same 12 points, ``SEARCH_TRIALS`` trials;
- random: the same path with Optuna's ``RandomSampler`` (same seed) and no early stopping.

The discrete space is the method's own define-by-run space with those two ``suggest_float``
calls answered from the lists (``discrete_space``; ``--space`` files accept choice lists only
for int and categorical dimensions). The held dimensions go through Optuna's
``PartialFixedSampler`` as ``--set`` does. Every sweep runs through the sweep's own pipeline
(``tuner.experiment.run_experiment``) with only the searcher, scheduler and, for the grid, the
param space swapped (``build_tuner``'s ``search`` / ``param_space``).

A trial-epoch is one ``step()`` (one epoch of either stage). Each sweep's results, read from
the Parquet store, are put in the order the driver received them; the figure is the number of
trial-epochs up to the first stage-2 result within 1 point of the grid's best validation error,
as a share of the full grid's trial-epochs. Target: TPE+ASHA <= 35%.

    python -m bench.search_efficiency [--quick] [--no-record]
"""
from __future__ import annotations

import functools
import itertools

from bench.common import (
    EMBEDDED,
    TOY,
    parser,
    private_ray,
    record,
    run_sweep,
    scratch_dir,
    space_defaults,
    trial_config,
)

# bench.common first: importing it sets the environment that ray reads when ray is imported.
# isort: split
import optuna
import pandas as pd
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from trainables.registry import get_method
from tuner.experiment import METRIC, PruneAwareOptunaSearch
from tuner.spec import SweepSpec

METHOD = "mona"
LAMBDAS = (0.0, 0.5, 1.0)
STAGE2_LRS = (3e-4, 1e-3, 3e-3, 1e-2)
FIXED = {"stage1_epochs": 1, "stage2_weight_decay": 1e-4}
SEARCH_TRIALS = 6
EPOCHS, TRAIN_SAMPLES = 3, 640  # stage-2 epochs and training subset: the grid in ~10 min on 2 CPUs
POINT = 1.0  # "within 1 point" of the grid's best validation error (the metric is in %)


class DiscreteTrial:
    """An Optuna trial whose ``suggest_float`` answers listed dimensions from their choices."""

    def __init__(self, trial, choices: dict[str, tuple]):
        self._trial, self._choices = trial, choices

    def suggest_float(self, name: str, low: float, high: float, **kwargs) -> float:
        if name in self._choices:
            return self._trial.suggest_categorical(name, list(self._choices[name]))
        return self._trial.suggest_float(name, low, high, **kwargs)

    def __getattr__(self, item: str):
        return getattr(self._trial, item)


def discrete_space(trial, space, defaults: dict, choices: dict[str, tuple]) -> dict | None:
    """``space`` with the dimensions in ``choices`` made categorical (module-level: it pickles)."""
    return space(DiscreteTrial(trial, choices), defaults=defaults)


def searcher(resolved, sampler: optuna.samplers.BaseSampler, choices: dict) -> PruneAwareOptunaSearch:
    space = functools.partial(discrete_space, space=get_method(METHOD).space, defaults=resolved.defaults,
                              choices=choices)
    fixed = optuna.samplers.PartialFixedSampler(resolved.fixed, sampler)
    return PruneAwareOptunaSearch(space=space, metric=METRIC, mode="min", sampler=fixed)


def tpe_asha(resolved, choices: dict) -> dict:
    """``build_tuner`` search part: the project's TPE (``make_searcher``'s options) and ASHA."""
    spec = resolved.spec
    sampler = optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=max(2, spec.num_samples // 4),
                                         multivariate=True, constant_liar=True)  # as make_searcher
    asha = ASHAScheduler(time_attr="stage2_epoch", max_t=resolved.stage2_epochs,
                         grace_period=spec.grace_period, reduction_factor=spec.reduction_factor)
    return dict(num_samples=spec.num_samples, search_alg=searcher(resolved, sampler, choices), scheduler=asha)


def random_search(resolved, choices: dict) -> dict:
    sampler = optuna.samplers.RandomSampler(seed=resolved.spec.seed)
    return dict(num_samples=resolved.spec.num_samples, search_alg=searcher(resolved, sampler, choices),
                scheduler=FIFOScheduler())


def full_grid(choices: dict, held: dict) -> tuple[dict, dict]:
    """(param_space, search part): every point of ``choices`` (a product), the rest as ``held``."""
    grid = {key: tune.grid_search(list(values)) for key, values in choices.items()}
    return {**held, **grid}, dict(num_samples=1, scheduler=FIFOScheduler())


def epochs_to_target(history: pd.DataFrame, target: float) -> tuple[int | None, float | None]:
    """(trial-epochs, trial-seconds) up to the first stage-2 result with val_metric <= target,
    in the order the driver received the results; (None, None) if never reached."""
    h = history.sort_values("written_at").reset_index(drop=True)
    hit = h.index[(h["stage"] == 2) & (h["val_metric"] <= target)]
    if len(hit) == 0:
        return None, None
    first = hit[0]
    return first + 1, float(h.loc[:first, "time_this_iter_s"].sum())


def check_grid(trials: pd.DataFrame, choices: dict[str, tuple]) -> None:
    """The grid ran every point once, to full length.

    Raises:
        RuntimeError: a point is missing or repeated, or a trial did not complete.
    """
    points = sorted(zip(*(trials[f"config/{key}"] for key in choices)))
    expected = sorted(itertools.product(*choices.values()))
    if points != expected or not (trials["status"] == "completed").all():
        raise RuntimeError(f"the grid ran {points} ({trials['status'].value_counts().to_dict()}), expected {expected}")


def same_point_spread(runs: dict, keys: tuple[str, ...]) -> float:
    """Largest difference of ``val_metric`` between results of the same point at the same iteration,
    across every sweep (0 when equal seeds give equal results, as they should)."""
    columns = [f"config/{key}" for key in keys]
    frames = [run.history[["trial_id", "iteration", "val_metric"]].join(run.trials.set_index("trial_id")[columns],
                                                                        on="trial_id") for run in runs.values()]
    spread = pd.concat(frames).groupby([*columns, "iteration"])["val_metric"].agg(lambda v: v.max() - v.min())
    return float(spread.max())


def run_arms(base: dict, choices: dict, epochs: int, train_samples: int, trials: int, tmp) -> dict:
    """The three sweeps (grid, TPE+ASHA, random) with every non-searched dimension held alike."""
    data_dir = str(tmp / "data") if base is TOY else None
    kwargs = dict(method=METHOD, data_dir=data_dir, max_epochs=epochs, max_train_samples=train_samples,
                  storage=str(tmp / "results"), seed=0, num_samples=trials, **base)
    held = trial_config(METHOD, FIXED, **{k: v for k, v in kwargs.items() if k != "method"})
    dims = space_defaults(METHOD, SweepSpec(**kwargs).resolve().defaults)
    fixed = tuple(f"{k}={held[k]}" for k in dims if k not in choices)  # as --set, for the searches
    grid_space, grid_search = full_grid(choices, held)
    runs = {}
    for name in ("full grid", "TPE+ASHA", "random search"):
        spec = SweepSpec(**kwargs, name=name.replace(" ", "-").replace("+", "-"), fixed=fixed)
        if name == "full grid":
            runs[name] = run_sweep(spec, search=grid_search, param_space=grid_space)
        else:
            arm = tpe_asha if name == "TPE+ASHA" else random_search
            runs[name] = run_sweep(spec, search=arm(spec.resolve(), choices))
    return runs


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    if args.quick:
        base, choices, epochs, train_samples, trials = TOY, {"lam": (0.0, 1.0), "stage2_lr": (1e-3, 1e-2)}, 1, 64, 2
    else:
        base, choices = EMBEDDED, {"lam": LAMBDAS, "stage2_lr": STAGE2_LRS}
        epochs, train_samples, trials = EPOCHS, TRAIN_SAMPLES, SEARCH_TRIALS
    with scratch_dir("search") as tmp, private_ray(num_cpus=2):
        runs = run_arms(base, choices, epochs, train_samples, trials, tmp)
    grid = runs["full grid"]
    check_grid(grid.trials, choices)
    best = float(grid.trials["best_val_metric"].min())
    target = best + POINT
    grid_epochs = len(grid.history)
    setup = "toy task, test_efficientnet" if args.quick else "Spherical MNIST, EfficientNet-Lite0"
    lines = [f"{setup}; MoNA over λ {list(choices['lam'])} x stage-2 lr {list(choices['stage2_lr'])} "
             f"({len(grid.trials)} points); held: {FIXED}, the rest at the space's defaults; {epochs} stage-2 "
             f"epochs, {train_samples} training samples, trial seed 0, 2 trials at a time. Grid's best validation "
             f"error {best:.2f}% -> target <= {target:.2f}%", "",
             "| sweep | trials | trial-epochs spent | trial-epochs to target | % of grid's trial-epochs "
             "| trial-seconds to target | sweep wall s | best val error |", "|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        epochs_hit, seconds_hit = epochs_to_target(run.history, target)
        share = f"{100 * epochs_hit / grid_epochs:.0f}%" if epochs_hit else "not reached"
        lines.append(f"| {name} | {len(run.trials)} | {len(run.history)} | {epochs_hit or '-'} | {share} | "
                     f"{f'{seconds_hit:.0f}' if seconds_hit else '-'} | {run.wall_s:.0f} | "
                     f"{run.trials['best_val_metric'].min():.2f} |")
    tpe_hit, _ = epochs_to_target(runs["TPE+ASHA"].history, target)
    figure = (f"after {100 * tpe_hit / grid_epochs:.0f}% of the full grid's {grid_epochs} trial-epochs" if tpe_hit
              else f"never, within its {len(runs['TPE+ASHA'].history)} trial-epochs")
    lines += ["", f"- TPE+ASHA reaches within {POINT:g} point of the grid's best {figure} (target: <= 35%)",
              f"- same point, same epoch, across sweeps: validation errors differ by at most "
              f"{same_point_spread(runs, tuple(choices)):.2f} points"]
    record("Search efficiency: TPE+ASHA vs random vs full grid (MoNA)", lines, args.quick, args.no_record)


if __name__ == "__main__":
    main()
