"""``python -m tuner.report <experiment...>``: one row per experiment, from the results store.

    python -m tuner.report sph-finetune sph-mona sph-mona-alpha0.1 --storage results
    python -m tuner.report sph-mona sph-mona-rerun --pool       # one row for both, said so
    python -m tuner.report tpe-mona --csv report.csv

A row gives the experiment's task, scale, backbone and method, its trials by status, its best
configuration (the configuration whose completed trials have the best mean *validation*
metric; the test set never selects) and that configuration's test metric: mean ± sample std
and 95% Student-t interval over its seeds, and n. Only completed trials enter a mean; the
others are counted. At paper scale the published number (``tuner.published``: MoNA's tables)
and the difference are set beside it; at mini scale (the embedded default) the table says they
are not comparable instead. ``--pool`` combines experiments of the same method, task, scale and
backbone into one row and lists them. For each experiment whose Optuna study is on disk (TPE
searches), the parameters' importances follow (Optuna's fANOVA evaluator by default).

Printed as Markdown; ``--csv`` also writes the table.
"""
from __future__ import annotations

import argparse
import math
import sys
import textwrap
from dataclasses import dataclass, field

import pandas as pd

from trainables.metrics import get_metric
from trainables.registry import get_task
from tuner import published, store, tables
from tuner.store import CONFIG_PREFIX

GROUP = ["method", "task", "scale", "backbone"]  # what --pool pools on
NO_STUDY = ("no Optuna study on disk (sensitivity / at-defaults experiment, or an experiment from "
            "before studies were saved)")
EVALUATORS = ("fanova", "ped-anova", "mdi")
FEW_TRIALS = 10  # below this many completed trials, importances are flagged as rough
WIDTH = 100  # the notes under the table are wrapped to this many columns
CONFIG_WIDTH = 48  # a longer best configuration is listed under the table, the cell points to it


