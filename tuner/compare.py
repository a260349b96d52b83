"""``python -m tuner.compare``: methods side by side on one task, at their defaults, over seeds.

    python -m tuner.compare --task spherical --methods finetune,finetune++,emb,orca,mona,pare --seeds 3
    python -m tuner.compare --report cmp-finetune cmp-emb ... --baseline finetune++   # report only
    python -m tuner.compare --from-experiment tpe-mona --methods finetune++ --seeds 3

Each method runs as one experiment ``<name>-<method>`` in ``--storage`` (``--at-defaults``:
every dimension at its space's default or ``--set`` value, seeds ``--seed`` .. ``--seed +
--seeds - 1``, to full length, no search and no pruning), all on one Ray. The report (MoNA
Table 2 style) gives, per method, the test metric's mean, sample std, n and a 95% confidence
interval (Student t over seeds), and against the baseline the per-seed paired difference
(method - baseline) with its 95% CI and a two-sided paired t-test. "Beyond seed noise" means
that paired CI excludes 0. With 3 seeds these intervals are wide: they say what 3 seeds can
and cannot tell apart. At paper scale the published number (``tuner.published``) and the
difference to it follow; at mini scale the report says they are not comparable.

``--from-experiment NAME`` adds a row for NAME's best configuration (best mean validation
metric over its completed trials, as ``tuner.report`` picks it), re-run on fresh seeds: every
dimension of the method held at that configuration's value (``--set`` still wins), experiment
``<name>-<method>-best-of-<NAME>``. Task, scale, backbone, data, epochs and training subset
come from NAME's trials, and every row of the comparison runs on seeds NAME never used (from
one past its largest), so the pairs stay paired and the selection's seeds never score it.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace

import pandas as pd
from scipy import stats

from trainables.metrics import get_metric
from trainables.registry import get_method, get_task
from tuner import published, store, tables
from tuner.store import CONFIG_PREFIX
from tuner.spec import SweepSpec, space_defaults, space_dimensions
from tuner.tables import CONFIDENCE, mean_ci  # noqa: F401  (tuner.compare.mean_ci: tuner.plot imports it)

DEFAULT_BASELINE = "finetune++"
BEST_OF = "-best-of-"  # experiment name <prefix>-<method>-best-of-<source>: a --from-experiment run


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
        scale, backbone, name = _one(group, "scale"), _one(group, "backbone"), _one(group, "method")
        versus = published.versus(name, str(tasks[0]), backbone, scale, mean)
        row = {"method": method, "scale": scale, "backbone": backbone,
               "mean": mean, "std": std, "ci95": ci, "n": n, "left_out": int((group["status"] != "completed").sum()),
               **published.columns(versus)}
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
    one method appears in several experiments (e.g. an ablation beside the default), and
    ``method (best of SOURCE)`` for a ``--from-experiment`` run.

    >>> t = pd.DataFrame({"method": ["mona", "mona", "emb"],
    ...                   "experiment": ["c-mona", "c-mona-best-of-tpe", "c-emb"]})
    >>> list(row_labels(t))
    ['mona (c-mona)', 'mona (best of tpe)', 'emb']
    """
    per_method = trials.groupby("method")["experiment"].nunique() if "experiment" in trials else None
    if per_method is None:
        return trials["method"]
    repeated = trials["method"].map(per_method) > 1
    labels = trials["method"].where(~repeated, trials["method"] + " (" + trials["experiment"] + ")")
    best_of = trials["experiment"].str.partition(BEST_OF)[2]
    return labels.where(best_of == "", trials["method"] + " (best of " + best_of + ")")


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
    paper = (table["scale"] == "paper").any() if "published_note" in table else False
    head = ["method", "scale", "backbone", "test (mean ± std)", "95% CI", "n", "Δ vs baseline (± 95% CI)",
            "paired p", "verdict"] + (["published", "Δ vs published"] if paper else [])
    lines = [f"Test {metric.label} on {task} ({'lower' if metric.mode == 'min' else 'higher'} is better); "
             f"mean ± std over seeds, 95% CI (Student t); paired difference to {baseline} per seed.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.itertuples():
        d = tables.decimals(r.mean)
        ci = f"[{r.mean - r.ci95:.{d}f}, {r.mean + r.ci95:.{d}f}]" if not math.isnan(r.ci95) else "—"
        spread = f" ± {r.std:.{d}f}" if not math.isnan(r.std) else ""
        left = f" (+{r.left_out} not completed)" if r.left_out else ""
        diff = getattr(r, "diff", math.nan)
        delta = (f"{diff:+.{d}f} (±{r.diff_ci95:.{d}f})" if isinstance(diff, float) and not math.isnan(diff)
                 and not math.isnan(r.diff_ci95) else "baseline" if r.method == baseline else "—")
        p = getattr(r, "p_paired", math.nan)
        p_text = ("—" if not isinstance(p, float) or math.isnan(p) else "<0.001" if p < 0.001 else f"{p:.3f}")
        verdict = getattr(r, "verdict", "") if isinstance(getattr(r, "verdict", ""), str) else ""
        extra = " | ".join(published.cells(r, d)) + " |" if paper else ""
        lines.append(f"| {r.method} | {r.scale} | {r.backbone} | {r.mean:.{d}f}{spread} | {ci} | {r.n}{left} | "
                     f"{delta} | {p_text} | {verdict} |{' ' + extra if extra else ''}")
    if paper:
        lines += ["", "Δ vs published = ours - published (tuner.published: MoNA's tables, as printed)."]
    if (table["scale"] == "mini").any():
        lines += ["", "Scale mini is the embedded CPU default (small data, small backbone, short runs): "
                  "not comparable with the papers' numbers."]
    return "\n".join(lines)


def read_experiments(storage: str, experiments: list[str]) -> pd.DataFrame:
    """The trials of ``experiments``, one frame.

    Raises:
        ValueError: a name with no store under ``storage`` (listing those there), or one with no trial yet.
    """
    store.require_experiments(storage, experiments)
    frames = [store.read_trials(storage, e) for e in experiments]
    empty = [e for e, f in zip(experiments, frames) if f.empty]
    if empty:
        raise ValueError(f"no trials in {storage} for: {', '.join(empty)}")
    return pd.concat(frames, ignore_index=True)


def run_methods(base: SweepSpec, methods: list[str], address: str | None = None,
                extra: tuple[SweepSpec, ...] = ()) -> list[str]:
    """Run ``base`` at its defaults once per method (experiments ``<name>-<method>``) on one Ray,
    then the ``extra`` specs (``--from-experiment`` runs).

    Every spec is resolved first, so a bad method or value fails before anything runs.
    """
    import ray

    from tuner import cluster
    from tuner.experiment import run_experiment

    specs = [replace(base, method=m, name=f"{base.name}-{m}", at_defaults=True) for m in methods] + list(extra)
    resolved = [s.resolve() for s in specs]
    owns_ray = not ray.is_initialized()
    cluster.start_ray(address)
    try:
        for r in resolved:
            what = ("the best configuration of " + r.name.partition(BEST_OF)[2] if BEST_OF in r.name
                    else "its defaults")
            print(f"--- {r.name}: {r.spec.method} at {what} x {r.spec.seeds} seeds "
                  f"({r.spec.seed}..{r.spec.seed + r.spec.seeds - 1})", flush=True)
            run_experiment(r, address=address)
    finally:
        if owns_ray:
            ray.shutdown()
    return [r.name for r in resolved]


def best_settings(trials: pd.DataFrame) -> dict:
    """The best configuration of an experiment (best mean validation metric over its completed
    trials, ``tables.best_configuration``) as ``{dimension: value}`` for every dimension of its
    method that its trials recorded (searched ones, held ones and constants).

    Raises:
        ValueError: no completed trial, or trials of several tasks / methods / scales.
    """
    task, method, scale = (tables.only(trials, c) for c in ("task", "method", "scale"))
    best = tables.best_configuration(trials, get_metric(get_task(task).metric).mode)
    if best.empty:
        raise ValueError(f"experiment {tables.only(trials, 'experiment')!r} has no completed trial to take "
                         "a best configuration from")
    row = best.iloc[0]
    dims = space_dimensions(get_method(method), space_defaults(get_task(task), scale))
    return {name: _plain(row[CONFIG_PREFIX + name]) for name in dims
            if CONFIG_PREFIX + name in row and not _missing(row[CONFIG_PREFIX + name])}


def set_items(settings: dict) -> tuple[str, ...]:
    """``--set`` items ``NAME=VALUE`` that hold ``settings`` exactly (floats by ``repr``).

    >>> set_items({"stage2_lr": 0.0012345678901, "inner_steps": 2, "meta_grad": "exact", "flag": True})
    ('stage2_lr=0.0012345678901', 'inner_steps=2', 'meta_grad=exact', 'flag=true')
    """
    def text(v) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, float):
            return str(int(v)) if v.is_integer() else repr(v)
        return str(v)

    return tuple(f"{k}={text(v)}" for k, v in settings.items())


