"""``python -m tuner.plot``: figures drawn from the results store only.

    python -m tuner.plot sensitivity <experiment> --param lambda     # MoNA Fig. 6 style
    python -m tuner.plot curves <experiment>                          # learning curves by stage
    python -m tuner.plot distortion <experiment...>                   # MoNA Fig. 3 style
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from trainables.metrics import get_metric  # noqa: E402
from trainables.registry import get_task  # noqa: E402
from tuner import store, tables  # noqa: E402

STAGE_COLOURS = {1: "tab:orange", 2: "tab:blue"}
NO_DISTORTION = ("no distortion rows for {experiments} in {storage}: run "
                 "python -m tuner.analyze distortion <experiment> first")


def plot_sensitivity(storage: str, experiment: str, param: str, which: str = "test"):
    """Mean metric against ``param`` with ±1 std error bars over seeds; the best value marked.

    The best value is chosen on *validation* (mean best-validation metric over seeds), as a
    model selection must be; the star sits on the plotted curve at that value. When ``which``
    is "test", the validation curve is drawn beside it (dashed, labelled) so the choice shows.

    Returns:
        (figure, table): the table is exactly the data plotted (``tables.sensitivity_table``
        of ``which``, plus ``val_mean``, the validation means the best value is chosen on).
    """
    trials = store.read_trials(storage, experiment)
    if trials.empty:
        raise ValueError(f"experiment {experiment!r} has no trials in {storage}")
    task, method = tables.only(trials, "task"), tables.only(trials, "method")
    key = tables.config_key(method, param)
    table = tables.sensitivity_table(trials, key, tables.metric_column(which))
    val = tables.sensitivity_table(trials, key, tables.metric_column("val"))
    if table.empty or val["mean"].isna().all():
        raise ValueError(f"experiment {experiment!r} has no completed trials to plot")
    table["val_mean"] = table["value"].map(dict(zip(val["value"], val["mean"])))
    mode = get_metric(get_task(task).metric).mode
    best = table.loc[table["val_mean"].idxmin() if mode == "min" else table["val_mean"].idxmax()]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(table["value"], table["mean"], yerr=table["std"].fillna(0), marker="o", capsize=3, label=which)
    if which != "val":
        ax.errorbar(val["value"], val["mean"], yerr=val["std"].fillna(0), marker=".", capsize=2,
                    linestyle="--", alpha=0.6, color="grey", label="validation (selects the best)")
    ax.plot([best["value"]], [best["mean"]], marker="*", markersize=14, color="tab:red",
            linestyle="none", label=f"best on validation: {param}={best['value']:g}")
    ax.set_xlabel(param)
    ax.set_ylabel(tables.metric_label(task, which))
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
    ax.set_ylabel(tables.metric_label(tables.only(trials, "task"), "val"))
    ax.set_title(f"{experiment}: {len(trials)} trials", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def distortion_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Linear-probe error by method: mean, sample std (NaN for one trial) and count, in order
    of first appearance, with the pretrained encoder's probe error beside each method.

    >>> rows = pd.DataFrame({"method": ["mona", "finetune", "mona"], "probe_error": [10.0, 30.0, 20.0],
    ...                      "pretrained_probe_error": [12.0, 12.0, 12.0]})
    >>> distortion_table(rows).to_dict("records")[0]
    {'method': 'mona', 'mean': 15.0, 'std': 7.0710678118654755, 'n': 2, 'pretrained': 12.0}
    """
    groups = rows.groupby("method", sort=False)
    table = groups["probe_error"].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    table["pretrained"] = groups["pretrained_probe_error"].mean()
    return table.reset_index()


def plot_distortion(storage: str, experiments: list[str]):
    """Bars of the mean linear-probe error (± std over trials) per method; the pretrained
    encoder's error as a dashed line (MoNA Fig. 3). Reads the ``distortion`` tables only.

    Returns:
        (figure, table): the table is exactly the data plotted (``distortion_table``).
    """
    frames = [f for f in (store.read_distortion(storage, e) for e in experiments) if not f.empty]
    if not frames:
        raise ValueError(NO_DISTORTION.format(experiments=", ".join(experiments), storage=storage))
    rows = pd.concat(frames, ignore_index=True)
    table = distortion_table(rows)
    fig, ax = plt.subplots(figsize=(1.2 * len(table) + 2.5, 3.6))
    labels = [f"{m}\n(n={n})" for m, n in zip(table["method"], table["n"])]
    ax.bar(labels, table["mean"], yerr=table["std"].fillna(0), capsize=3, color="tab:blue", alpha=0.8)
    for value in sorted(table["pretrained"].unique()):
        ax.axhline(value, color="black", linestyle="--", linewidth=1)
    ax.plot([], [], "k--", label="pretrained encoder")
    ax.set_ylabel(f"linear-probe error (%) on {'/'.join(sorted(rows['surrogate'].dropna().unique()))}")
    tasks = "/".join(sorted(rows["task"].dropna().unique()))
    backbones = "/".join(sorted(rows["backbone"].dropna().unique()))
    ax.set_title(f"Source knowledge after fine-tuning on {tasks} ({backbones}): mean ± std over n trials",
                 fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig, table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tuner.plot", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="kind", required=True)
    for kind in ("sensitivity", "curves", "distortion"):
        s = sub.add_parser(kind)
        s.add_argument("experiment", nargs="+" if kind == "distortion" else None)
        s.add_argument("--storage", default="results")
        s.add_argument("--out", default=None, help="PNG path (default <experiment>-<kind>.png)")
        if kind == "sensitivity":
            s.add_argument("--param", required=True, help="dimension, e.g. lambda, inner_steps")
            s.add_argument("--metric", default="test", choices=sorted(tables.METRIC_COLUMNS))
    args = p.parse_args(argv)
    try:
        if args.kind == "sensitivity":
            fig, table = plot_sensitivity(args.storage, args.experiment, args.param, args.metric)
            print(table.to_string(index=False))
        elif args.kind == "distortion":
            fig, table = plot_distortion(args.storage, args.experiment)
            print(table.to_string(index=False))
        else:
            fig = plot_curves(args.storage, args.experiment)
    except (KeyError, ValueError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    name = args.experiment[0] if args.kind == "distortion" else args.experiment
    out = Path(args.out or f"{name}-{args.kind}.png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
