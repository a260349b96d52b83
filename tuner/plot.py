"""``python -m tuner.plot``: figures drawn from the results store only.

    python -m tuner.plot sensitivity <experiment> --param lambda     # MoNA Fig. 6 style: mean, 95% CI
    python -m tuner.plot curves <experiment> --color-by stage2_lr    # learning curves, one colour scale
    python -m tuner.plot slice <experiment>                          # a search (TPE): objective per dimension
    python -m tuner.plot distortion <experiment...>                  # MoNA Fig. 3 style

``--out`` picks the file and its format by suffix (.png, the default, .pdf or .svg). A figure
that would mislead (a search drawn as a grid, one point) is refused with one line (exit 2).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colors, ticker  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from search_spaces.dimensions import space_defaults, space_distributions  # noqa: E402
from trainables.metrics import get_metric  # noqa: E402
from trainables.registry import get_method, get_task  # noqa: E402
from tuner import store, tables  # noqa: E402
from tuner.store import CONFIG_PREFIX  # noqa: E402

FORMATS = (".png", ".pdf", ".svg")
DROPPED = ("pruned", "diverged", "error")  # every status but "completed"
SEED_KEY = CONFIG_PREFIX + "seed"
LOG_RATIO = 20.0  # heuristic for keys outside the space: positive values spanning >= 20x
MAX_TICKS = 8  # at most this many values get a tick each
NO_DISTORTION = ("no distortion rows for {experiments} in {storage}: run "
                 "python -m tuner.analyze distortion <experiment> first")
BAD_SUFFIX = "--out {out}: the suffix picks the format; use one of {formats}"


# --------------------------------------------------------------------------------------------
# What the store holds: trials, dimensions, their scales


def read_trials(storage: str, experiment: str) -> pd.DataFrame:
    """The experiment's trials; an error naming the store when there are none."""
    store.require_experiments(storage, [experiment])
    trials = store.read_trials(storage, experiment)
    if trials.empty:
        raise ValueError(f"experiment {experiment!r} has no ended trial yet in {storage}")
    return trials


def name_of(key: str) -> str:
    """``config/stage2_lr`` -> ``stage2_lr``."""
    return key[len(CONFIG_PREFIX):]


def varying_keys(trials: pd.DataFrame) -> list[str]:
    """``tables.varying_keys`` (never the seed), most distinct values first."""
    return sorted(tables.varying_keys(trials), key=lambda k: -trials[k].dropna().astype(str).nunique())


def swept_key(trials: pd.DataFrame) -> str | None:
    """The dimension a sweep varied: the config key with the most distinct values, the seed
    only when nothing else varies; None when no key varies (one trial)."""
    keys = varying_keys(trials)
    if keys:
        return keys[0]
    return SEED_KEY if SEED_KEY in trials and trials[SEED_KEY].dropna().nunique() > 1 else None


def status_note(trials: pd.DataFrame) -> str:
    """"3 completed, 7 pruned" (only the statuses present)."""
    counts = trials["status"].value_counts()
    return ", ".join(f"{int(counts[s])} {s}" for s in ("completed", *DROPPED) if s in counts)


def dropped_note(trials: pd.DataFrame) -> str:
    """"dropped 7 pruned, 1 error" or "none dropped": the trials a mean leaves out, by cause."""
    counts = trials["status"].value_counts()
    parts = [f"{int(counts[s])} {s}" for s in DROPPED if s in counts]
    return "dropped " + ", ".join(parts) if parts else "none dropped"


def log_keys(trials: pd.DataFrame) -> set[str]:
    """The config keys to draw on a log axis.

    A key the method's space suggests is log exactly when its distribution is (``log=True``),
    at the experiment's scale ("paper" when the store has none). Any other key (a constant
    set on a grid, e.g. ``--sensitivity batch_size=...``) falls back to a heuristic: numeric,
    every value > 0 and max / min >= ``LOG_RATIO``.
    """
    scale = tables.only(trials, "scale") if "scale" in trials and trials["scale"].notna().any() else "paper"
    task_defaults = space_defaults(get_task(tables.only(trials, "task")), scale)
    space = space_distributions(get_method(tables.only(trials, "method")), task_defaults)
    logs = set()
    for key in (c for c in trials.columns if c.startswith(CONFIG_PREFIX)):
        if name_of(key) in space:
            if getattr(space[name_of(key)], "log", False):
                logs.add(key)
        elif _spans_decades(trials[key]):
            logs.add(key)
    return logs


