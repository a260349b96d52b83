"""The sweep end to end: CLI validation, a real Tune sweep of real trainables into the store."""
from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from trial_configs import TOY

from tuner import cluster, experiment
from tuner.spec import SweepSpec
from tuner.store import optuna_study_path


def test_paper_scale_names_the_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"s2_cifar100\.gz.*--scale mini"):
        SweepSpec(task="spherical", method="finetune", scale="paper", data_dir=str(tmp_path)).resolve()


def test_auto_scale_falls_back_in_one_line(tmp_path, caplog):
    resolved = SweepSpec(task="spherical", method="finetune", data_dir=str(tmp_path)).resolve()
    assert resolved.scale == "mini" and resolved.backbone == "tf_efficientnet_lite0"
    assert "s2_cifar100.gz not in" in resolved.fallback_reason
    assert any("embedded default" in r.message for r in caplog.records)


def test_auto_scale_uses_paper_data_and_weights_when_present(tmp_path):
    (tmp_path / "s2_cifar100.gz").write_bytes(b"")
    weights = tmp_path / "swin.pth"
    weights.write_bytes(b"")
    resolved = SweepSpec(task="spherical", method="finetune", data_dir=str(tmp_path),
                         weights=str(weights)).resolve()
    assert resolved.scale == "paper" and resolved.backbone.startswith("swin_base")
    assert resolved.trial_constants()["weights_path"] == str(weights)


@pytest.mark.ray
def test_gpu_request_without_gpus_is_refused(ray_local, tmp_path):
    resolved = SweepSpec(method="finetune", data_dir=str(tmp_path), gpus_per_trial=0.5, **TOY).resolve()
    with pytest.raises(ValueError, match="--gpus-per-trial 0.5 asked for, but the Ray cluster has 0 GPUs"):
        cluster.check_resources(resolved.spec.cpus_per_trial, resolved.spec.gpus_per_trial)


@pytest.mark.ray
def test_sweep_fills_the_store_with_completed_and_pruned_trials(ray_local, tmp_path):
    spec = SweepSpec(method="finetune", data_dir=str(tmp_path / "data"), num_samples=8, max_epochs=4,
                     storage=str(tmp_path / "results"), name="toy", seed=1, **TOY)
    run = experiment.run_experiment(spec.resolve())
    assert run.results.num_errors == 0
    trials, history = run.trials, run.history
    assert len(trials) == 8 and trials["trial_id"].is_unique
    statuses = set(trials["status"])
    assert {"completed", "pruned"} <= statuses, statuses
    assert (trials["method"] == "finetune").all() and (trials["scale"] == "mini").all()
    assert (trials["backbone"] == "test_efficientnet").all()
    assert (trials["data_source"] == "generated:toy(seed=0)").all()
    # one history row per (trial, iteration), matching each trial's iteration count
    assert not history.duplicated(["trial_id", "iteration"]).any()
    per_trial = history.groupby("trial_id")["iteration"].max()
    assert (per_trial.loc[trials["trial_id"]].values == trials["iterations"].values).all()
    completed = trials[trials["status"] == "completed"]
    assert (completed["iterations"] == 4).all() and completed["test_metric"].notna().all()
    pruned = trials[trials["status"] == "pruned"]
    assert (pruned["iterations"] < 4).all() and pruned["test_metric"].isna().all()
    # real, differing validation metrics, and the store's best equals the history's minimum
    assert history["val_metric"].nunique() > 1
    best = history.groupby("trial_id")["val_metric"].min()
    assert (best.loc[trials["trial_id"]].values == trials["best_val_metric"].values).all()
    # the Optuna study on disk tells the same story as the store
    study = optuna.load_study(study_name="toy", storage=JournalStorage(JournalFileBackend(
        optuna_study_path(spec.storage, "toy"))))
    states = sorted(t.state.name for t in study.trials)
    assert states == sorted({"completed": "COMPLETE", "pruned": "PRUNED"}[s] for s in trials["status"])


