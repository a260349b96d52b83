"""Tables drawn from the results store for ``tuner.plot``, ``tuner.report`` and ``tuner.compare``.

(MoNA's analyses, discrepancy and distortion, are ``trainables.analysis`` with their CLI
``tuner.analyze``.)

Everything here reads the Parquet store (``tuner.store``) and the registries; nothing reads
Ray's files. Only ``completed`` trials enter a mean; the others are counted and shown.
"""
from __future__ import annotations

import math

import pandas as pd

from search_spaces.dimensions import space_defaults, space_dimensions
from trainables.metrics import get_metric
from trainables.registry import get_method, get_task
from tuner.store import CONFIG_PREFIX

METRIC_COLUMNS = {"test": "test_metric", "val": "best_val_metric"}
CONFIDENCE = 0.95
#: Trial statuses the store records, in the order reports count them.
STATUSES = ("completed", "pruned", "diverged", "error")
#: Config keys that say how or where a trial ran, not what it trained: trials that differ only
#: in these are repeats of one configuration.
NOT_CONFIGURATION = ("seed", "num_threads", "data_root", "stage1_cache")


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
    from scipy import stats  # imported where used (~1.4 s; the sweep's driver reads only metric_label)

    return float(v.mean()), std, float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)), n


def decimals(value: float) -> int:
    """Decimals that show ``value`` to about three significant digits, at least two: 2 for an
    error in %, 3 for 0.152, 5 for 7.28e-3 (its std, CI and differences take the same).

    >>> [decimals(v) for v in (61.87, 0.152, 0.00728, float("nan"))]
    [2, 3, 5, 2]
    """
    if not math.isfinite(value) or value == 0 or abs(value) >= 1:
        return 2
    return max(2, 2 - math.floor(math.log10(abs(value))))


def status_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Trials per status: every one of ``STATUSES`` (0 when absent), then any other status seen."""
    counts = trials["status"].value_counts()
    out = {s: int(counts.get(s, 0)) for s in STATUSES}
    out.update({str(s): int(n) for s, n in counts.items() if s not in STATUSES})
    return out


def configuration_keys(trials: pd.DataFrame) -> list[str]:
    """The ``config/`` columns that tell one configuration from another (all but ``NOT_CONFIGURATION``)."""
    ignored = {CONFIG_PREFIX + k for k in NOT_CONFIGURATION}
    return [c for c in trials.columns if c.startswith(CONFIG_PREFIX) and c not in ignored]


def varying_keys(trials: pd.DataFrame) -> list[str]:
    """Configuration columns (``configuration_keys``) that take more than one value among
    ``trials``: what a search or a grid varied. A column set in some trials only (a conditional
    dimension, or a key that another code version did not write) varies if its set values do."""
    return [c for c in configuration_keys(trials) if trials[c].dropna().astype(str).nunique() > 1]


def dimension_defaults(method: str, task: str, scale: str) -> dict:
    """Every dimension ``--set`` accepts for ``method`` on ``task`` at ``scale``, with its default."""
    return space_dimensions(get_method(method), space_defaults(get_task(task), scale))


def best_configuration(trials: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The completed trials of the configuration with the best mean validation metric.

    Trials sharing every config value but ``seed`` (and how they ran: ``NOT_CONFIGURATION``)
    are repeats of one configuration.
    """
    done = trials[trials["status"] == "completed"].dropna(subset=["best_val_metric"])
    if done.empty:
        return done
    keys = configuration_keys(done)
    if not keys:
        return done
    ids = done.groupby(keys, dropna=False, sort=False).ngroup()  # one id per configuration
    means = done["best_val_metric"].groupby(ids).mean()
    best = means.idxmin() if mode == "min" else means.idxmax()
    return done[ids == best]