def read(storage: str, experiments: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The trials of ``experiments`` (one frame) and the experiments with no ended trial yet.

    Raises:
        ValueError: a name with no store under ``storage`` (``store.require_experiments``).
    """
    store.require_experiments(storage, experiments)
    frames = {e: store.read_trials(storage, e) for e in dict.fromkeys(experiments)}
    empty = [e for e, f in frames.items() if f.empty]
    full = [f.assign(experiment=e) for e, f in frames.items() if not f.empty]
    return (pd.concat(full, ignore_index=True) if full else pd.DataFrame()), empty


def comparison(trials: pd.DataFrame, pool: bool = False) -> pd.DataFrame:
    """One row per experiment (``pool``: per method, task, scale and backbone), in the order the
    experiments first appear, grouped by task.

    Columns: ``experiments`` (comma-separated), the ``GROUP`` columns, the status counts of
    ``tables.STATUSES``, ``best_configuration`` (``configuration_text``),
    ``val_mean`` (its mean validation metric), ``mean``, ``std``, ``ci95`` (half-width),
    ``n`` and ``seeds`` of its test metric, ``tuner.published.COLUMNS`` (the published value
    and ``published_delta`` = mean - published, at paper scale), ``data_source`` and
    ``code_version``.
    """
    trials = trials.copy()
    for column in GROUP:
        if column not in trials:
            trials[column] = "?"
    trials[GROUP] = trials[GROUP].fillna("?")
    order = list(dict.fromkeys(trials["experiment"]))
    keys = GROUP if pool else ["experiment"]
    rows = [_row(group) for _, group in trials.groupby(keys, sort=False)]
    table = pd.DataFrame(rows)
    first = table["experiments"].map(lambda e: order.index(e.split(", ")[0]))
    tasks = list(dict.fromkeys(table.loc[first.sort_values().index, "task"]))
    return (table.assign(_task=table["task"].map(tasks.index), _first=first)
            .sort_values(["_task", "_first"]).drop(columns=["_task", "_first"]).reset_index(drop=True))


def _row(group: pd.DataFrame) -> dict:
    method, task, scale, backbone = (_joined(group, c) for c in GROUP)
    mode = get_metric(get_task(task).metric).mode
    best = tables.best_configuration(group, mode)
    mean, std, ci, n = tables.mean_ci(best["test_metric"]) if len(best) else (math.nan,) * 3 + (0,)
    seeds = int(best[CONFIG_PREFIX + "seed"].nunique()) if CONFIG_PREFIX + "seed" in best else n
    versus = published.versus(method, task, backbone, scale, mean)
    return {
        "experiments": ", ".join(dict.fromkeys(group["experiment"])), "method": method, "task": task,
        "scale": scale, "backbone": backbone, **tables.status_counts(group),
        "best_configuration": configuration_text(group, best, method, task, scale),
        "val_mean": float(best["best_val_metric"].mean()) if len(best) else math.nan,
        "mean": mean, "std": std, "ci95": ci, "n": n, "seeds": seeds,
        **published.columns(versus),
        "data_source": _joined(group, "data_source"), "code_version": _joined(group, "code_version"),
    }


def configuration_text(trials: pd.DataFrame, best: pd.DataFrame, method: str, task: str, scale: str) -> str:
    """The best configuration in a few words: ``name=value`` for each config value that varies
    across ``trials`` (what was searched or gridded; never the seed), then each dimension with
    one value in every trial that differs from the method's current default, marked ``*``;
    "defaults" when there is neither, "—" when no trial completed."""
    if best.empty:
        return "—"
    row = best.iloc[0]
    varied = tables.varying_keys(trials)
    items = [f"{k[len(CONFIG_PREFIX):]}={_value(row[k])}" for k in varied if not _unset(row[k])]
    try:
        dims = tables.dimension_defaults(method, task, scale)
    except (KeyError, ValueError):  # a task or method this version does not know, or no such scale
        dims = {}
    for name, default in dims.items():
        key = CONFIG_PREFIX + name
        if key in trials and key not in varied and not _same(row[key], default):
            items.append(f"{name}={_value(row[key])}*")
    return ", ".join(items) or "defaults"


def _unset(value) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _same(value, default) -> bool:
    if _unset(value):
        return True  # not set in this experiment (a conditional dimension): nothing to say
    if isinstance(default, bool) or isinstance(value, bool) or isinstance(default, str):
        return str(value).lower() == str(default).lower()
    try:
        return math.isclose(float(value), float(default), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return str(value) == str(default)


def _value(value) -> str:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3g}"
    if isinstance(value, float):
        return str(int(value))
    return str(value)


def _joined(group: pd.DataFrame, column: str) -> str:
    values = group[column].dropna().unique() if column in group else []
    return "/".join(sorted(map(str, values))) or "?"


def markdown(table: pd.DataFrame, pool: bool = False) -> str:
    """The table as Markdown, with what its columns mean below it."""
    paper = (table["scale"] == "paper").any()
    head = ["experiments" if pool else "experiment", "task", "scale", "backbone", "method", "c/p/d/e",
            "best configuration", "test mean ± std", "95% CI", "n"]
    if paper:
        head += ["published", "Δ vs published"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    long_configs = []  # (mark, experiments, configuration) listed under the table
    for r in table.itertuples():
        d = tables.decimals(r.mean)
        test = ("no completed trial" if r.n == 0 else f"{r.mean:.{d}f}" +
                (f" ± {r.std:.{d}f}" if not math.isnan(r.std) else ""))
        ci = f"[{r.mean - r.ci95:.{d}f}, {r.mean + r.ci95:.{d}f}]" if not math.isnan(r.ci95) else "—"
        n = f"{r.n} ({r.seeds} seeds)" if r.seeds < r.n else str(r.n)
        counts = f"{r.completed}/{r.pruned}/{r.diverged}/{r.error}"
        config = r.best_configuration
        if len(config) > CONFIG_WIDTH:
            long_configs.append((f"[{len(long_configs) + 1}]", r.experiments, config))
            config = f"{long_configs[-1][0]} below"
        cells = [r.experiments, r.task, r.scale, r.backbone, r.method, counts, config, test, ci, n]
        if paper:
            cells += published.cells(r, d)
        lines.append("| " + " | ".join(cells) + " |")
    below = [textwrap.fill(f"{mark} {name}: {config}", WIDTH, subsequent_indent="    ", break_on_hyphens=False)
             for mark, name, config in long_configs]
    return "\n".join(lines + [""] + (below + [""] if below else []) + notes(table, pool))


def notes(table: pd.DataFrame, pool: bool) -> list[str]:
    """The lines under the table: metrics, columns, data, comparability, pooling."""
    out = []
    labels = []
    for task in dict.fromkeys(table["task"]):
        try:
            metric = get_metric(get_task(task).metric)
            labels.append(f"{task}: {metric.label}, {'lower' if metric.mode == 'min' else 'higher'} is better")
        except KeyError:
            labels.append(f"{task}: metric unknown to this version")
    out.append("Test metric of each row's best configuration (best mean validation metric over its "
               "completed trials; the test set never selects): mean ± sample std over its seeds, "
               f"95% Student-t CI. {'; '.join(labels)}.")
    out.append("c/p/d/e: trials completed / pruned (ASHA) / diverged / error; only completed ones enter a mean.")
    if table["best_configuration"].str.contains(r"\*", regex=True).any():
        out.append("*: one value in every trial of the experiment (held, or a search that sampled one value), "
                   "not the method's current default.")
    data = [f"{r.task} at {r.scale} = {r.data_source}" for r in
            table.drop_duplicates(["task", "scale", "data_source"]).itertuples() if r.data_source != "?"]
    if data:
        out.append("Data: " + "; ".join(data) + ".")
    if (table["scale"] == "paper").any():
        out.append("Δ vs published = ours - published (tuner.published: MoNA's tables, as printed).")
        if (table["scale"] != "paper").any():
            out.append(f"not comparable (mini): {published.NOT_COMPARABLE} (other data, a small backbone, short runs).")
    elif len(table):
        out.append(f"Scale mini: {published.NOT_COMPARABLE} (other data, a small backbone, short runs); "
                   "none are shown.")
    if pool:
        out.append("Pooled (--pool): a row combines the experiments listed in its first column (same method, "
                   "task, scale and backbone); n counts trials, seeds repeated across experiments are flagged.")
    else:
        same = table[table.duplicated(GROUP, keep=False)].groupby(GROUP, sort=False)["experiments"]
        for _, names in same:
            out.append(f"{', '.join(names)}: same method, task, scale and backbone, one row each "
                       "(--pool: one row, the best configuration by validation among them).")
    return [textwrap.fill(line, WIDTH, break_on_hyphens=False) for line in out]


@dataclass
class Importances:
    """Optuna's parameter importances for one experiment, or why there are none (``message``)."""

    experiment: str
    values: dict = field(default_factory=dict)  # parameter -> importance (normalised to sum 1)
    evaluator: str = ""
    completed: int = 0
    trials: int = 0
    message: str = ""


def importances(storage: str, experiment: str, evaluator: str = "fanova") -> Importances:
    """Parameter importances of an experiment's Optuna study (``store.optuna_study_path``), over
    its completed trials and the parameters that vary among them.

    A study needs at least two completed trials and one varying parameter; otherwise, or with
    no study on disk, ``message`` says why. ``evaluator``: one of ``EVALUATORS`` (Optuna's
    fANOVA and mean-decrease-impurity are seeded here, so the numbers repeat).
    """
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    if evaluator not in EVALUATORS:
        raise ValueError(f"unknown importance evaluator {evaluator!r}; choose one of {', '.join(EVALUATORS)}")
    path = store.optuna_study_path(storage, experiment)
    fs, local = store.filesystem(path)
    if not fs.get_file_info(local).is_file:
        return Importances(experiment, message=NO_STUDY)
    if type(fs).__name__ != "LocalFileSystem":
        return Importances(experiment, message=f"the study at {path} is not on a local path; copy it here "
                           "and read it with optuna.load_study")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=experiment, storage=JournalStorage(JournalFileBackend(local)))
    every = study.get_trials(deepcopy=False)
    done = [t for t in every if t.state == TrialState.COMPLETE]
    common = set.intersection(*(set(t.params) for t in done)) if done else set()
    varying = sorted(p for p in common if len({repr(t.params[p]) for t in done}) > 1)
    result = Importances(experiment, completed=len(done), trials=len(every))
    if len(done) < 2 or not varying:
        result.message = (f"{len(done)} completed of {len(every)} trials in the study and "
                          f"{len(varying)} varying parameter(s): importances need at least 2 and 1")
        return result
    evaluators = {
        "fanova": lambda: optuna.importance.FanovaImportanceEvaluator(seed=0),
        "ped-anova": optuna.importance.PedAnovaImportanceEvaluator,
        "mdi": lambda: optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0),
    }
    chosen = evaluators[evaluator]()
    result.evaluator = type(chosen).__name__
    result.values = optuna.importance.get_param_importances(study, evaluator=chosen, params=varying)
    return result