def test_set_replaces_constants_of_the_method_and_of_its_space(tmp_path):
    """``--set`` works for every constant (never silently ignored): in search mode through the
    searcher and the trial constants, in sensitivity mode through the held values."""
    default = SweepSpec(method="mona", data_dir=str(tmp_path), **TOY).resolve()
    assert default.trial_constants()["embedder_init"] == "source"  # MoNA A.2: as ORCA
    resolved = SweepSpec(method="mona", data_dir=str(tmp_path), fixed=("embedder_init=random",), **TOY).resolve()
    assert resolved.trial_constants()["embedder_init"] == "random"
    assert experiment.make_searcher(resolved, "min").suggest("t0")["embedder_init"] == "random"
    orca = SweepSpec(method="orca", data_dir=str(tmp_path), fixed=("source_samples=100",), **TOY).resolve()
    configs = [experiment.make_searcher(orca, "min").suggest(f"t{i}") for i in range(2)]
    assert [c["source_samples"] for c in configs] == [100, 100]
    grid = SweepSpec(method="orca", data_dir=str(tmp_path), fixed=("source_samples=100",),
                     sensitivity="stage1_epochs=4,8", **TOY).resolve()
    assert grid.fixed["source_samples"] == 100 and grid.default_config()["source_samples"] == 100
    ablation = SweepSpec(method="emb", data_dir=str(tmp_path), sensitivity="embedder_init=source,random", **TOY).resolve()
    assert ablation.grid == ("embedder_init", ("source", "random"))
    space_file = tmp_path / "space.yaml"
    space_file.write_text("embedder_init: random\nsource_samples: 100\n")
    from_file = SweepSpec(method="orca", data_dir=str(tmp_path), space_file=str(space_file), **TOY).resolve()
    config = experiment.make_searcher(from_file, "min").suggest("t0")
    assert (config["embedder_init"], config["source_samples"]) == ("random", 100)
    assert from_file.trial_constants()["embedder_init"] == "random"


def test_set_of_an_invalid_constant_is_refused_before_any_trial(tmp_path):
    with pytest.raises(ValueError, match=r"embedder_init must be one of \('source', 'random'\), got 'stem'"):
        SweepSpec(method="mona", data_dir=str(tmp_path), fixed=("embedder_init=stem",), **TOY).resolve()


def test_set_holds_a_dimension_and_bad_names_are_refused(tmp_path):
    resolved = SweepSpec(method="emb", data_dir=str(tmp_path), fixed=("stage1_epochs=3",), **TOY).resolve()
    searcher = experiment.make_searcher(resolved, "min")
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    assert all(c["stage1_epochs"] == 3 for c in configs)
    assert len({c["stage2_lr"] for c in configs}) == 3  # the rest is still searched
    with pytest.raises(ValueError, match="not a dimension of search_spaces.emb. Valid: embedder_init, "
                                         "freeze_encoder, stage1_epochs"):
        SweepSpec(method="emb", data_dir=str(tmp_path), fixed=("epochs=3",), **TOY).resolve()
    with pytest.raises(ValueError, match="expected a int"):
        SweepSpec(method="emb", data_dir=str(tmp_path), sensitivity="stage1_epochs=1,2.5", **TOY).resolve()


def test_asha_stopped_trials_reach_optuna_as_pruned(tmp_path):
    resolved = SweepSpec(method="finetune", data_dir=str(tmp_path), storage=str(tmp_path), name="s", **TOY).resolve()
    searcher = experiment.make_searcher(resolved, "min")
    outcomes = {"stopped": {"finished": False}, "done": {"finished": True}, "nan": {"diverged": True}}
    for trial_id, flags in outcomes.items():
        searcher.suggest(trial_id)
        searcher.on_trial_result(trial_id, {"val_metric": 50.0, "training_iteration": 1})
        searcher.on_trial_complete(trial_id, {"val_metric": 50.0, "training_iteration": 1, **flags})
    states = [t.state.name for t in searcher._ot_study.trials]
    assert states == ["PRUNED", "COMPLETE", "FAIL"]
    # the study is on disk, where optuna-dashboard and optuna.load_study find it
    on_disk = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(
        optuna_study_path(str(tmp_path), "s"))))
    assert [t.state.name for t in on_disk.trials] == states


