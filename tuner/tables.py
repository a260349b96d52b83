"""Tables drawn from the results store for ``tuner.plot`` and ``tuner.report``.

(MoNA's analyses, discrepancy and distortion, are ``trainables.analysis`` with their CLI
``tuner.analyze``.)

Everything here reads the Parquet store (``tuner.store``) and the registries; nothing reads
Ray's files. Only ``completed`` trials enter a mean; the others are counted and shown.
"""
from __future__ import annotations

import pandas as pd

from trainables.metrics import get_metric
from trainables.registry import get_method, get_task
from tuner.store import CONFIG_PREFIX

METRIC_COLUMNS = {"test": "test_metric", "val": "best_val_metric"}


def metric_column(which: str) -> str:
    if which not in METRIC_COLUMNS:
        raise ValueError(f"metric must be one of {sorted(METRIC_COLUMNS)}, got {which!r}")
    return METRIC_COLUMNS[which]


def metric_label(task: str, which: str) -> str:
    """Axis label, e.g. "test 0-1 error (%) (lower is better)"."""
    metric = get_metric(get_task(task).metric)
    direction = "lower" if metric.mode == "min" else "higher"
    return f"{which} {metric.label} ({direction} is better)"


def config_key(method: str, name: str) -> str:
    """The store column of a user-facing dimension name (``lambda`` -> ``config/lam``)."""
    return CONFIG_PREFIX + get_method(method).aliases.get(name, name)


def only(trials: pd.DataFrame, column: str) -> str:
    """The single value of ``column`` across an experiment's trials."""
    values = trials[column].dropna().unique()
    if len(values) != 1:
        raise ValueError(f"expected one {column} in the experiment, found {sorted(map(str, values))}")
    return str(values[0])


def sensitivity_table(trials: pd.DataFrame, key: str, column: str) -> pd.DataFrame:
    """Mean, std and count of ``column`` over completed trials for each value of ``key``.

    Returns:
        Columns ``value, mean, std, n, excluded`` sorted by value; ``std`` is the sample
        standard deviation (ddof=1; NaN for a single seed); ``excluded`` counts the value's
        trials that did not complete (pruned, diverged, error).
    """
    if key not in trials:
        known = [c[len(CONFIG_PREFIX):] for c in trials.columns if c.startswith(CONFIG_PREFIX)]
        raise ValueError(f"no column {key!r} in the store; config keys: {', '.join(known)}")
    done = trials[trials["status"] == "completed"]
    table = done.groupby(key)[column].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    excluded = trials[trials["status"] != "completed"].groupby(key).size()
    table["excluded"] = excluded.reindex(table.index).fillna(0).astype(int)
    return table.reset_index().rename(columns={key: "value"}).sort_values("value", ignore_index=True)


def best_configuration(trials: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The completed trials of the configuration with the best mean validation metric.

    Trials sharing every config value but ``seed`` are repeats of one configuration.
    """
    done = trials[trials["status"] == "completed"].dropna(subset=["best_val_metric"])
    if done.empty:
        return done
    keys = [c for c in done.columns if c.startswith(CONFIG_PREFIX) and c != CONFIG_PREFIX + "seed"]
    groups = done.groupby(keys, dropna=False)
    means = groups["best_val_metric"].mean()
    best = means.idxmin() if mode == "min" else means.idxmax()
    return groups.get_group(best if isinstance(best, tuple) else (best,))
