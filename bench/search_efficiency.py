"""Search efficiency (issue #15, point 3): how many trial-epochs TPE+ASHA, random search (with and
without ASHA), a one-epoch screen and the full grid spend to reach a validation error within 1
point of the grid's best, on the embedded default at its normal size.

The setup, chosen before any figure was seen: Spherical MNIST, EfficientNet-Lite0, ``--scale
mini`` at its defaults (the task's 1,500 training samples and 6 stage-2 epochs), method
``finetune``; the searched dimension is the stage-2 learning rate over the space's whole range,
two decades as 9 log-spaced points ``10^(-4 + k/4)``, k = 0..8 (``LRS``); every other dimension
is held at the space's default (weight decay 1e-4, as ``--set``). Every trial uses seed 0, so a
configuration scores the same whoever proposes it. Two trials at a time on 2 CPUs.

1. Ground truth: the full grid, run for real through the sweep's pipeline
   (``bench.common.run_sweep`` -> ``tuner.experiment.run_experiment``, ``param_space`` a
   ``grid_search`` over the 9 rates, FIFO), every point to full length. Its per-epoch results
   (``val_metric``, ``time_this_iter_s``, every key the trainable reports) are the table below.
2. Searchers, each at 5 searcher seeds (``SEARCHER_SEEDS``; the seed of the sampler, not of
   the trials), ``num_samples`` 8 (the CLI default):
   - TPE+ASHA exactly as the project builds them: ``tuner.experiment.default_search`` (the
     seeded multivariate TPE of ``make_searcher`` in ``PruneAwareOptunaSearch``, the ASHA on
     ``stage2_epoch`` with the spec's grace period 1 and reduction factor 2), with only the
     space swapped for its discrete version (below);
   - random search: Optuna's ``RandomSampler`` (same seed) in ``PruneAwareOptunaSearch``, FIFO;
   - random search + ASHA: the same, with the project's ASHA;
   - one-epoch screen: every configuration one epoch, then the top ``TOP_K`` continued to full
     length (deterministic: one figure);
   - the full grid: the real run of step 1, in the order its results came (one figure).
   The discrete space is the method's own define-by-run space with its ``suggest_float`` for the
   rate answered from ``LRS`` (``discrete_space``): Optuna sees the index k as an integer
   dimension, ordered as the log scale is (``--space`` files accept choice lists only for int
   and categorical dimensions). The held dimensions go through ``PartialFixedSampler``.

The searcher figures are REPLAYS on the recorded curves (a tabular benchmark, as HPOBench and
LCBench): training is deterministic per (configuration, seed), so the searcher runs use
``bench.tabular.replay_trainable``, a Trainable that returns the grid's recorded results for its
configuration epoch by epoch, sleeping the recorded epoch time / ``SPEEDUP`` so that trials run
side by side end in the real order; the real searcher and scheduler classes, Tuner and store
run unchanged on it. The one-epoch screen is simulated on the recorded epoch times (2 slots,
``bench.tabular.simulate_slots``; the same simulation of the grid is checked against the grid's
real order). The replay is VALIDATED by running TPE+ASHA at searcher seed ``VALIDATED_SEED`` for
real (the real trainable, through ``run_sweep``): the block gives its trial-epochs to target
next to its replay's, the configurations each tried, and the largest difference between any
(configuration, epoch) validation error it saw and the grid's.

A trial-epoch is one ``step()`` (one stage-2 epoch). A sweep's results, read from the Parquet
store, are put in the order the driver received them; the figure is the number of trial-epochs
up to the first result within 1 point of the grid's best validation error, as a share of the
full grid's trial-epochs, and the trial-seconds (recorded ``time_this_iter_s``) up to it.
Medians and min-max over the searcher seeds; a seed that never reaches the target counts as
worse than any that does. Target: TPE+ASHA's median <= 35% of the grid's trial-epochs.

    python -m bench.search_efficiency [--quick] [--no-record] [--curves FILE]

``--curves FILE``: save the grid's recorded curves and the real validation sweep's results there
(JSON); if FILE exists, read them instead of running those two sweeps again and run only the
replays (the block says so).
"""
from __future__ import annotations

import functools
import math
import statistics
from pathlib import Path

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
from ray.tune.schedulers import FIFOScheduler

