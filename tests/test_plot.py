"""Plots draw exactly the store's numbers (checked on the data and the files, not the pixels)."""
from __future__ import annotations

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuner import plot
from tuner.store import HISTORY, TRIALS, append_rows

LOG_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _trial(experiment, trial_id, method, task, status, config, val, test):
    row = {"experiment": experiment, "trial_id": trial_id, "status": status, "iterations": 3,
           "best_val_metric": val, "final_val_metric": val, "test_metric": test, "method": method,
           "task": task, "error": "boom" if status == "error" else None}
    row.update({f"config/{k}": v for k, v in config.items()})
    return row


def _history(experiment, trial_id, vals, stage1=0):
    """One row per epoch; the first ``stage1`` epochs are stage 1."""
    return [{"experiment": experiment, "trial_id": trial_id, "iteration": i, "stage": 1 if i <= stage1 else 2,
             "stage_epoch": i if i <= stage1 else i - stage1, "stage2_epoch": max(0, i - stage1), "val_metric": v}
            for i, v in enumerate(vals, start=1)]


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


@pytest.fixture
def grid_store(tmp_path):
    """stage2_lr on a log grid x 3 seeds, two stages (2 stage-1 epochs); one trial diverged."""
    rng = np.random.default_rng(1)
    trials, history = [], []
    for i, lr in enumerate(LOG_GRID):
        for s in range(3):
            status = "diverged" if (i, s) == (4, 2) else "completed"
            vals = list(rng.uniform(30, 90, size=5))
            trials.append(_trial("grid", f"g{i}{s}", "emb", "spherical", status,
                                 {"stage2_lr": lr, "seed": s, "stage1_epochs": 2}, min(vals), rng.uniform(30, 90)))
            history += _history("grid", f"g{i}{s}", vals, stage1=2)
    append_rows(str(tmp_path), "grid", TRIALS, trials)
    append_rows(str(tmp_path), "grid", HISTORY, history)
    return str(tmp_path), pd.DataFrame(trials), pd.DataFrame(history)


@pytest.fixture
def search_store(tmp_path):
    """A TPE + ASHA search: 8 sampled (lr, wd) pairs, 1 completed, 7 pruned, stage 2 only."""
    rng = np.random.default_rng(2)
    trials, history = [], []
    for i in range(8):
        status = "completed" if i == 0 else "pruned"
        vals = list(rng.uniform(70, 95, size=6 if i == 0 else 1 + i % 2))
        config = {"stage2_lr": float(10 ** rng.uniform(-4, -2)),
                  "stage2_weight_decay": float(10 ** rng.uniform(-5, -1)), "seed": 0}
        trials.append(_trial("tpe", f"s{i}", "finetune", "spherical", status, config, min(vals),
                             75.0 if i == 0 else float("nan")))
        history += _history("tpe", f"s{i}", vals)
    append_rows(str(tmp_path), "tpe", TRIALS, trials)
    append_rows(str(tmp_path), "tpe", HISTORY, history)
    return str(tmp_path), pd.DataFrame(trials), pd.DataFrame(history)


def _ci(values):
    """Independent 95% Student-t half-width."""
    v = pd.Series(values).dropna()
    return stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))


# --------------------------------------------------------------------------------------------
# sensitivity


def test_sensitivity_plot_points_are_the_store_means_with_a_95_ci(sensitivity_store):
    storage, rows = sensitivity_store
    fig, table = plot.plot_sensitivity(storage, "sens", "stage1_epochs", "test")
    done = rows[rows["status"] == "completed"]
    expected = done.groupby("config/stage1_epochs")["test_metric"].agg(["mean", "std"])
    ci = done.groupby("config/stage1_epochs")["test_metric"].agg(_ci)
    ax = fig.axes[0]
    line = ax.lines[0]
    np.testing.assert_allclose(np.asarray(line.get_xdata(), float), expected.index.values)
    np.testing.assert_allclose(np.asarray(line.get_ydata(), float), expected["mean"].values)
    np.testing.assert_allclose(table["std"], expected["std"].values)
    np.testing.assert_allclose(table["ci95"], ci.values)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]  # fill_between: upper and lower edges
    np.testing.assert_allclose(band.max(), (expected["mean"] + ci).max())
    np.testing.assert_allclose(band.min(), (expected["mean"] - ci).min())
    assert table["n"].tolist() == [3, 3, 3] and table["excluded"].tolist() == [0, 1, 1]
    assert table["pruned"].tolist() == [0, 1, 0] and table["error"].tolist() == [0, 0, 1]
    assert "lower is better" in ax.get_ylabel()
    assert "dropped 1 pruned, 1 error" in ax.get_title() and "95% CI" in ax.get_title()
    assert ax.get_xscale() == "linear"  # stage1_epochs is an IntDistribution, not log


