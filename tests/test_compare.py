"""``tuner.compare``: at-defaults runs and the Table-2 report's statistics, against hand-computed values."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from trial_configs import TOY, sample_config

from tuner import compare, experiment
from tuner.spec import SweepSpec


def _rows(method, tests, status="completed"):
    return [{"method": method, "task": "spherical", "scale": "mini", "backbone": "b", "status": status,
             "config/seed": seed, "test_metric": t} for seed, t in enumerate(tests)]


def test_report_statistics_by_hand():
    """Baseline A = [10, 20, 30]. B - A = [-2, -3, -1]: mean -2, std 1, 95% CI half-width
    t(0.975, 2) / sqrt(3) = 4.302653 / 1.732051 = 2.48414: within noise; paired t = -3.4641 on
    2 df, two-sided p = 1 - |t| / sqrt(t^2 + 2) = 0.07418. C - A = [-6, -5, -6]: mean -5.6667,
    std 0.57735, half-width 1.43422, beyond noise; t = -17, p = 1 - 17 / sqrt(291) = 0.003442."""
    trials = pd.DataFrame(_rows("A", [10, 20, 30]) + _rows("B", [8, 17, 29]) + _rows("C", [4, 15, 24])
                          + _rows("C", [99.0], status="pruned"))
    table = compare.comparison(trials, "A").set_index("method")
    assert table.loc["A", "mean"] == 20 and table.loc["A", "std"] == 10
    assert table.loc["A", "ci95"] == pytest.approx(10 * 4.302653 / math.sqrt(3), rel=1e-6)
    assert table.loc["B", "diff"] == pytest.approx(-2) and table.loc["B", "diff_ci95"] == pytest.approx(2.48414, rel=1e-5)
    assert table.loc["B", "p_paired"] == pytest.approx(0.07418, abs=1e-5)
    assert table.loc["B", "verdict"] == "within seed noise of A"
    assert table.loc["C", "diff"] == pytest.approx(-17 / 3) and table.loc["C", "diff_ci95"] == pytest.approx(1.43422, rel=1e-5)
    assert table.loc["C", "p_paired"] == pytest.approx(0.003442, abs=1e-6)
    assert table.loc["C", "verdict"] == "better than A beyond seed noise"  # error: lower is better
    assert (table.loc["C", "n"], table.loc["C", "left_out"]) == (3, 1)
    text = compare.markdown(table.reset_index(), "spherical", "A")
    assert "| C | mini | b | 14.33 ± 10.02 |" in text and "not comparable with the papers' numbers" in text


def test_report_keeps_experiments_of_one_method_apart():
    a = pd.DataFrame(_rows("A", [10, 20, 30])).assign(experiment="base")
    b1 = pd.DataFrame(_rows("B", [8, 17, 29])).assign(experiment="b-default")
    b2 = pd.DataFrame(_rows("B", [4, 15, 24])).assign(experiment="b-ablation")
    table = compare.comparison(pd.concat([a, b1, b2]), "A").set_index("method")
    assert list(table.index) == ["A", "B (b-default)", "B (b-ablation)"]
    assert table.loc["B (b-ablation)", "diff"] == pytest.approx(-17 / 3) and table.loc["B (b-default)", "n"] == 3


def test_report_refuses_a_missing_baseline_and_several_tasks():
    trials = pd.DataFrame(_rows("A", [1, 2]))
    with pytest.raises(ValueError, match="baseline 'finetune\\+\\+' has no completed trial"):
        compare.comparison(trials, "finetune++")
    with pytest.raises(ValueError, match="on one task"):
        compare.comparison(pd.concat([trials, trials.assign(task="ecg")]), "A")


def test_at_defaults_holds_every_dimension_and_repeats_seeds(tmp_path):
    resolved = SweepSpec(method="mona", data_dir=str(tmp_path), at_defaults=True, seeds=3, **TOY).resolve()
    assert resolved.grid is None and resolved.expected_trials == 3
    space, search = experiment.default_search(resolved, "min")
    assert space["lam"] == 0.5 and space["embedder_init"] == "source" and space["meta_grad"] == "exact"
    assert space["seed"] == {"grid_search": [0, 1, 2]} and "search_alg" not in search
    with pytest.raises(ValueError, match="exclude each other"):
        SweepSpec(method="mona", data_dir=str(tmp_path), at_defaults=True, sensitivity="lam=0,1", **TOY).resolve()


@pytest.mark.ray
def test_compare_runs_each_method_at_its_defaults_and_reports(ray_local, tmp_path, capsys):
    code = compare.main(["--task", "test_toy_task", "--methods", "finetune,finetune++", "--seeds", "2",
                         "--baseline", "finetune", "--scale", "mini", "--max-epochs", "1",
                         "--max-train-samples", "64", "--data-dir", str(tmp_path / "d"),
                         "--storage", str(tmp_path / "r"), "--name", "cmp", "--set", "stage2_lr=0.01"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| finetune | mini |" in out and "| finetune++ | mini |" in out and "paired" in out
    trials = compare.read_experiments(str(tmp_path / "r"), ["cmp-finetune", "cmp-finetune++"])
    assert sorted(trials["config/seed"]) == [0, 0, 1, 1] and (trials["status"] == "completed").all()
    assert (trials["config/stage2_lr"] == 0.01).all()


def test_from_experiment_reruns_the_best_configuration_on_fresh_seeds(tmp_path):
    """The best configuration by mean validation over completed trials (a pruned trial with a
    better, lower-fidelity value never wins), every dimension held at its value, seeds past
    the source's; the same scale, backbone, epochs and data for every row."""
    config = sample_config("finetune", tmp_path, max_epochs=2, max_train_samples=64)
    searched = [(3e-4, 1e-3, 40.0, "completed"), (1.234567891e-3, 2e-2, 30.0, "completed"),
                (2e-3, 1e-4, 10.0, "pruned"), (5e-3, 3e-3, 35.0, "completed")]
    trials = pd.DataFrame([
        {"experiment": "tpe", "trial_id": f"t{i}", "status": status, "best_val_metric": val, "test_metric": val + 1,
         "task": "test_toy_task", "method": "finetune", "scale": "mini", "backbone": "test_efficientnet",
         **{f"config/{k}": v for k, v in {**config, "stage2_lr": lr, "stage2_weight_decay": wd}.items()}}
        for i, (lr, wd, val, status) in enumerate(searched)])
    assert compare.best_settings(trials)["stage2_lr"] == 1.234567891e-3
    args = compare.parse_args(["--from-experiment", "tpe", "--methods", "finetune++", "--seeds", "2",
                               "--storage", str(tmp_path / "r"), "--set", "stage2_weight_decay=0.05"])
    base, best = compare.from_experiment(trials, "tpe", args)
    assert (base.task, base.scale, base.backbone, base.seed, base.seeds) == ("test_toy_task", "mini", "test_efficientnet", 1, 2)
    assert (base.max_epochs, base.max_train_samples, base.init) == (2, 64, "random")
    assert best.name == "compare-test_toy_task-finetune-best-of-tpe" and best.at_defaults
    resolved = best.resolve()
    assert resolved.fixed["stage2_lr"] == 1.234567891e-3  # exactly: --set carries repr(float)
    assert resolved.fixed["stage2_weight_decay"] == 0.05  # a --set given with the run still wins
    assert resolved.default_config()["seed"] == 1 and resolved.expected_trials == 2
    with pytest.raises(ValueError, match=r"re-uses seed\(s\) \[0\].*fresh seeds start at 1"):
        compare.from_experiment(trials, "tpe", compare.parse_args(["--from-experiment", "tpe", "--seed", "0"]))
    with pytest.raises(ValueError, match="--task spherical but tpe ran task test_toy_task"):
        compare.from_experiment(trials, "tpe", compare.parse_args(["--from-experiment", "tpe", "--task", "spherical"]))
    labels = compare.row_labels(pd.DataFrame({"method": ["finetune", "finetune++"],
                                              "experiment": [best.name, "compare-test_toy_task-finetune++"]}))
    assert list(labels) == ["finetune (best of tpe)", "finetune++"]


def test_paper_scale_rows_show_the_published_number():
    rows = [{**r, "scale": "paper", "backbone": "swin_base_patch4_window7_224.ms_in22k"}
            for r in _rows("finetune++", [33.0, 34.0, 35.0]) + _rows("mona", [27.0, 28.5, 28.5])]
    table = compare.comparison(pd.DataFrame(rows), "finetune++").set_index("method")
    assert table.loc["mona", "published"] == 27.13 and table.loc["mona", "published_delta"] == pytest.approx(0.87)
    text = compare.markdown(table.reset_index(), "spherical", "finetune++")
    assert "| 27.13 (MoNA T2) | +0.87 |" in text and "| 33.17 (MoNA T2) | +0.83 |" in text
    assert "not comparable" not in text