from bench.tabular import (
    curves_from_run,
    load_curves,
    lookup,
    replay_trainable,
    save_curves,
    seen_vs_recorded,
    simulate_slots,
)
from search_spaces.dimensions import describe_distribution, space_distributions
from trainables.metrics import get_metric
from trainables.registry import get_method, get_task
from tuner.experiment import METRIC, PruneAwareOptunaSearch, default_search
from tuner.spec import SweepSpec

METHOD, KEY = "finetune", "stage2_lr"
LRS = tuple(10 ** (-4 + k / 4) for k in range(9))  # the finetune space's whole range [1e-4, 1e-2], log-spaced
TRIAL_SEED = 0
SEARCHER_SEEDS = (0, 1, 2, 3, 4)
VALIDATED_SEED = 0  # the searcher seed whose TPE+ASHA also runs for real
TOP_K = 3  # one-epoch screen: configurations continued to full length
SLOTS = 2  # trials at a time (2 CPUs, 1 CPU per trial)
SPEEDUP = 5.0  # replayed epochs sleep recorded time / SPEEDUP
POINT = 1.0  # "within 1 point" of the grid's best validation error (the metric is in %)
TARGET_SHARE = 35.0  # % of the grid's trial-epochs
SEARCH_ARMS = ("TPE+ASHA", "random search", "random search + ASHA")


# ---- the discrete space -------------------------------------------------------------------------
class DiscreteTrial:
    """An Optuna trial whose ``suggest_float`` answers listed dimensions from their values: Optuna
    samples the index (an int dimension, so TPE keeps the values' order), ``chosen`` the value."""

    def __init__(self, trial, choices: dict[str, tuple]):
        self._trial, self._choices, self.chosen = trial, choices, {}

    def suggest_float(self, name: str, low: float, high: float, **kwargs) -> float:
        if name not in self._choices:
            return self._trial.suggest_float(name, low, high, **kwargs)
        values = self._choices[name]
        self.chosen[name] = values[self._trial.suggest_int(name, 0, len(values) - 1)]
        return self.chosen[name]

    def __getattr__(self, item: str):
        return getattr(self._trial, item)


def discrete_space(trial, space, defaults: dict, choices: dict[str, tuple]) -> dict:
    """``space`` with the dimensions in ``choices`` discrete (module-level: it pickles). The values
    are returned as constants, so the trial's config holds the value, not Optuna's index."""
    discrete = DiscreteTrial(trial, choices)
    returned = space(discrete, defaults=defaults) or {}
    return {**returned, **discrete.chosen}


# ---- sweeps ----------------------------------------------------------------------------------------
def search_part(resolved, arm: str, lrs: tuple) -> tuple[dict, dict]:
    """(param_space, search part) of a searcher arm: the project's ``default_search`` (TPE, ASHA),
    its space made discrete, the random sampler swapped in or ASHA swapped out as ``arm`` says;
    every trial at seed ``TRIAL_SEED`` whatever the searcher's seed."""
    mode = get_metric(get_task(resolved.spec.task).metric).mode
    param_space, search = default_search(resolved, mode)
    space = functools.partial(discrete_space, space=get_method(METHOD).space, defaults=resolved.defaults,
                              choices={KEY: lrs})
    if arm == "TPE+ASHA":
        searcher = search["search_alg"]
        assert isinstance(searcher, PruneAwareOptunaSearch) and searcher._space is not None
        searcher._space = space  # Ray's OptunaSearch calls it in suggest(); sampler, study as built
    else:
        sampler = optuna.samplers.PartialFixedSampler(resolved.fixed,
                                                      optuna.samplers.RandomSampler(seed=resolved.spec.seed))
        search["search_alg"] = PruneAwareOptunaSearch(space=space, metric=METRIC, mode=mode, sampler=sampler)
    if not arm.endswith("ASHA"):
        search["scheduler"] = FIFOScheduler()
    return {**param_space, "seed": TRIAL_SEED}, search


def history_order(history: pd.DataFrame, trials: pd.DataFrame) -> list[tuple[float, int, float, float]]:
    """A run's results as (lr, stage-2 epoch, val_metric, time_this_iter_s), in the order the
    driver received them."""
    lr = trials.set_index("trial_id")[f"config/{KEY}"]
    h = history.sort_values("written_at")
    return [(float(lr[r.trial_id]), int(r.stage2_epoch), float(r.val_metric), float(r.time_this_iter_s))
            for r in h.itertuples()]