def test_sensitivity_best_is_chosen_on_validation_not_test(tmp_path):
    """Value 1 has the best test mean, value 2 the best validation mean: the star is at 2."""
    rows = [_trial("sel", f"t{v}{s}", "emb", "spherical", "completed", {"stage1_epochs": v, "seed": s},
                   val, test)
            for v, val, test in ((1, 40.0, 10.0), (2, 20.0, 30.0), (4, 30.0, 50.0)) for s in range(2)]
    append_rows(str(tmp_path), "sel", TRIALS, rows)
    fig, table = plot.plot_sensitivity(str(tmp_path), "sel", "stage1_epochs", "test")
    star = fig.axes[0].lines[-1]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (2, 30.0)  # on the test curve, at val's best
    assert table["val_mean"].tolist() == [40.0, 20.0, 30.0] and table["best"].tolist() == [False, True, False]
    assert "best on validation" in star.get_label()
    assert any("validation" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_sensitivity_log_grid_gets_a_log_axis_and_a_tick_per_value(grid_store):
    storage, trials, _ = grid_store
    fig, table = plot.plot_sensitivity(storage, "grid", "stage2_lr", "val")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    np.testing.assert_allclose(ax.get_xticks(), LOG_GRID)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.0001", "0.0003", "0.001", "0.003", "0.01"]
    done = trials[trials["status"] == "completed"].groupby("config/stage2_lr")["best_val_metric"]
    np.testing.assert_allclose(table["mean"], done.mean().values)
    assert table["n"].tolist() == [3, 3, 3, 3, 2] and table["diverged"].tolist() == [0, 0, 0, 0, 1]
    assert "dropped 1 diverged" in ax.get_title()
    assert "n=2" in [t.get_text() for t in ax.texts]  # the value resting on fewer seeds is marked


def test_sensitivity_param_defaults_to_the_swept_dimension(grid_store):
    storage, _, _ = grid_store
    _, table = plot.plot_sensitivity(storage, "grid")
    assert table["value"].tolist() == list(LOG_GRID)


def test_sensitivity_refuses_a_search_with_one_line(search_store, capsys):
    storage, _, _ = search_store
    assert plot.main(["sensitivity", "tpe", "--storage", storage, "--param", "stage2_lr", "--out", "x.png"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "search" in err and "8 distinct values" in err and "1 completed, 7 pruned" in err
    assert "tuner.plot slice tpe" in err


def test_sensitivity_refuses_a_single_completed_value(tmp_path, capsys):
    """One dimension searched, only one of its values completed: one point is no curve."""
    rows = [_trial("one", f"t{i}", "emb", "spherical", "completed" if i == 0 else "pruned",
                   {"stage2_lr": lr, "seed": 0}, 50.0, 50.0) for i, lr in enumerate((1e-3, 2e-3, 5e-3))]
    append_rows(str(tmp_path), "one", TRIALS, rows)
    assert plot.main(["sensitivity", "one", "--storage", str(tmp_path), "--param", "stage2_lr",
                      "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1 value(s) of stage2_lr" in err and "2 pruned" in err
    assert not (tmp_path / "x.png").exists()


def test_sensitivity_refuses_an_experiment_that_varies_only_the_seed(tmp_path, capsys):
    rows = [_trial("seeds", f"t{s}", "emb", "spherical", "completed", {"stage2_lr": 1e-3, "seed": s}, 50.0, 50.0)
            for s in range(3)]
    append_rows(str(tmp_path), "seeds", TRIALS, rows)
    assert plot.main(["sensitivity", "seeds", "--storage", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "varies no dimension but the seed" in capsys.readouterr().err


def test_sensitivity_of_a_categorical_dimension_is_points_with_ci_bars(tmp_path):
    rows = [_trial("cat", f"t{v}{s}", "emb", "spherical", "completed", {"embedder_init": v, "seed": s},
                   10.0 + s, 20.0 + s + (v == "random")) for v in ("source", "random") for s in range(3)]
    append_rows(str(tmp_path), "cat", TRIALS, rows)
    fig, table = plot.plot_sensitivity(str(tmp_path), "cat", "embedder_init", "test")
    assert table["value"].tolist() == ["random", "source"] and table["mean"].tolist() == [22.0, 21.0]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["random", "source"]


def test_bunched_grid_values_get_readable_ticks(tmp_path):
    """λ on a log-spaced grid: λ's space is uniform, so the axis is linear and the labels
    0.001 ... 0.05 would pile up; they fall back to round ticks that do not overlap."""
    rows = [_trial("bunch", f"t{v}{s}", "mona", "spherical", "completed", {"lam": v, "seed": s}, 40.0 + s, 41.0 + s)
            for v in (0.001, 0.002, 0.005, 0.01, 0.05, 0.5, 1.0) for s in range(2)]
    append_rows(str(tmp_path), "bunch", TRIALS, rows)
    fig, table = plot.plot_sensitivity(str(tmp_path), "bunch", "lambda")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and len(table) == 7 and not plot._overlapping(fig, ax)
    assert ax.get_xlabel() == "lambda"


# --------------------------------------------------------------------------------------------
# log axes


def test_log_keys_come_from_the_space_then_the_heuristic(tmp_path):
    rows = [_trial("k", f"t{i}", "emb", "spherical", "completed",
                   {"stage2_lr": lr, "stage1_epochs": e, "batch_size": b, "max_train_samples": m, "seed": i},
                   1.0, 1.0)
            for i, (lr, e, b, m) in enumerate(((1e-4, 1, 16, 1000), (1e-3, 5, 512, 1500), (1e-2, 30, 64, 2000)))]
    logs = plot.log_keys(pd.DataFrame(rows))
    # space: stage2_lr log, stage1_epochs not (even though 1..30 spans 30x);
    # outside the space: batch_size spans 32x (log), max_train_samples 2x (linear); seed 0..2 (has 0)
    assert logs == {"config/stage2_lr", "config/batch_size"}


# --------------------------------------------------------------------------------------------
# curves


def test_curves_are_coloured_by_the_swept_dimension_with_a_log_colour_bar(grid_store):
    storage, trials, history = grid_store
    fig, table = plot.plot_curves(storage, "grid")
    ax, bar = fig.axes
    assert bar.get_label() == "<colorbar>" and "stage2_lr" in bar.get_ylabel()
    assert bar.get_yscale() == "log" and np.allclose(bar.get_ylim(), (1e-4, 1e-2))  # a LogNorm's bar
    norm = mcolors.LogNorm(1e-4, 1e-2)
    pd.testing.assert_frame_equal(table[["trial_id", "iteration", "val_metric"]],
                                  history[["trial_id", "iteration", "val_metric"]], check_dtype=False)
    lr = dict(zip(trials["trial_id"], trials["config/stage2_lr"]))
    lines = [line for line in ax.lines if line.get_linestyle() in ("-", "--") and len(line.get_xdata()) == 5]
    assert len(lines) == len(trials)
    for line, (trial_id, rows) in zip(lines, table.groupby("trial_id", sort=False)):
        np.testing.assert_allclose(line.get_ydata(), rows["val_metric"])
        np.testing.assert_allclose(mcolors.to_rgba(line.get_color()), plt.get_cmap("viridis")(norm(lr[trial_id])))


def test_curves_have_integer_epochs_and_stage_1_marked_only_when_there_is_one(grid_store, search_store):
    fig, _ = plot.plot_curves(grid_store[0], "grid")
    ax = fig.axes[0]
    assert all(float(t).is_integer() for t in ax.get_xticks())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "end of stage 1" in labels and "stage 1 epoch" in labels and "diverged / error" in labels
    assert [list(line.get_xdata()) for line in ax.lines if line.get_linestyle() == ":"] == [[2.5, 2.5]]  # one boundary
    fig, table = plot.plot_curves(search_store[0], "tpe")
    ax = fig.axes[0]
    assert all(float(t).is_integer() for t in ax.get_xticks())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert not any("stage" in label for label in labels) and "pruned (ASHA)" in labels
    assert set(table["stage"]) == {2} and ax.get_xlabel() == "epoch"
    dashed = [line for line in ax.lines if line.get_linestyle() == "--" and len(line.get_xdata())]
    assert len(dashed) == 7  # every pruned trial


def test_curves_color_by_a_category_or_the_seed_is_a_legend(grid_store):
    storage, trials, _ = grid_store
    fig, table = plot.plot_curves(storage, "grid", color_by="seed")
    assert len(fig.axes) == 1  # no colour bar: seeds are names, not an order
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"seed=0", "seed=1", "seed=2"} <= set(labels)
    seeds = dict(zip(trials["trial_id"], trials["config/seed"]))
    assert table.groupby("trial_id")["color_value"].first().to_dict() == seeds


# --------------------------------------------------------------------------------------------
# slice


def test_slice_draws_each_searched_dimension_against_the_objective(search_store):
    storage, trials, _ = search_store
    fig, table = plot.plot_slice(storage, "tpe")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and {ax.get_xscale() for ax in axes} == {"log"}
    assert set(table["dimension"]) == {"stage2_lr", "stage2_weight_decay"}
    for ax, name in zip(axes, ("stage2_lr", "stage2_weight_decay")):
        assert ax.get_xlabel().startswith(name)
        done, pruned = ax.collections[:2]
        expected = trials.set_index("trial_id")
        for points, status in ((done, "completed"), (pruned, "pruned")):
            rows = expected[expected["status"] == status]
            np.testing.assert_allclose(points.get_offsets(), rows[[f"config/{name}", "best_val_metric"]].values)
    assert "8 trials (1 completed, 7 pruned)" in fig._suptitle.get_text()
    for ax in axes:  # sampled values get round ticks, not one each
        assert not plot._overlapping(fig, ax) and len([t for t in ax.get_xticklabels() if t.get_text()]) <= 8


def test_slice_refuses_when_no_dimension_was_searched(sensitivity_store, tmp_path, capsys):
    rows = [_trial("seeds", f"t{s}", "emb", "spherical", "completed", {"stage2_lr": 1e-3, "seed": s}, 50.0, 50.0)
            for s in range(3)]
    append_rows(str(tmp_path), "seeds", TRIALS, rows)
    assert plot.main(["slice", "seeds", "--storage", str(tmp_path), "--out", str(tmp_path / "s.png")]) == 2
    assert "searched no dimension" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# CLI and files


@pytest.mark.parametrize("suffix, magic", [(".png", (b"\x89PNG\r\n\x1a\n",)), (".pdf", (b"%PDF",)),
                                           (".svg", (b"<?xml", b"<svg"))])
def test_plot_cli_writes_the_format_of_the_suffix(grid_store, tmp_path, capsys, suffix, magic):
    storage, _, _ = grid_store
    for kind in ("sensitivity", "curves", "slice"):
        out = tmp_path / f"{kind}{suffix}"
        assert plot.main([kind, "grid", "--storage", storage, "--out", str(out)]) == 0
        assert out.read_bytes().startswith(magic)
        assert f"wrote {out}: {kind}, " in capsys.readouterr().out


def test_plot_cli_default_name_is_png_and_bad_input_exits_2(sensitivity_store, tmp_path, capsys, monkeypatch):
    storage, _ = sensitivity_store
    monkeypatch.chdir(tmp_path)
    assert plot.main(["sensitivity", "sens", "--storage", storage, "--param", "stage1_epochs"]) == 0
    assert (tmp_path / "sens-sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 values of stage1_epochs" in capsys.readouterr().out
    assert plot.main(["sensitivity", "sens", "--storage", storage, "--param", "nope"]) == 2
    assert plot.main(["curves", "sens", "--storage", storage, "--out", "c.jpg"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no column 'config/nope'" in err[0] and ".png, .pdf, .svg" in err[1]
