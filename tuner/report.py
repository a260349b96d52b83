"""``python -m tuner.report <experiment...>``: a Table-2-style comparison from the store.

Rows are methods, columns tasks. A cell is the mean ± std (over seeds) of the test metric of
the method's best configuration on that task — the configuration whose completed trials have
the best mean *validation* metric (the test set never selects). Trials that did not complete
are counted in the cell, never averaged in. Printed as Markdown; also written as CSV.
"""
from __future__ import annotations

import argparse
import math
import sys

import pandas as pd

from trainables.metrics import get_metric
from trainables.registry import get_task
from tuner import store, tables


def comparison(storage: str, experiments: list[str]) -> pd.DataFrame:
    """One row per (method, task): mean, std and n of the best configuration's test metric.

    Also ``completed``, ``incomplete`` (pruned + diverged) and ``error`` trial counts, summed
    over every experiment of that method and task.
    """
    frames = [store.read_trials(storage, e) for e in experiments]
    empty = [e for e, f in zip(experiments, frames) if f.empty]
    if empty:
        raise ValueError(f"no trials in {storage} for: {', '.join(empty)}")
    trials = pd.concat(frames, ignore_index=True)
    rows = []
    for (method, task), group in trials.groupby(["method", "task"]):
        mode = get_metric(get_task(task).metric).mode
        best = tables.best_configuration(group, mode)["test_metric"]
        status = group["status"]
        rows.append({
            "method": method, "task": task, "mean": best.mean(), "std": best.std(), "n": int(best.count()),
            "completed": int((status == "completed").sum()),
            "incomplete": int(status.isin(["pruned", "diverged"]).sum()),
            "error": int((status == "error").sum()),
        })
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """Methods x tasks; each cell "mean ± std (n=…)" plus counts of trials left out."""
    tasks = sorted(table["task"].unique())
    lines = ["| method | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for method, rows in table.groupby("method"):
        cells = {r.task: _cell(r) for r in rows.itertuples()}
        lines.append(f"| {method} | " + " | ".join(cells.get(t, "—") for t in tasks) + " |")
    labels = {t: get_metric(get_task(t).metric).label for t in tasks}
    lines.append("")
    lines.append("Test metric of the best configuration by validation; " +
                 "; ".join(f"{t}: {label}" for t, label in labels.items()) + ".")
    return "\n".join(lines)


def _cell(r) -> str:
    if r.n == 0:
        value = "no completed trial"
    elif math.isnan(r.std):
        value = f"{r.mean:.2f} (n=1)"
    else:
        value = f"{r.mean:.2f} ± {r.std:.2f} (n={r.n})"
    left_out = [f"{k} {getattr(r, k)}" for k in ("incomplete", "error") if getattr(r, k)]
    return value + (f" [{', '.join(left_out)} left out]" if left_out else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tuner.report", description=__doc__.split("\n")[0])
    p.add_argument("experiments", nargs="+")
    p.add_argument("--storage", default="results")
    p.add_argument("--csv", default="report.csv", help="where to write the table as CSV")
    args = p.parse_args(argv)
    try:
        table = comparison(args.storage, args.experiments)
    except (KeyError, ValueError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    print(markdown(table))
    table.to_csv(args.csv, index=False)
    print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