def to_target(results: list[tuple[float, int, float, float]], target: float) -> tuple[float, float]:
    """(trial-epochs, trial-seconds) up to the first result with val_metric <= target, in order;
    (inf, inf) if never reached."""
    seconds = 0.0
    for n, (_, _, val, secs) in enumerate(results, 1):
        seconds += secs
        if val <= target:
            return n, seconds
    return math.inf, math.inf


def tried(history: pd.DataFrame, trials: pd.DataFrame) -> str:
    """The configurations a run tried, in the order of their first results: ``lr x epochs run``."""
    first = history.groupby("trial_id")["written_at"].min()
    t = trials.assign(first=trials["trial_id"].map(first)).sort_values("first")
    return ", ".join(f"{lr:.2g}x{int(it)}" for lr, it in zip(t[f"config/{KEY}"], t["iterations"]))


def screen_order(curves: dict, lrs: tuple, top_k: int) -> list[tuple[float, int, float, float]]:
    """The one-epoch screen on ``SLOTS`` slots: every lr's first epoch (in grid order), then, once
    all are in, the ``top_k`` best by that epoch continued from their checkpoints to full length."""
    first = simulate_slots([(lr, [lookup(curves, lr)[0]["time_this_iter_s"]]) for lr in lrs], SLOTS)
    barrier = max(t for t, _, _ in first)
    rest = simulate_slots([(lr, [r["time_this_iter_s"] for r in lookup(curves, lr)[1:]])
                           for lr in screen_keeps(curves, lrs, top_k)], SLOTS, start=barrier)
    return recorded_results(curves, [(lr, epoch) for _, lr, epoch in first]
                            + [(lr, epoch + 1) for _, lr, epoch in rest])


def screen_keeps(curves: dict, lrs: tuple, top_k: int) -> list[float]:
    """The ``top_k`` rates by their first epoch's validation error (ties in grid order)."""
    return sorted(lrs, key=lambda lr: best_of(lookup(curves, lr)[:1]))[:top_k]


def recorded_results(curves: dict, events: list[tuple[float, int]]) -> list[tuple[float, int, float, float]]:
    """(lr, epoch) events as results (lr, stage-2 epoch, val_metric, time_this_iter_s) from the curves."""
    rows = [(lr, e, lookup(curves, lr)[e - 1]) for lr, e in events]
    return [(lr, e, row["val_metric"], row["time_this_iter_s"]) for lr, e, row in rows]


def grid_simulated(curves: dict, lrs: tuple) -> list[tuple[float, int, float, float]]:
    """The grid's FIFO on ``SLOTS`` slots simulated on the recorded times (checks the simulation)."""
    events = simulate_slots([(lr, [r["time_this_iter_s"] for r in lookup(curves, lr)]) for lr in lrs], SLOTS)
    return recorded_results(curves, [(lr, e) for _, lr, e in events])


# ---- figures ---------------------------------------------------------------------------------------
def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def first_rung_note(curves: dict, lrs: tuple, target: float, grace: int, reduction: int) -> str:
    """How the rates that reach the target rank at ASHA's first rung (stage-2 epoch ``grace``),
    where ASHA keeps the top 1/``reduction`` and the one-epoch screen its top ``TOP_K``."""
    at = {lr: best_of(lookup(curves, lr)[grace - 1:grace]) for lr in lrs}
    rank = {lr: 1 + sum(v < at[lr] for v in at.values()) for lr in lrs}  # ties share the better rank
    good = [lr for lr in lrs if best_of(lookup(curves, lr)) <= target]
    kept = screen_keeps(curves, lrs, TOP_K)
    return (f"- at stage-2 epoch {grace} (ASHA's first rung, keeping the top 1/{reduction}) the {len(lrs)} rates score "
            f"{min(at.values()):.2f}-{max(at.values()):.2f}%; the rates that reach the target rank "
            + ", ".join(f"{lr:.2g}: {ordinal(rank[lr])}" for lr in good)
            + f" of {len(lrs)} there (ties share the better rank); the one-epoch screen keeps "
            + f"{', '.join(f'{lr:.2g}' for lr in kept)} (ties broken in grid order)")


