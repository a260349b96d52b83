"""``python -m tuner.plot``: figures drawn from the results store only.

    python -m tuner.plot sensitivity <experiment> --param lambda     # MoNA Fig. 6 style
    python -m tuner.plot curves <experiment>                          # learning curves by stage
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trainables.metrics import get_metric  # noqa: E402
from trainables.registry import get_task  # noqa: E402
from tuner import analysis, store  # noqa: E402

STAGE_COLOURS = {1: "tab:orange", 2: "tab:blue"}


def plot_sensitivity(storage: str, experiment: str, param: str, which: str = "test"):
    """Mean metric against ``param`` with ±1 std error bars over seeds; best value marked.

    Returns:
        (figure, table): the table is exactly the data plotted (``analysis.sensitivity_table``).
    """
    trials = store.read_trials(storage, experiment)
    if trials.empty:
        raise ValueError(f"experiment {experiment!r} has no trials in {storage}")
    task, method = analysis.only(trials, "task"), analysis.only(trials, "method")
    table = analysis.sensitivity_table(trials, analysis.config_key(method, param), analysis.metric_column(which))
    mode = get_metric(get_task(task).metric).mode
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(table["value"], table["mean"], yerr=table["std"].fillna(0), marker="o", capsize=3)
    best = table.loc[table["mean"].idxmin() if mode == "min" else table["mean"].idxmax()]
    ax.plot([best["value"]], [best["mean"]], marker="*", markersize=14, color="tab:red",
            linestyle="none", label=f"best {param}={best['value']:g}")
    ax.set_xlabel(param)
    ax.set_ylabel(analysis.metric_label(task, which))
    excluded = int(table["excluded"].sum())
    note = f"; {excluded} incomplete trials excluded" if excluded else ""
    ax.set_title(f"{method} on {task}: mean ± std over seeds (n≤{int(table['n'].max())}){note}", fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, table


def plot_curves(storage: str, experiment: str):
    """Validation metric per epoch for every trial, coloured by stage; pruned trials dashed."""
    trials = store.read_trials(storage, experiment)
    history = store.read_history(storage, experiment)
    if history.empty:
        raise ValueError(f"experiment {experiment!r} has no results in {storage}")
    status = dict(zip(trials["trial_id"], trials["status"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for trial_id, rows in history.groupby("trial_id"):
        style = "--" if status.get(trial_id) == "pruned" else "-"
        for stage, part in rows.groupby("stage"):
            ax.plot(part["iteration"], part["val_metric"], style, color=STAGE_COLOURS.get(int(stage), "grey"),
                    marker=".", alpha=0.8)
    for stage, colour in STAGE_COLOURS.items():
        ax.plot([], [], color=colour, label=f"stage {stage}")
    ax.plot([], [], "--", color="grey", label="pruned")
    ax.set_xlabel("epoch (training iteration)")
    ax.set_ylabel(analysis.metric_label(analysis.only(trials, "task"), "val"))
    ax.set_title(f"{experiment}: {len(trials)} trials", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tuner.plot", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="kind", required=True)
    for kind in ("sensitivity", "curves"):
        s = sub.add_parser(kind)
        s.add_argument("experiment")
        s.add_argument("--storage", default="results")
        s.add_argument("--out", default=None, help="PNG path (default <experiment>-<kind>.png)")
        if kind == "sensitivity":
            s.add_argument("--param", required=True, help="dimension, e.g. lambda, inner_steps")
            s.add_argument("--metric", default="test", choices=sorted(analysis.METRIC_COLUMNS))
    args = p.parse_args(argv)
    try:
        if args.kind == "sensitivity":
            fig, table = plot_sensitivity(args.storage, args.experiment, args.param, args.metric)
            print(table.to_string(index=False))
        else:
            fig = plot_curves(args.storage, args.experiment)
    except (KeyError, ValueError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    out = Path(args.out or f"{args.experiment}-{args.kind}.png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