def _spans_decades(values: pd.Series) -> bool:
    v = pd.to_numeric(values.dropna(), errors="coerce") if values.dtype != bool else pd.Series(dtype=float)
    return bool(len(v) and v.notna().all() and (v > 0).all() and v.max() / v.min() >= LOG_RATIO)


def is_numeric(values: pd.Series) -> bool:
    """Numbers drawn on a numeric axis (bools and strings are categories)."""
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def grid_like(values) -> bool:
    """Few values, each round to 3 significant digits: a grid (``--sensitivity`` values, seeds),
    worth a tick each. Sampled values (TPE's 0.000750195) are not."""
    numbers = [float(v) for v in set(values)]
    return len(numbers) <= MAX_TICKS and all(float(f"{v:.3g}") == v for v in numbers)


def value_axis(ax, values, log: bool, axis: str = "x") -> None:
    """Log or linear scale for a dimension, with ``value_ticks``."""
    getattr(ax, f"set_{axis}scale")("log" if log else "linear")
    value_ticks(getattr(ax, f"{axis}axis"), values, log)


def value_ticks(target, values, log: bool) -> None:
    """Ticks on one axis (or colour bar): at each value of a grid, else about ``MAX_TICKS``
    round ones (1-3-10 or 1-2-5 on a log axis spanning few decades, so that some show);
    labels in ``%g``, never the ``2x10^-4`` minor labels."""
    numbers = [float(v) for v in values]
    if grid_like(numbers):
        target.set_major_locator(ticker.FixedLocator(sorted(set(numbers))))
    elif log:
        decades = math.log10(max(numbers) / min(numbers))
        subs = (1.0, 2.0, 5.0) if decades < 1.5 else (1.0, 3.0) if decades < 3 else (1.0,)
        target.set_major_locator(ticker.LogLocator(subs=subs, numticks=MAX_TICKS))
    else:
        target.set_major_locator(ticker.MaxNLocator(MAX_TICKS, steps=[1, 2, 2.5, 5, 10]))
    target.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(ticker.NullFormatter())


def _overlapping(fig, ax) -> bool:
    fig.canvas.draw()
    left, right = ax.get_window_extent().intervalx
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
    boxes = sorted((b for b in boxes if left - 1 <= (b.x0 + b.x1) / 2 <= right + 1), key=lambda b: b.x0)
    return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:]))