def best_of(rows: list[dict]) -> float:
    """The lowest finite validation error of a curve (inf if none: diverged)."""
    return min((r["val_metric"] for r in rows if math.isfinite(r["val_metric"])), default=math.inf)


def spread(values: list[float], fmt) -> str:
    """``median (min-max)`` (the lower median of an even count); never reached (inf): "never"."""
    show = lambda v: "never" if math.isinf(v) else fmt(v)  # noqa: E731
    if len(values) == 1:
        return show(values[0])
    return f"{show(statistics.median_low(values))} ({show(min(values))}-{show(max(values))})"


def truth_table(curves: dict, lrs: tuple, epochs: int) -> list[str]:
    lines = ["| stage-2 lr | " + " | ".join(f"ep {e}" for e in range(1, epochs + 1)) + " | best | s/epoch |",
             "|---" * (epochs + 3) + "|"]
    for lr in lrs:
        rows = lookup(curves, lr)
        vals = [f"{r['val_metric']:.2f}" for r in rows] + ["-"] * (epochs - len(rows))  # "-": diverged before
        secs = statistics.mean(r["time_this_iter_s"] for r in rows)
        lines.append(f"| {lr:.2g} | " + " | ".join(vals) + f" | {best_of(rows):.2f} | {secs:.1f} |")
    return lines


# ---- the benchmark ----------------------------------------------------------------------------------
def run_benchmark(base: dict, lrs: tuple, train_samples: int | None, num_samples: int, seeds: tuple, speedup: float,
                  tmp: Path, curves_file: Path | None) -> dict:
    data_dir = str(tmp / "data") if base is TOY else None
    kwargs = dict(method=METHOD, data_dir=data_dir, max_train_samples=train_samples, storage=str(tmp / "results"),
                  num_samples=num_samples, **base)
    held = trial_config(METHOD, {"seed": TRIAL_SEED}, seed=TRIAL_SEED, **{k: v for k, v in kwargs.items()
                                                                         if k != "method"})
    resolved = SweepSpec(**kwargs).resolve()
    dims = space_defaults(METHOD, resolved.defaults)
    fixed = tuple(f"{k}={held[k]}" for k in dims if k != KEY)  # as --set: the held dimensions
    searched = space_distributions(get_method(METHOD), resolved.defaults)[KEY]
    out = dict(space=describe_distribution(searched), epochs=resolved.stage2_epochs, fixed=fixed,
               grace=resolved.spec.grace_period, reduction=resolved.spec.reduction_factor,
               train_samples=held["max_train_samples"], num_samples=num_samples, seeds=seeds, real=None)
    if curves_file is not None and curves_file.exists():
        out["curves"], meta = load_curves(curves_file)
        out.update(meta, curves_from=str(curves_file))
    else:
        # num_samples: the grid's size, which the progress lines count trials against
        spec = SweepSpec(**{**kwargs, "num_samples": len(lrs)}, name="grid", fixed=fixed, seed=TRIAL_SEED)
        grid = run_sweep(spec, search=dict(num_samples=1, scheduler=FIFOScheduler()),
                         param_space={**held, KEY: tune.grid_search(list(lrs))})
        check_grid(grid.trials, lrs, out["epochs"])
        out["curves"] = curves_from_run(grid.history, grid.trials, KEY)
        out.update(grid_order=history_order(grid.history, grid.trials), grid_wall_s=grid.wall_s, curves_from=None)
        # the validation: TPE+ASHA at one searcher seed on the real trainable
        spec = SweepSpec(**kwargs, name="real-tpe-asha", fixed=fixed, seed=VALIDATED_SEED)
        param_space, search = search_part(spec.resolve(), "TPE+ASHA", lrs)
        real = run_sweep(spec, search=search, param_space=param_space)
        n, worst = seen_vs_recorded(real.history, real.trials, out["curves"], KEY)
        out["real"] = dict(order=history_order(real.history, real.trials), tried=tried(real.history, real.trials),
                           compared=n, worst=worst, wall_s=real.wall_s)
        if curves_file is not None:
            save_curves(out["curves"], curves_file, {k: out[k] for k in ("grid_order", "grid_wall_s", "real")})
    trainable = replay_trainable(out["curves"], KEY, speedup)
    out["replays"] = {arm: {} for arm in SEARCH_ARMS}
    for seed in seeds:
        for arm in SEARCH_ARMS:
            slug = arm.replace(" + ", "-").replace("+", "-").replace(" ", "-")
            spec = SweepSpec(**kwargs, name=f"replay-{slug}-s{seed}", fixed=fixed, seed=seed)
            param_space, search = search_part(spec.resolve(), arm, lrs)
            run = run_sweep(spec, trainable=trainable, search=search, param_space=param_space)
            n, worst = seen_vs_recorded(run.history, run.trials, out["curves"], KEY)
            if worst != 0.0:
                raise RuntimeError(f"replay {spec.name}: results differ from the recorded curves by {worst}")
            out["replays"][arm][seed] = dict(order=history_order(run.history, run.trials),
                                             tried=tried(run.history, run.trials), wall_s=run.wall_s)
    return out