def fresh_seed(trials: pd.DataFrame, first: int | None, seeds: int) -> int:
    """The first seed of a re-run: ``first``, or one past the largest seed ``trials`` used.

    Raises:
        ValueError: ``first`` .. ``first + seeds - 1`` includes a seed ``trials`` used.
    """
    used = set(trials[CONFIG_PREFIX + "seed"].dropna().astype(int)) if CONFIG_PREFIX + "seed" in trials else set()
    if first is None:
        return max(used, default=-1) + 1
    reused = sorted(used & set(range(first, first + seeds)))
    if reused:
        raise ValueError(f"--seed {first} with --seeds {seeds} re-uses seed(s) {reused}, which chose the "
                         f"configuration; fresh seeds start at {max(used) + 1}")
    return first


def from_experiment(trials: pd.DataFrame, source: str, args: argparse.Namespace) -> tuple[SweepSpec, SweepSpec]:
    """(base, best) for ``--from-experiment``: ``base`` runs the ``--methods`` at their defaults
    like ``source`` ran (task, scale, backbone, data, epochs, training subset, validation split,
    init and weights from its trials; flags given win) on fresh seeds; ``best`` is ``base`` for
    ``source``'s method with its best configuration held (``--set`` items still win).

    Raises:
        ValueError: a ``--task`` or ``--scale`` other than ``source``'s, no completed trial, or
            seeds ``source`` used.
    """
    task, scale, backbone, method = (tables.only(trials, c) for c in ("task", "scale", "backbone", "method"))
    if args.task and args.task != task:
        raise ValueError(f"--task {args.task} but {source} ran task {task}")
    if args.scale not in ("auto", scale):
        raise ValueError(f"--scale {args.scale} but {source} chose its configuration at scale {scale}")
    settings = best_settings(trials)
    row = trials.iloc[0]

    def recorded(key: str, given, cast=None):
        if given is not None:
            return given
        value = row.get(CONFIG_PREFIX + key)
        return None if _missing(value) or value == "" else (cast(value) if cast else _plain(value))

    name = args.name or f"compare-{task}"
    base = SweepSpec(task=task, method=method, scale=scale, backbone=backbone,
                     data_dir=recorded("data_root", args.data_dir),
                     init=recorded("encoder_init", None) or "pretrained",
                     weights=recorded("weights_path", None),
                     max_epochs=recorded("stage2_epochs", args.max_epochs, int),
                     max_train_samples=recorded("max_train_samples", args.max_train_samples, int),
                     val_fraction=recorded("val_fraction", None, float) or SweepSpec.val_fraction,
                     cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                     storage=args.storage, name=name, seed=fresh_seed(trials, args.seed, args.seeds),
                     seeds=args.seeds, fixed=tuple(args.fixed))
    best = replace(base, method=method, name=f"{name}-{method}{BEST_OF}{source}", at_defaults=True,
                   fixed=set_items(settings) + tuple(args.fixed))
    return base, best


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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
    p.add_argument("--seed", type=int, default=None,
                   help="first seed (default 0; with --from-experiment, one past the largest seed it used)")
    p.add_argument("--from-experiment", default=None, metavar="NAME",
                   help="also re-run NAME's best configuration (by validation) on fresh seeds, beside "
                        "the --methods at their defaults on the same seeds; task, scale and backbone from NAME")
    p.add_argument("--set", dest="fixed", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--address", default=None)
    p.add_argument("--csv", default=None, help="also write the table as CSV")
    args = p.parse_args(argv)
    if not (args.report or args.task or args.from_experiment):
        p.error("--task or --from-experiment (run and report), or --report EXPERIMENT... (report only), is required")
    if args.report and args.from_experiment:
        p.error("--from-experiment runs trials; --report only reads them: give one")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.report:
            experiments = args.report
        else:
            from tuner.sweep import set_driver_env

            set_driver_env(args.address, verbose=False)
            extra: tuple[SweepSpec, ...] = ()
            if args.from_experiment:
                base, best = from_experiment(read_experiments(args.storage, [args.from_experiment]),
                                             args.from_experiment, args)
                extra = (best,)
            else:
                base = SweepSpec(task=args.task, method="finetune", scale=args.scale, data_dir=args.data_dir,
                                 max_epochs=args.max_epochs, max_train_samples=args.max_train_samples,
                                 cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                                 storage=args.storage, name=args.name or f"compare-{args.task}",
                                 seed=args.seed or 0, seeds=args.seeds, fixed=tuple(args.fixed))
            methods = [m.strip() for m in args.methods.split(",") if m.strip()]
            experiments = run_methods(base, methods, args.address, extra)
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