def finish(fig, axes, rect=(0, 0, 1, 1)) -> None:
    """Lay out (inside ``rect``), then rotate overlapping x tick labels; if they still overlap
    (grid values bunched on a linear axis), fall back to evenly spaced round ticks."""
    fig.tight_layout(rect=rect)
    for ax in axes:
        if _overlapping(fig, ax):
            plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
            fig.tight_layout(rect=rect)
        if _overlapping(fig, ax):
            ax.xaxis.set_major_locator(ticker.LogLocator(numticks=MAX_TICKS) if ax.get_xscale() == "log"
                                       else ticker.MaxNLocator(MAX_TICKS // 2, steps=[1, 2, 2.5, 5, 10]))
            plt.setp(ax.get_xticklabels(), rotation=0, ha="center")
            fig.tight_layout(rect=rect)


# --------------------------------------------------------------------------------------------
# sensitivity: a grid over one dimension, repeated over seeds


def ci_table(trials: pd.DataFrame, key: str, column: str) -> pd.DataFrame:
    """Per value of ``key``: mean, sample std, 95% CI half-width (Student t, n-1 dof) and n
    of ``column`` over completed trials (n = 0, NaN mean where none completed), and the
    value's dropped trials by status."""

    rows = []
    for value, group in trials.groupby(key, sort=True):
        done = group.loc[group["status"] == "completed", column]
        mean, std, ci, n = tables.mean_ci(done)
        row = {"value": value, "mean": mean, "std": std, "ci95": ci, "n": n}
        row.update({s: int((group["status"] == s).sum()) for s in DROPPED})
        rows.append(row)
    table = pd.DataFrame(rows)
    table["excluded"] = table[list(DROPPED)].sum(axis=1)
    return table


def check_grid(trials: pd.DataFrame, key: str, experiment: str) -> None:
    """Refuse (ValueError, one line) a sensitivity plot that would mislead: a search, where
    other dimensions vary too, or fewer than two values with a completed trial."""
    name, values = name_of(key), trials[key].nunique()
    others = [name_of(k) for k in varying_keys(trials) if k != key]
    found = f"{values} distinct values of {name}, {status_note(trials)}"
    if others:
        raise ValueError(f"experiment {experiment!r} is a search, not a grid over {name} ({found}; "
                         f"{', '.join(others)} varies too): use `python -m tuner.plot slice {experiment}`")
    completed = trials.loc[trials["status"] == "completed", key].nunique()
    if completed < 2:
        hint = (f"`python -m tuner.plot slice {experiment}`" if trials[key].value_counts().max() == 1
                else f"`python -m tuner.plot curves {experiment}`")
        raise ValueError(f"experiment {experiment!r} has {completed} value(s) of {name} with a completed "
                         f"trial ({found}): nothing to draw a curve through; see {hint}")


def plot_sensitivity(storage: str, experiment: str, param: str | None = None, which: str = "test"):
    """Mean ``which`` metric against ``param`` with a 95% CI band over seeds; the best marked.

    The best value is chosen on *validation* (mean best-validation metric over seeds), as a
    model selection must be; the star sits on the plotted curve at that value. When ``which``
    is "test", the validation mean is drawn beside it (dashed, grey) so the choice shows.
    ``param`` defaults to the swept dimension. Log-distributed dimensions get a log axis.

    Returns:
        (figure, table): the table is exactly the data plotted (``ci_table`` of ``which``,
        plus ``val_mean``, ``val_ci95`` and ``best``); ``table.attrs["summary"]`` says what
        was drawn and dropped.

    Raises:
        ValueError: no trials, an unknown ``param``, or a figure ``check_grid`` refuses.
    """
    trials = read_trials(storage, experiment)
    task, method = tables.only(trials, "task"), tables.only(trials, "method")
    key = tables.config_key(method, param) if param else swept_key(trials)
    if key is None or key == SEED_KEY:
        raise ValueError(f"experiment {experiment!r} varies no dimension but the seed ({status_note(trials)}): "
                         f"nothing to plot against; see `python -m tuner.plot curves {experiment}`")
    _require_key(trials, key)
    check_grid(trials, key, experiment)
    table = ci_table(trials, key, tables.metric_column(which))
    val = ci_table(trials, key, tables.metric_column("val"))
    table["val_mean"], table["val_ci95"] = val["mean"], val["ci95"]
    mode = get_metric(get_task(task).metric).mode
    table["best"] = table.index == (table["val_mean"].idxmin() if mode == "min" else table["val_mean"].idxmax())
    label = param or name_of(key)
    fig = _draw_sensitivity(table, label, key in log_keys(trials) and is_numeric(table["value"]), which)
    ax = fig.axes[0]
    ax.set_ylabel(tables.metric_label(task, which))
    n = table.loc[table["n"] > 0, "n"]
    seeds = f"n={n.min()}" if n.min() == n.max() else f"n={n.min()}-{n.max()}"
    ax.set_title(f"{method} on {task}: mean and 95% CI over seeds ({seeds} per value)\n"
                 f"{int(table['n'].sum())} completed trials; {dropped_note(trials)}", fontsize=8)
    finish(fig, [ax])
    table.attrs["summary"] = (f"{int((table['n'] > 0).sum())} values of {label} with completed trials "
                              f"({int(table['n'].sum())} trials, {seeds}); {dropped_note(trials)}")
    return fig, table


def _require_key(trials: pd.DataFrame, key: str) -> None:
    if key not in trials:
        known = [name_of(c) for c in trials.columns if c.startswith(CONFIG_PREFIX)]
        raise ValueError(f"no column {key!r} in the store; config keys: {', '.join(known)}")


def _draw_sensitivity(table: pd.DataFrame, label: str, log: bool, which: str):
    """Numeric values: a line with a CI band; categories: points with CI bars."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    numeric = is_numeric(table["value"])
    x = table["value"] if numeric else np.arange(len(table))
    ax.plot(x, table["mean"], marker="o", color="tab:blue", label=f"{which} mean",
            linestyle="-" if numeric else "none")
    if numeric:
        ax.fill_between(x, table["mean"] - table["ci95"], table["mean"] + table["ci95"], color="tab:blue",
                        alpha=0.2, linewidth=0, label="95% CI (Student t)")
        value_axis(ax, table["value"], log)
    else:
        ax.errorbar(x, table["mean"], yerr=table["ci95"], fmt="none", ecolor="tab:blue", capsize=4,
                    label="95% CI (Student t)")
        ax.set_xticks(x, [str(v) for v in table["value"]])
        ax.set_xlim(-0.5, len(table) - 0.5)
    if which != "val":
        ax.plot(x, table["val_mean"], marker=".", linestyle="--" if numeric else "none", color="grey",
                alpha=0.7, label="validation mean (selects the best)")
    best = table[table["best"]].iloc[0]
    best_x = best["value"] if numeric else int(table.index[table["best"]][0])
    ax.plot([best_x], [best["mean"]], marker="*", markersize=14, color="tab:red", linestyle="none",
            label=f"best on validation: {label}={_fmt(best['value'])}")
    for xi, mean, n in zip(x, table["mean"], table["n"]):
        if n < table["n"].max():  # say where the band rests on fewer seeds
            ax.annotate(f"n={n}", (xi, mean), textcoords="offset points", xytext=(0, -14), ha="center", fontsize=7)
    ax.set_xlabel(label + (" (log scale)" if log else ""))
    ax.legend(fontsize=7)
    return fig


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else str(value)


# --------------------------------------------------------------------------------------------
# curves: validation metric per epoch, coloured by a dimension


def curves_table(trials: pd.DataFrame, history: pd.DataFrame, key: str) -> pd.DataFrame:
    """The plotted points: ``trial_id, iteration, stage, val_metric`` per reported epoch with
    the trial's ``status`` and its ``color_value`` (the ``key`` config value)."""
    ended = trials.set_index("trial_id")
    table = history[["trial_id", "iteration", "stage", "val_metric"]].copy()
    table["status"] = table["trial_id"].map(ended["status"]).fillna("running")
    table["color_value"] = table["trial_id"].map(ended[key])
    return table.reset_index(drop=True)


def plot_curves(storage: str, experiment: str, color_by: str | None = None):
    """Validation metric per epoch (x: epochs across both stages) for every trial, coloured
    by one dimension (``color_by``, default the swept one): a colour bar for numbers (log
    norm for log-distributed dimensions), a legend for categories. Pruned trials dashed;
    stage-1 epochs hollow, with a dotted line where stage 1 ends, only when there is a stage 1.

    Returns:
        (figure, table): the table is exactly the data plotted (``curves_table``);
        ``table.attrs["summary"]`` says what was drawn.
    """
    trials = read_trials(storage, experiment)
    history = store.read_history(storage, experiment)
    if history.empty:
        raise ValueError(f"experiment {experiment!r} has no per-epoch results in {storage}")
    task, method = tables.only(trials, "task"), tables.only(trials, "method")
    key = tables.config_key(method, color_by) if color_by else swept_key(trials) or SEED_KEY
    _require_key(trials, key)
    table = curves_table(trials, history, key)
    label = color_by or name_of(key)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    colour_of = _colour_scale(fig, ax, table["color_value"], label, key in log_keys(trials), key != SEED_KEY)
    for trial_id, rows in table.groupby("trial_id", sort=False):
        _draw_trial(ax, rows, colour_of(rows["color_value"].iloc[0]))
    ends = sorted(table[table["stage"] == 1].groupby("trial_id")["iteration"].max().unique())
    for end in ends:
        ax.axvline(end + 0.5, color="grey", linestyle=":", linewidth=1)
    _curve_legend(ax, ends, set(table["status"]))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch (stage 1, then stage 2)" if ends else "epoch")
    ax.set_ylabel(tables.metric_label(task, "val"))
    ax.set_title(f"{experiment}: {method} on {task}, {table['trial_id'].nunique()} trials "
                 f"({status_note(trials)})", fontsize=8)
    fig.tight_layout()
    table.attrs["summary"] = (f"{table['trial_id'].nunique()} trials, {len(table)} epochs, coloured by {label} "
                              f"({status_note(trials)})")
    return fig, table


def _colour_scale(fig, ax, values: pd.Series, label: str, log: bool, ordered: bool = True):
    """A value -> colour function, with a colour bar (ordered numbers, several values) or
    legend entries (categories, seeds, or a single value). Trials without a value are grey."""
    distinct = sorted(values.dropna().unique(), key=lambda v: (str(type(v)), v))
    if ordered and is_numeric(values) and len(distinct) > 1:
        norm = colors.LogNorm(min(distinct), max(distinct)) if log else colors.Normalize(min(distinct), max(distinct))
        cmap = plt.get_cmap("viridis")
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02)
        bar.set_label(label + (" (log scale)" if log else ""))
        value_ticks(bar.ax.yaxis, distinct, log)
        return lambda v: "lightgrey" if pd.isna(v) else cmap(norm(v))
    palette = dict(zip(distinct, plt.get_cmap("tab10").colors))
    for value, colour in palette.items():
        ax.plot([], [], color=colour, label=f"{label}={_fmt(value)}")
    return lambda v: palette.get(v, "lightgrey")


def _draw_trial(ax, rows: pd.DataFrame, colour) -> None:
    """One trial: a line through all its epochs (dashed when pruned), stage-1 points hollow,
    a cross on the last epoch of a diverged or failed trial."""
    status = rows["status"].iloc[0]
    ax.plot(rows["iteration"], rows["val_metric"], "--" if status == "pruned" else "-", color=colour,
            alpha=0.85, linewidth=1.2)
    for stage, part in rows.groupby("stage"):
        ax.plot(part["iteration"], part["val_metric"], "o", color=colour, markersize=3.5,
                markerfacecolor="white" if stage == 1 else colour, linestyle="none")
    if status in ("diverged", "error"):
        last = rows.dropna(subset=["val_metric"]).tail(1)
        ax.plot(last["iteration"], last["val_metric"], "x", color="black", markersize=7, zorder=5)


def _curve_legend(ax, stage1_ends: list, statuses: set) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if stage1_ends:
        handles += [Line2D([], [], color="grey", marker="o", markerfacecolor="white", linestyle="none",
                           label="stage 1 epoch"),
                    Line2D([], [], color="grey", linestyle=":", label="end of stage 1")]
    if "pruned" in statuses:
        handles.append(Line2D([], [], color="grey", linestyle="--", label="pruned (ASHA)"))
    if statuses & {"diverged", "error"}:
        handles.append(Line2D([], [], color="black", marker="x", linestyle="none", label="diverged / error"))
    if handles:
        ax.legend(handles=handles, fontsize=7)


# --------------------------------------------------------------------------------------------
# slice: a search (TPE), the objective against each searched dimension


def slice_table(trials: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The plotted points, long form: ``dimension, trial_id, status, value, objective`` (the
    best validation metric) for completed and pruned trials with a metric."""
    shown = trials[trials["status"].isin(["completed", "pruned"]) & trials["best_val_metric"].notna()]
    frames = [pd.DataFrame({"dimension": name_of(k), "trial_id": shown["trial_id"], "status": shown["status"],
                            "value": shown[k], "objective": shown["best_val_metric"]}) for k in keys]
    return pd.concat(frames, ignore_index=True)


def plot_slice(storage: str, experiment: str):
    """Objective (best validation metric) against each searched dimension, one panel each
    (Optuna's slice plot, from the store): completed trials filled, pruned ones hollow
    (their value is from the rung where ASHA stopped them), the best completed starred.
    Diverged and errored trials are counted in the title; log dimensions get a log axis.

    Returns:
        (figure, table): the table is exactly the data plotted (``slice_table``).
    """
    trials = read_trials(storage, experiment)
    task, method = tables.only(trials, "task"), tables.only(trials, "method")
    keys = varying_keys(trials)
    if not keys:
        raise ValueError(f"experiment {experiment!r} searched no dimension ({status_note(trials)}; only the seed "
                         f"varies, if anything): see `python -m tuner.plot curves {experiment}`")
    table = slice_table(trials, keys)
    if table.empty:
        raise ValueError(f"experiment {experiment!r} has no completed or pruned trial with a validation metric "
                         f"({status_note(trials)})")
    mode = get_metric(get_task(task).metric).mode
    logs = log_keys(trials)
    cols = min(len(keys), 3)
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 0.6, 3.0 * rows + 0.6), sharey=True, squeeze=False)
    for ax, key in zip(axes.flat, keys):
        _draw_slice(ax, table[table["dimension"] == name_of(key)], name_of(key), key in logs, mode)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"best {tables.metric_label(task, 'val')}", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=7, frameon=False)
    fig.suptitle(f"{experiment}: {method} on {task}, {len(trials)} trials ({status_note(trials)})"
                 f"{_unshown(trials)}", fontsize=8)
    finish(fig, axes.flat[:len(keys)], rect=(0, 0.3 / fig.get_figheight(), 1, 1))  # legend below
    table.attrs["summary"] = (f"{table['trial_id'].nunique()} trials x {len(keys)} dimensions "
                              f"({status_note(trials)}){_unshown(trials)}")
    return fig, table


def _unshown(trials: pd.DataFrame) -> str:
    hidden = trials[~trials["status"].isin(["completed", "pruned"]) | trials["best_val_metric"].isna()]
    return f"; not shown (no validation metric or diverged): {status_note(hidden)}" if len(hidden) else ""


def _draw_slice(ax, points: pd.DataFrame, name: str, log: bool, mode: str) -> None:
    numeric = is_numeric(points["value"])
    x = points["value"] if numeric else points["value"].astype(str)
    done = points["status"] == "completed"
    ax.scatter(x[done], points.loc[done, "objective"], color="tab:blue", s=28, label="completed", zorder=3)
    ax.scatter(x[~done], points.loc[~done, "objective"], facecolors="none", edgecolors="grey", s=28,
               label="pruned (value when stopped)", zorder=2)
    if done.any():
        best = points.loc[done, "objective"].idxmin() if mode == "min" else points.loc[done, "objective"].idxmax()
        ax.plot([x[best]], [points.loc[best, "objective"]], marker="*", markersize=15, color="tab:red",
                linestyle="none", label="best completed", zorder=2.5)  # under its dot
    if numeric:
        value_axis(ax, points["value"], log)
    ax.set_xlabel(name + (" (log scale)" if log else ""), fontsize=8)
    ax.tick_params(labelsize=7)


# --------------------------------------------------------------------------------------------
# distortion: MoNA Fig. 3


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
    ax.set_title(f"Source knowledge after fine-tuning on {tasks} ({backbones})\nmean ± std over n trials",
                 fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    table.attrs["summary"] = f"{len(table)} methods, {int(table['n'].sum())} trials"
    return fig, table


# --------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuner.plot", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="kind", required=True)
    for kind in ("sensitivity", "curves", "slice", "distortion"):
        s = sub.add_parser(kind)
        s.add_argument("experiment", nargs="+" if kind == "distortion" else None)
        s.add_argument("--storage", default="results")
        s.add_argument("--out", default=None,
                       help="file to write; its suffix picks the format: .png (default <experiment>-<kind>.png), "
                            ".pdf or .svg")
        if kind == "sensitivity":
            s.add_argument("--param", default=None, help="dimension, e.g. lambda, inner_steps (default: the swept one)")
            s.add_argument("--metric", default="test", choices=sorted(tables.METRIC_COLUMNS))
        if kind == "curves":
            s.add_argument("--color-by", default=None, help="dimension to colour trials by (default: the swept one)")
    return p.parse_args(argv)


def draw(args: argparse.Namespace):
    """(figure, table) of the subcommand."""
    if args.kind == "sensitivity":
        return plot_sensitivity(args.storage, args.experiment, args.param, args.metric)
    if args.kind == "curves":
        return plot_curves(args.storage, args.experiment, args.color_by)
    if args.kind == "slice":
        return plot_slice(args.storage, args.experiment)
    return plot_distortion(args.storage, args.experiment)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = args.experiment[0] if args.kind == "distortion" else args.experiment
    out = Path(args.out or f"{name}-{args.kind}.png")
    if out.suffix.lower() not in FORMATS:
        print(f"error: {BAD_SUFFIX.format(out=out, formats=', '.join(FORMATS))}", file=sys.stderr)
        return 2
    try:
        fig, table = draw(args)
    except (KeyError, ValueError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    if args.kind in ("sensitivity", "distortion"):
        print(table.to_string(index=False))
    fig.savefig(out, dpi=150)
    plt.close(fig)
    print(f"wrote {out}: {args.kind}, {table.attrs['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