def check_grid(trials: pd.DataFrame, lrs: tuple, epochs: int) -> None:
    """The grid ran every point once, to full length.

    Raises:
        RuntimeError: a point is missing or repeated, or a trial did not complete.
    """
    points = sorted(trials[f"config/{KEY}"].tolist())
    complete = (trials["status"] == "completed").all() and (trials["iterations"] == epochs).all()
    if points != sorted(lrs) or not complete:
        raise RuntimeError(f"the grid ran {points} ({trials['status'].value_counts().to_dict()}, iterations "
                           f"{trials['iterations'].tolist()}), expected {sorted(lrs)} x {epochs} epochs")


def report(out: dict, lrs: tuple, setup: str, speedup: float) -> list[str]:
    curves, epochs, seeds = out["curves"], out["epochs"], out["seeds"]
    grid_epochs = sum(len(rows) for rows in curves.values())
    best = min(best_of(rows) for rows in curves.values())
    target = best + POINT
    within = [f"{lr:.2g} (epoch {next(e for e, r in enumerate(lookup(curves, lr), 1) if r['val_metric'] <= target)})"
              for lr in lrs if any(r["val_metric"] <= target for r in lookup(curves, lr))]
    pct = lambda n: f"{100 * n / grid_epochs:.0f}%"  # noqa: E731
    seconds = lambda s: f"{s:.0f}" if s >= 10 else f"{s:.1f}"  # noqa: E731
    lines = [
        f"{setup}; method finetune, stage-2 lr over {len(lrs)} log-spaced points "
        f"[{', '.join(f'{v:.2g}' for v in lrs)}] (the space searches it {out['space']}); "
        f"held (as --set): {', '.join(out['fixed'])}; "
        f"{epochs} stage-2 epochs, {out['train_samples']} training samples, trial seed {TRIAL_SEED}, "
        f"{SLOTS} trials at a time, 1 CPU each.",
        "",
        f"Ground truth: the full grid, run for real ({grid_epochs} trial-epochs, FIFO, {out['grid_wall_s']:.0f} s wall"
        + (f"; curves and the validation sweep read from {out['curves_from']}, not re-run" if out["curves_from"]
           else "")
        + "). Validation error (%) per stage-2 epoch:", "",
        *truth_table(curves, lrs, epochs), "",
        f"Grid's best validation error {best:.2f}% -> target <= {target:.2f}%; reached by lr {', '.join(within)}.", "",
        f"Searchers: {len(seeds)} searcher seeds {list(seeds)} (the sampler's; every trial at seed {TRIAL_SEED}), "
        f"num_samples {out['num_samples']}; figures are median (min-max) over the seeds. They are REPLAYS of the "
        f"grid's recorded curves (bench/tabular.py: the real Optuna searcher, ASHA, Tuner and store on a Trainable "
        f"returning the recorded results, each epoch sleeping its recorded time / {speedup:g}); the one-epoch "
        f"screen is simulated on the recorded times ({SLOTS} slots).", "",
        "| arm | runs | trial-epochs spent | trial-epochs to target | % of grid's trial-epochs | "
        "trial-seconds to target | reached |", "|---|---|---|---|---|---|---|",
    ]
    figures = {}

    def row(name: str, orders: list[list]) -> None:
        hits = [to_target(order, target) for order in orders]
        figures[name] = [h[0] for h in hits]
        lines.append(f"| {name} | {len(orders)} | {spread([float(len(o)) for o in orders], lambda v: f'{v:.0f}')} | "
                     f"{spread([h[0] for h in hits], lambda v: f'{v:.0f}')} | {spread([h[0] for h in hits], pct)} | "
                     f"{spread([h[1] for h in hits], seconds)} | "
                     f"{sum(not math.isinf(h[0]) for h in hits)} of {len(hits)} |")

    for arm in SEARCH_ARMS:
        row(f"{arm} (replay)", [r["order"] for r in out["replays"][arm].values()])
    row(f"one-epoch screen, top {TOP_K} continued (simulated)", [screen_order(curves, lrs, TOP_K)])
    row("full grid (real run)", [out["grid_order"]])
    tpe = figures["TPE+ASHA (replay)"]
    median = statistics.median_low(tpe)
    share = 100 * median / grid_epochs
    verdict = ("target met" if share <= TARGET_SHARE
               else f"target MISSED by {share - TARGET_SHARE:.1f} points" if not math.isinf(share)
               else "target MISSED: the median seed never gets within 1 point")
    each = ", ".join(f"{seed}: " + ("never" if math.isinf(v) else f"{v:.0f} ({100 * v / grid_epochs:.1f}%)")
                     for seed, v in zip(out["replays"]["TPE+ASHA"], tpe))
    lines += ["", f"- TPE+ASHA reaches within {POINT:g} point of the grid's best after a median "
                  f"{'never' if math.isinf(share) else f'{share:.1f}%'} of the full grid's {grid_epochs} trial-epochs "
                  f"(trial-epochs by searcher seed, {each}; target: <= {TARGET_SHARE:g}%): {verdict}",
              first_rung_note(curves, lrs, target, out["grace"], out["reduction"]),
              "- configurations tried (lr x epochs run, in start order): " + "; ".join(
                  f"{arm} seed {seed}: {r['tried']}" for arm in ("TPE+ASHA",) for seed, r in
                  out["replays"][arm].items())]
    sim_hit, real_hit = to_target(grid_simulated(curves, lrs), target)[0], to_target(out["grid_order"], target)[0]
    lines.append(f"- slot simulation checked on the grid: simulated FIFO reaches the target at trial-epoch "
                 f"{sim_hit:.0f}, the real run at {real_hit:.0f}")
    real = out["real"]
    if real is None:
        lines.append("- replay validation: not run (curves read from a file)")
    else:
        replay = out["replays"]["TPE+ASHA"].get(VALIDATED_SEED)
        hit = to_target(real["order"], target)[0]
        rhit = to_target(replay["order"], target)[0] if replay else math.inf
        show = lambda n: "never" if math.isinf(n) else f"{n:.0f} ({pct(n)})"  # noqa: E731
        lines.append(
            f"- replay validation: TPE+ASHA at searcher seed {VALIDATED_SEED} run for real (real trainable, "
            f"{real['wall_s']:.0f} s wall): {len(real['order'])} trial-epochs spent, target at {show(hit)}, tried "
            f"{real['tried']}; its replay: {len(replay['order']) if replay else '-'} spent, target at {show(rhit)}, "
            f"tried {replay['tried'] if replay else '-'}. Every (lr, epoch) validation error the real run saw "
            f"({real['compared']} results) equals the grid's: largest difference {real['worst']:.2f} points")
    return lines


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--curves", type=Path, default=None,
                   help="save the grid's curves here (JSON); if the file exists, replay it instead of re-running")
    args = p.parse_args()
    if args.quick:
        base, lrs, train_samples, num_samples, seeds, speedup = TOY, tuple(10.0 ** (-4 + k) for k in range(3)), 64, 2, \
            (0, 1), 1.0
        setup = "toy task, test_efficientnet"
    else:
        base, lrs, train_samples, num_samples, seeds, speedup = EMBEDDED, LRS, None, 8, SEARCHER_SEEDS, SPEEDUP
        setup = "Spherical MNIST, EfficientNet-Lite0, --scale mini at its defaults"
    with scratch_dir("search") as tmp, private_ray(num_cpus=SLOTS):
        out = run_benchmark(base, lrs, train_samples, num_samples, seeds, speedup, tmp, args.curves)
    record("Search efficiency: TPE+ASHA vs random, a one-epoch screen and the full grid (finetune lr)",
           report(out, lrs, setup, speedup), args.quick, args.no_record)


if __name__ == "__main__":
    main()
