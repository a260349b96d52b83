"""``tuner.report``: one row per experiment, numbers checked against independent pandas computations."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats

from tuner import report, tables
from tuner.store import TRIALS, append_rows, optuna_study_path

MINI = {"scale": "mini", "backbone": "tf_efficientnet_lite0"}
PAPER = {"scale": "paper", "backbone": "swin_base_patch4_window7_224.ms_in22k"}


def _trial(experiment, trial_id, method, status, config, val, test, task="spherical", where=MINI):
    row = {"experiment": experiment, "trial_id": trial_id, "status": status, "iterations": 3,
           "best_val_metric": val, "final_val_metric": val, "test_metric": test, "method": method,
           "task": task, "error": "boom" if status == "error" else None, **where,
           "data_source": "generated:spherical-mnist" if where is MINI else "file:s2_cifar100.gz"}
    row.update({f"config/{k}": v for k, v in config.items()})
    return row


def _grid(exp, method, rng, where=MINI, lrs=(1e-3, 1e-2), seeds=range(3), extra=None):
    rows = [_trial(exp, f"{exp}-{lr}-{s}", method, "completed", {"stage2_lr": lr, "seed": s, **(extra or {})},
                   rng.uniform(10, 90), rng.uniform(10, 90), where=where)
            for lr in lrs for s in seeds]
    rows.append(_trial(exp, f"{exp}-err", method, "error", {"stage2_lr": lrs[0], "seed": 9}, np.nan, np.nan, where=where))
    rows.append(_trial(exp, f"{exp}-pr", method, "pruned", {"stage2_lr": 0.1, "seed": 9}, 1.0, np.nan, where=where))
    return rows


def _flat(text: str) -> str:
    """The report with the notes' line wrapping undone."""
    return " ".join(text.split())


def _store(tmp_path, rows):
    for exp in dict.fromkeys(r["experiment"] for r in rows):
        append_rows(str(tmp_path), exp, TRIALS, [r for r in rows if r["experiment"] == exp])
    return str(tmp_path)


def _expected(rows):
    """Best configuration by mean validation (lower is better), its test mean, std, CI, n: by hand."""
    df = pd.DataFrame(rows)
    done = df[df["status"] == "completed"]
    by_lr = done.groupby("config/stage2_lr")
    best_lr = by_lr["best_val_metric"].mean().idxmin()
    tests = by_lr.get_group(best_lr)["test_metric"]
    half = stats.t.ppf(0.975, len(tests) - 1) * tests.std() / math.sqrt(len(tests))
    return best_lr, tests.mean(), tests.std(), half, len(tests)


def test_one_row_per_experiment_matches_pandas(tmp_path):
    rng = np.random.default_rng(1)
    a, b, c = _grid("a", "finetune", rng), _grid("b", "emb", rng), _grid("c", "finetune", rng)
    storage = _store(tmp_path, a + b + c)
    trials, empty = report.read(storage, ["a", "b", "c"])
    table = report.comparison(trials).set_index("experiments")
    assert list(table.index) == ["a", "b", "c"] and empty == []  # never pooled unless asked
    for name, rows in (("a", a), ("b", b), ("c", c)):
        best_lr, mean, std, half, n = _expected(rows)
        got = table.loc[name]
        assert got["mean"] == pytest.approx(mean) and got["std"] == pytest.approx(std)
        assert got["ci95"] == pytest.approx(half) and got["n"] == n == 3 and got["seeds"] == 3
        assert got["best_configuration"] == f"stage2_lr={best_lr:g}"
        assert (got["completed"], got["pruned"], got["diverged"], got["error"]) == (6, 1, 0, 1)
        assert (got["task"], got["scale"], got["backbone"]) == ("spherical", "mini", "tf_efficientnet_lite0")
    text = _flat(report.markdown(table.reset_index()))
    assert "| a | spherical | mini | tf_efficientnet_lite0 | finetune | 6/1/0/1 |" in text
    assert "published |" not in text  # mini only: no published columns ...
    assert "Scale mini: embedded default: not comparable with published numbers" in text  # ... but a note
    assert "a, c: same method, task, scale and backbone" in text and "--pool" in text


def test_pool_combines_experiments_and_says_so(tmp_path):
    rng = np.random.default_rng(2)
    a = _grid("a", "finetune", rng)
    c = _grid("c", "finetune", rng, lrs=(3e-3,), seeds=range(3, 5))
    b = _grid("b", "emb", rng)
    storage = _store(tmp_path, a + b + c)
    trials, _ = report.read(storage, ["a", "b", "c"])
    table = report.comparison(trials, pool=True).set_index("experiments")
    assert list(table.index) == ["a, c", "b"]
    best_lr, mean, std, half, n = _expected(a + c)  # the best configuration over both experiments
    got = table.loc["a, c"]
    assert got["mean"] == pytest.approx(mean) and got["std"] == pytest.approx(std) and got["n"] == n
    assert got["best_configuration"] == f"stage2_lr={best_lr:g}"
    assert (got["completed"], got["pruned"], got["error"]) == (6 + 2, 2, 2)
    text = _flat(report.markdown(table.reset_index(), pool=True))
    assert text.startswith("| experiments |") and "| a, c | spherical |" in text and "Pooled (--pool)" in text


def test_pool_flags_seeds_repeated_across_experiments(tmp_path):
    rng = np.random.default_rng(3)
    rows = _grid("a", "finetune", rng, lrs=(1e-3,)) + _grid("a2", "finetune", rng, lrs=(1e-3,))
    trials, _ = report.read(_store(tmp_path, rows), ["a", "a2"])
    table = report.comparison(trials, pool=True)
    assert (table.loc[0, "n"], table.loc[0, "seeds"]) == (6, 3)
    assert "| 6 (3 seeds) |" in _flat(report.markdown(table, pool=True))


