"""Reports draw exactly the store's numbers (checked against independent pandas computations)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tuner import report
from tuner.store import TRIALS, append_rows


def _trial(experiment, trial_id, method, task, status, config, val, test):
    row = {"experiment": experiment, "trial_id": trial_id, "status": status, "iterations": 3,
           "best_val_metric": val, "final_val_metric": val, "test_metric": test, "method": method,
           "task": task, "error": "boom" if status == "error" else None}
    row.update({f"config/{k}": v for k, v in config.items()})
    return row


def test_report_matches_an_independent_pandas_computation(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for exp, method, task in [("a", "finetune", "spherical"), ("b", "emb", "spherical"), ("c", "finetune", "test_toy_task")]:
        for lr in (1e-3, 1e-2):
            for seed in range(2):
                rows.append(_trial(exp, f"{exp}{lr}{seed}", method, task, "completed",
                                   {"stage2_lr": lr, "seed": seed}, rng.uniform(10, 90), rng.uniform(10, 90)))
        rows.append(_trial(exp, f"{exp}-err", method, task, "error", {"stage2_lr": 1e-3, "seed": 5}, np.nan, np.nan))
        rows.append(_trial(exp, f"{exp}-pr", method, task, "pruned", {"stage2_lr": 1e-1, "seed": 5}, 1.0, np.nan))
    for exp in "abc":
        append_rows(str(tmp_path), exp, TRIALS, [r for r in rows if r["experiment"] == exp])
    table = report.comparison(str(tmp_path), ["a", "b", "c"]).set_index(["method", "task"])

    df = pd.DataFrame(rows)
    for (method, task), group in df.groupby(["method", "task"]):
        done = group[group["status"] == "completed"]
        by_lr = done.groupby("config/stage2_lr")
        best_lr = by_lr["best_val_metric"].mean().idxmin()  # min: error metrics
        tests = by_lr.get_group(best_lr)["test_metric"]
        got = table.loc[(method, task)]
        assert got["mean"] == pytest.approx(tests.mean()) and got["std"] == pytest.approx(tests.std())
        assert (got["n"], got["completed"], got["incomplete"], got["error"]) == (2, 4, 1, 1)
    text = report.markdown(table.reset_index())
    assert "| method | spherical | test_toy_task |" in text and "[incomplete 1, error 1 left out]" in text
