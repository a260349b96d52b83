"""Plots draw exactly the store's numbers (checked on the data, not the pixels)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tuner import plot
from tuner.store import TRIALS, append_rows


def _trial(experiment, trial_id, method, task, status, config, val, test):
    row = {"experiment": experiment, "trial_id": trial_id, "status": status, "iterations": 3,
           "best_val_metric": val, "final_val_metric": val, "test_metric": test, "method": method,
           "task": task, "error": "boom" if status == "error" else None}
    row.update({f"config/{k}": v for k, v in config.items()})
    return row


@pytest.fixture
def sensitivity_store(tmp_path):
    rng = np.random.default_rng(0)
    rows = [_trial("sens", f"t{v}{s}", "emb", "spherical", "completed",
                   {"stage1_epochs": v, "seed": s, "stage2_lr": 1e-3}, rng.uniform(10, 90), rng.uniform(10, 90))
            for v in (1, 2, 4) for s in range(3)]
    rows.append(_trial("sens", "p", "emb", "spherical", "pruned", {"stage1_epochs": 2, "seed": 9, "stage2_lr": 1e-3},
                       5.0, float("nan")))
    rows.append(_trial("sens", "e", "emb", "spherical", "error", {"stage1_epochs": 4, "seed": 8, "stage2_lr": 1e-3},
                       float("nan"), float("nan")))
    append_rows(str(tmp_path), "sens", TRIALS, rows)
    return str(tmp_path), pd.DataFrame(rows)


def test_sensitivity_plot_points_are_the_store_means(sensitivity_store):
    storage, rows = sensitivity_store
    fig, table = plot.plot_sensitivity(storage, "sens", "stage1_epochs", "test")
    done = rows[rows["status"] == "completed"]
    expected = done.groupby("config/stage1_epochs")["test_metric"].agg(["mean", "std"])
    line = fig.axes[0].containers[0].lines[0]  # the errorbar's data line
    np.testing.assert_allclose(np.asarray(line.get_xdata(), float), expected.index.values)
    np.testing.assert_allclose(np.asarray(line.get_ydata(), float), expected["mean"].values)
    np.testing.assert_allclose(table["std"], expected["std"].values)
    assert table["n"].tolist() == [3, 3, 3] and table["excluded"].tolist() == [0, 1, 1]
    assert "lower is better" in fig.axes[0].get_ylabel()


def test_sensitivity_best_is_chosen_on_validation_not_test(tmp_path):
    """Value 1 has the best test mean, value 2 the best validation mean: the star is at 2."""
    rows = [_trial("sel", f"t{v}{s}", "emb", "spherical", "completed", {"stage1_epochs": v, "seed": s},
                   val, test)
            for v, val, test in ((1, 40.0, 10.0), (2, 20.0, 30.0), (4, 30.0, 50.0)) for s in range(2)]
    append_rows(str(tmp_path), "sel", TRIALS, rows)
    fig, table = plot.plot_sensitivity(str(tmp_path), "sel", "stage1_epochs", "test")
    star = fig.axes[0].lines[-1]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (2, 30.0)  # on the test curve, at val's best
    assert table["val_mean"].tolist() == [40.0, 20.0, 30.0]
    assert "best on validation" in star.get_label()
    assert any("validation" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_plot_cli_writes_a_png(sensitivity_store, tmp_path):
    storage, _ = sensitivity_store
    out = tmp_path / "s.png"
    assert plot.main(["sensitivity", "sens", "--storage", storage, "--param", "stage1_epochs", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.main(["sensitivity", "sens", "--storage", storage, "--param", "nope", "--out", str(out)]) == 2