def test_paper_scale_sets_the_published_number_beside_ours(tmp_path):
    rng = np.random.default_rng(4)
    paper = _grid("p", "finetune++", rng, where=PAPER)
    mini = _grid("m", "finetune++", rng)
    trials, _ = report.read(_store(tmp_path, paper + mini), ["p", "m"])
    table = report.comparison(trials).set_index("experiments")
    _, mean, *_ = _expected(paper)
    assert table.loc["p", "published"] == 33.17  # MoNA Table 2, Finetuning++ on Spherical
    assert table.loc["p", "published_delta"] == pytest.approx(mean - 33.17)
    assert math.isnan(table.loc["m", "published_delta"]) and table.loc["m", "published_note"].startswith("embedded default")
    text = _flat(report.markdown(table.reset_index()))
    assert "| n | published | Δ vs published |" in text
    assert f"| 33.17 (MoNA T2) | {mean - 33.17:+.2f} |" in text
    assert "| not comparable (mini) | — |" in text and "embedded default: not comparable" in text


def test_held_values_other_than_the_default_are_marked(tmp_path):
    defaults = tables.dimension_defaults("mona", "spherical", "mini")
    held = {k: v for k, v in defaults.items()}
    rows = [_trial("alpha", f"t{s}", "mona", "completed", {**held, "alpha": 0.1, "seed": s}, 60.0 + s, 61.0 + s)
            for s in range(2)]
    rows += [_trial("dflt", f"d{s}", "mona", "completed", {**held, "seed": s}, 60.0, 61.0) for s in range(2)]
    trials, _ = report.read(_store(tmp_path, rows), ["alpha", "dflt"])
    table = report.comparison(trials).set_index("experiments")
    assert table.loc["alpha", "best_configuration"] == "alpha=0.1*"
    assert table.loc["dflt", "best_configuration"] == "defaults"
    assert "*: one value in every trial of the experiment (held," in _flat(report.markdown(table.reset_index()))


def test_a_long_configuration_is_listed_under_the_table(tmp_path):
    searched = {"stage2_lr": [1e-3, 2e-3], "lam": [0.25, 0.75], "alpha": [1e-2, 3e-2], "stage1_lr": [1e-4, 2e-4]}
    rows = [_trial("tpe", f"t{i}", "mona", "completed", {**{k: v[i] for k, v in searched.items()}, "seed": 0},
                   50.0 - i, 60.0) for i in range(2)]
    trials, _ = report.read(_store(tmp_path, rows), ["tpe"])
    table = report.comparison(trials)
    assert table.loc[0, "best_configuration"] == "stage2_lr=0.002, lam=0.75, alpha=0.03, stage1_lr=0.0002"
    text = report.markdown(table)
    assert "| [1] below |" in text and "\n[1] tpe: stage2_lr=0.002, lam=0.75, alpha=0.03, stage1_lr=0.0002\n" in text


def test_unknown_experiment_lists_those_there(tmp_path, capsys):
    storage = _store(tmp_path, _grid("sph-mona", "mona", np.random.default_rng(5)))
    assert report.main(["sph-mnoa", "--storage", storage]) == 2
    err = capsys.readouterr().err
    assert "no experiment 'sph-mnoa'" in err and "Experiments there: sph-mona." in err and "Did you mean 'sph-mona'?" in err
    assert report.main(["x", "--storage", str(tmp_path / "nothing")]) == 2
    assert "holds no experiment" in capsys.readouterr().err


def test_importances_from_the_study_on_disk(tmp_path, capsys):
    rows = _grid("tpe", "finetune", np.random.default_rng(6)) + _grid("flat", "finetune", np.random.default_rng(7))
    storage = _store(tmp_path, rows)
    path = optuna_study_path(storage, "tpe")
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    study = optuna.create_study(study_name="tpe", storage=journal, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 10 * t.suggest_float("stage2_lr", 0, 1) + 0.01 * t.suggest_float("wd", 0, 1),
                   n_trials=12)
    trial = study.ask()
    trial.suggest_float("stage2_lr", 0, 1)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)

    imp = report.importances(storage, "tpe")
    expected = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    assert imp.values == pytest.approx(expected) and max(imp.values, key=imp.values.get) == "stage2_lr"
    assert (imp.completed, imp.trials, imp.evaluator) == (12, 13, "FanovaImportanceEvaluator")
    assert report.importances(storage, "flat").message == report.NO_STUDY

    assert report.main(["tpe", "flat", "--storage", storage, "--csv", str(tmp_path / "r.csv")]) == 0
    out = _flat(capsys.readouterr().out)
    assert "- tpe (FanovaImportanceEvaluator, 12 completed of 13): stage2_lr 0." in out
    assert "- flat: no Optuna study on disk" in out
    assert list(pd.read_csv(tmp_path / "r.csv")["experiments"]) == ["tpe", "flat"]


def test_importances_need_two_completed_trials(tmp_path):
    storage = _store(tmp_path, _grid("one", "finetune", np.random.default_rng(8)))
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(optuna_study_path(storage, "one")))
    study = optuna.create_study(study_name="one", storage=journal)
    study.optimize(lambda t: t.suggest_float("stage2_lr", 0, 1), n_trials=1)
    imp = report.importances(storage, "one")
    assert not imp.values and "1 completed of 1" in imp.message
