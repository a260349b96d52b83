"""``python -m tuner.compare``: methods side by side on one task, at their defaults, over seeds.

    python -m tuner.compare --task spherical --methods finetune,finetune++,emb,orca,mona,pare --seeds 3
    python -m tuner.compare --report cmp-finetune cmp-emb ... --baseline finetune++   # report only

Each method runs as one experiment ``<name>-<method>`` in ``--storage`` (``--at-defaults``:
every dimension at its space's default or ``--set`` value, seeds ``--seed`` .. ``--seed +
--seeds - 1``, to full length, no search and no pruning), all on one Ray. The report (MoNA
Table 2 style) gives, per method, the test metric's mean, sample std, n and a 95% confidence
interval (Student t over seeds), and against the baseline the per-seed paired difference
(method - baseline) with its 95% CI and a two-sided paired t-test. "Beyond seed noise" means
that paired CI excludes 0. With 3 seeds these intervals are wide: they say what 3 seeds can
and cannot tell apart.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import replace

import pandas as pd
from scipy import stats

from trainables.metrics import get_metric
from trainables.registry import get_task
from tuner import store
from tuner.spec import SweepSpec

CONFIDENCE = 0.95
DEFAULT_BASELINE = "finetune++"


def mean_ci(values: pd.Series) -> tuple[float, float, float, int]:
    """(mean, sample std, half-width of the 95% Student-t interval, n); NaN spread for n < 2.

    >>> [round(v, 4) for v in mean_ci(pd.Series([1.0, 2.0, 3.0]))]
    [2.0, 1.0, 2.4841, 3]
    """
    v = values.dropna()
    n = len(v)
    if n < 2:
        return (float(v.mean()) if n else math.nan), math.nan, math.nan, n
    std = float(v.std(ddof=1))
    return float(v.mean()), std, float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)), n


def comparison(trials: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """One row per experiment (``row_labels``; completed trials only): mean, std, 95% CI, n of
    the test metric, and the paired difference to ``baseline`` (a row label) over the seeds
    both completed.

    Raises:
        ValueError: more than one task, or the baseline has no completed trial.
    """
    tasks = trials["task"].dropna().unique()
    if len(tasks) != 1:
        raise ValueError(f"a comparison is on one task; found {sorted(map(str, tasks))}")
    mode = get_metric(get_task(str(tasks[0])).metric).mode
    trials = trials.assign(label=row_labels(trials))
    done = trials[trials["status"] == "completed"]
    by_seed = done.pivot_table(index="config/seed", columns="label", values="test_metric", aggfunc="mean")
    if baseline not in by_seed:
        raise ValueError(f"baseline {baseline!r} has no completed trial; rows: {sorted(by_seed.columns)}")
    rows = []
    for method, group in trials.groupby("label", sort=False):
        mean, std, ci, n = mean_ci(group.loc[group["status"] == "completed", "test_metric"])
        row = {"method": method, "scale": _one(group, "scale"), "backbone": _one(group, "backbone"),
               "mean": mean, "std": std, "ci95": ci, "n": n, "left_out": int((group["status"] != "completed").sum())}
        if method != baseline and method in by_seed:
            pairs = by_seed[[method, baseline]].dropna()
            diff = pairs[method] - pairs[baseline]
            d_mean, _, d_ci, d_n = mean_ci(diff)
            p = float(stats.ttest_rel(pairs[method], pairs[baseline]).pvalue) if d_n >= 2 else math.nan
            better = d_mean < 0 if mode == "min" else d_mean > 0
            row.update(diff=d_mean, diff_ci95=d_ci, pairs=d_n, p_paired=p,
                       verdict=_verdict(d_mean, d_ci, better, baseline))
        rows.append(row)
    return pd.DataFrame(rows)


def row_labels(trials: pd.DataFrame) -> pd.Series:
    """A row per experiment, never pooled: the method's name, or ``method (experiment)`` where
    one method appears in several experiments (e.g. an ablation beside the default)."""
    per_method = trials.groupby("method")["experiment"].nunique() if "experiment" in trials else None
    if per_method is None or (per_method <= 1).all():
        return trials["method"]
    repeated = trials["method"].map(per_method) > 1
    return trials["method"].where(~repeated, trials["method"] + " (" + trials["experiment"] + ")")


def _verdict(d_mean: float, d_ci: float, better: bool, baseline: str) -> str:
    if math.isnan(d_ci):
        return "too few paired seeds"
    if abs(d_mean) <= d_ci:
        return f"within seed noise of {baseline}"
    return f"{'better' if better else 'worse'} than {baseline} beyond seed noise"


def _one(group: pd.DataFrame, column: str) -> str:
    values = group[column].dropna().unique() if column in group else []
    return "/".join(sorted(map(str, values))) or "?"


def markdown(table: pd.DataFrame, task: str, baseline: str) -> str:
    metric = get_metric(get_task(task).metric)
    lines = [f"Test {metric.label} on {task} ({'lower' if metric.mode == 'min' else 'higher'} is better); "
             f"mean ± std over seeds, 95% CI (Student t); paired difference to {baseline} per seed.", "",
             "| method | scale | backbone | test (mean ± std) | 95% CI | n | Δ vs baseline (± 95% CI) | paired p | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        ci = f"[{r.mean - r.ci95:.2f}, {r.mean + r.ci95:.2f}]" if not math.isnan(r.ci95) else "—"
        spread = f" ± {r.std:.2f}" if not math.isnan(r.std) else ""
        left = f" (+{r.left_out} not completed)" if r.left_out else ""
        diff = getattr(r, "diff", math.nan)
        delta = (f"{diff:+.2f} (±{r.diff_ci95:.2f})" if isinstance(diff, float) and not math.isnan(diff)
                 and not math.isnan(r.diff_ci95) else "baseline" if r.method == baseline else "—")
        p = getattr(r, "p_paired", math.nan)
        p_text = f"{p:.3f}" if isinstance(p, float) and not math.isnan(p) else "—"
        verdict = getattr(r, "verdict", "") if isinstance(getattr(r, "verdict", ""), str) else ""
        lines.append(f"| {r.method} | {r.scale} | {r.backbone} | {r.mean:.2f}{spread} | {ci} | {r.n}{left} | "
                     f"{delta} | {p_text} | {verdict} |")
    if (table["scale"] == "mini").any():
        lines += ["", "Scale mini is the embedded CPU default (small data, small backbone, short runs): "
                  "not comparable with the papers' numbers."]
    return "\n".join(lines)


def read_experiments(storage: str, experiments: list[str]) -> pd.DataFrame:
    frames = [store.read_trials(storage, e) for e in experiments]
    empty = [e for e, f in zip(experiments, frames) if f.empty]
    if empty:
        raise ValueError(f"no trials in {storage} for: {', '.join(empty)}")
    return pd.concat(frames, ignore_index=True)


def run_methods(base: SweepSpec, methods: list[str], address: str | None = None) -> list[str]:
    """Run ``base`` at its defaults once per method (experiments ``<name>-<method>``) on one Ray.

    Every spec is resolved first, so a bad method or value fails before anything runs.
    """
    import ray

    from tuner import cluster
    from tuner.experiment import run_experiment

    specs = [replace(base, method=m, name=f"{base.name}-{m}", at_defaults=True) for m in methods]
    resolved = [s.resolve() for s in specs]
    owns_ray = not ray.is_initialized()
    cluster.start_ray(address)
    try:
        for r in resolved:
            print(f"--- {r.name}: {r.spec.method} at its defaults x {r.spec.seeds} seeds", flush=True)
            run_experiment(r, address=address)
    finally:
        if owns_ray:
            ray.shutdown()
    return [r.name for r in resolved]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuner.compare", description=__doc__.split("\n")[0])
    p.add_argument("--task", help="task to run the methods on (not with --report)")
    p.add_argument("--methods", default="finetune,finetune++,emb,orca,mona,pare", help="comma-separated")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--baseline", default=DEFAULT_BASELINE)
    p.add_argument("--report", nargs="+", metavar="EXPERIMENT", help="only report these experiments")
    p.add_argument("--storage", default="results")
    p.add_argument("--name", default=None, help="experiment prefix (default compare-<task>)")
    p.add_argument("--scale", default="auto")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--set", dest="fixed", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--address", default=None)
    p.add_argument("--csv", default=None, help="also write the table as CSV")
    args = p.parse_args(argv)
    if not (args.report or args.task):
        p.error("--task (run and report) or --report EXPERIMENT... (report only) is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.report:
            experiments = args.report
        else:
            from tuner.sweep import LOOPBACK_ENV, QUIET_ENV

            if not (args.address or os.environ.get("RAY_ADDRESS")):
                for key, value in LOOPBACK_ENV.items():
                    os.environ.setdefault(key, value)
            for key, value in QUIET_ENV.items():
                os.environ.setdefault(key, value)
            base = SweepSpec(task=args.task, method="finetune", scale=args.scale, data_dir=args.data_dir,
                             max_epochs=args.max_epochs, max_train_samples=args.max_train_samples,
                             cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                             storage=args.storage, name=args.name or f"compare-{args.task}", seed=args.seed,
                             seeds=args.seeds, fixed=tuple(args.fixed))
            experiments = run_methods(base, [m.strip() for m in args.methods.split(",") if m.strip()], args.address)
        trials = read_experiments(args.storage, experiments)
        table = comparison(trials, args.baseline)
    except (KeyError, ValueError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    print(markdown(table, str(trials["task"].dropna().iloc[0]), args.baseline))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