@pytest.mark.ray
def test_sensitivity_grid_runs_every_value_and_seed_to_full_length(ray_local, tmp_path):
    spec = SweepSpec(method="emb", data_dir=str(tmp_path / "data"), max_epochs=2, storage=str(tmp_path / "r"),
                     name="sens", sensitivity="stage1_epochs=1,2", seeds=2, **TOY)
    resolved = spec.resolve()
    trials = experiment.run_experiment(resolved).trials
    assert len(trials) == 4 and (trials["status"] == "completed").all()
    grid = sorted(zip(trials["config/stage1_epochs"], trials["config/seed"]))
    assert grid == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert (trials["iterations"] == trials["config/stage1_epochs"] + 2).all()
    assert (trials["config/stage1_lr"] == resolved.defaults["lr"] * 10).all()  # held at its default


def test_space_file_changes_what_is_sampled(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("stage2_lr: {low: 0.02, high: 0.03}\nstage1_epochs: [3]\nstage2_weight_decay: 0.05\n")
    resolved = SweepSpec(method="emb", data_dir=str(tmp_path), space_file=str(path), **TOY).resolve()
    searcher = experiment.make_searcher(resolved, "min")
    configs = [searcher.suggest(f"t{i}") for i in range(6)]
    assert all(0.02 <= c["stage2_lr"] <= 0.03 for c in configs)
    assert {c["stage1_epochs"] for c in configs} == {3}
    assert {c["stage2_weight_decay"] for c in configs} == {0.05}
    assert len({c["stage1_lr"] for c in configs}) == 6  # untouched dimensions still searched
    import pickle
    pickle.dumps(searcher)  # Ray checkpoints the searcher: the wrapped space must pickle


def test_saved_spec_with_unknown_keys_is_refused():
    spec = SweepSpec(task="spherical", method="mona")
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match=r"unknown keys \['lambda_schedule'\]"):
        SweepSpec.from_dict({**spec.to_dict(), "lambda_schedule": "linear"})


def test_the_task_token_limit_reaches_the_trial_through_its_config(tmp_path):
    """ECG's 64-token limit (ORCA) at paper scale; the backbone's own limit (0) at mini scale."""
    (tmp_path / "challenge2017.pkl").write_bytes(b"")
    ecg = SweepSpec(task="ecg", method="finetune", scale="paper", init="random", data_dir=str(tmp_path)).resolve()
    assert ecg.trial_constants()["target_seq_len"] == 64
    mini = SweepSpec(task="japanesevowels", method="finetune", scale="mini", data_dir=str(tmp_path)).resolve()
    assert mini.trial_constants()["target_seq_len"] == 0


def test_resume_fails_the_trials_a_killed_driver_asked_after_its_last_snapshot(tmp_path):
    """The journal knows every ask; Tune's searcher snapshot only those before it. On --resume
    the journal's RUNNING trials the snapshot does not know become FAIL; known ones stay."""
    import pickle

    resolved = SweepSpec(method="finetune", data_dir=str(tmp_path), storage=str(tmp_path), name="k", **TOY).resolve()
    storage = experiment.study_storage(resolved)
    study = optuna.create_study(study_name="k", storage=storage)
    done, known, orphan = study.ask(), study.ask(), study.ask()
    study.tell(done, 1.0)
    with open(tmp_path / "k" / "searcher-state-2026-01-01_00-00-00.pkl", "wb") as f:
        pickle.dump({"_ot_trials": {"a": done, "b": known}}, f)
    assert experiment.fail_orphaned_study_trials(resolved) == [orphan.number]
    states = [t.state.name for t in optuna.load_study(study_name="k", storage=storage).trials]
    assert states == ["COMPLETE", "RUNNING", "FAIL"]