def importance_lines(found: list[Importances]) -> list[str]:
    """Markdown lines: one per experiment with importances or a reason; experiments without a
    study on disk share one line."""
    if not found:
        return []
    lines = ["Parameter importances (Optuna; over each study's completed trials, pruned ones not counted):"]
    for imp in found:
        if imp.values:
            values = ", ".join(f"{k} {v:.2f}" for k, v in imp.values.items())
            rough = "; few trials, a rough guide" if imp.completed < FEW_TRIALS else ""
            lines.append(f"- {imp.experiment} ({imp.evaluator}, {imp.completed} completed of {imp.trials}"
                         f"{rough}): {values}")
        elif imp.message != NO_STUDY:
            lines.append(f"- {imp.experiment}: {imp.message}")
    absent = [imp.experiment for imp in found if imp.message == NO_STUDY]
    if absent:
        lines.append(f"- {', '.join(absent)}: {NO_STUDY}")
    return [textwrap.fill(line, WIDTH, subsequent_indent="  ", break_on_hyphens=False) for line in lines]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tuner.report", description=__doc__.split("\n")[0])
    p.add_argument("experiments", nargs="+")
    p.add_argument("--storage", default="results")
    p.add_argument("--pool", action="store_true",
                   help="one row per method, task, scale and backbone, pooling those experiments (listed)")
    p.add_argument("--csv", default=None, help="also write the table as CSV")
    p.add_argument("--importance", default="fanova", choices=EVALUATORS,
                   help="Optuna's parameter-importance evaluator for experiments with a study on disk")
    args = p.parse_args(argv)
    try:
        trials, empty = read(args.storage, args.experiments)
        table = comparison(trials, pool=args.pool) if len(trials) else pd.DataFrame()
        found = [importances(args.storage, e, args.importance) for e in dict.fromkeys(args.experiments)
                 if e not in empty]
    except (KeyError, ValueError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    if len(table):
        print(markdown(table, pool=args.pool))
    for name in empty:
        print(f"{name}: no trial has ended yet.")
    lines = importance_lines(found)
    if lines:
        print("\n" + "\n".join(lines))
    if args.csv and len(table):
        table.to_csv(args.csv, index=False)
        print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
