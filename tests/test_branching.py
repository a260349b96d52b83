"""Branching search (tuner/branching.py): K stage-1 roots, stage-2 branches sharing their stage 1."""
from __future__ import annotations

import pytest
from trial_configs import TOY

from trainables.registry import get_method
from tuner.branching import BranchingOptunaSearch
from tuner.experiment import make_searcher
from tuner.spec import SweepSpec

STAGE1 = get_method("mona").trainable.stage1_keys


def searcher(tmp_path, **spec) -> BranchingOptunaSearch:
    resolved = SweepSpec(method="mona", data_dir=str(tmp_path / "data"), storage=str(tmp_path / "r"), name="b",
                         **{"branching": 2, **spec}, **TOY).resolve()
    found = make_searcher(resolved, "min")
    assert isinstance(found, BranchingOptunaSearch)
    return found


def report(s: BranchingOptunaSearch, trial_id: str, stage: int, stage_epoch: int, iteration: int) -> None:
    s.on_trial_result(trial_id, {"val_metric": 50.0, "training_iteration": iteration, "stage": stage,
                                 "stage_epoch": stage_epoch})


def stage1_of(config: dict) -> dict:
    return {k: config[k] for k in STAGE1 if k in config}


def test_roots_first_then_branches_from_ready_roots_round_robin(tmp_path):
    s = searcher(tmp_path, num_samples=8)
    roots = {t: s.suggest(t) for t in ("r0", "r1")}
    assert stage1_of(roots["r0"]) != stage1_of(roots["r1"])  # two stage-1 configurations from TPE
    assert s.suggest("b0") is None  # no root has finished its stage 1: nothing to branch from
    epochs = roots["r1"]["stage1_epochs"]
    for e in range(1, epochs):
        report(s, "r1", 1, e, e)
        assert s.suggest("b0") is None
    report(s, "r1", 1, epochs, epochs)  # r1's last stage-1 epoch: its stage 1 is in the cache
    branches = {t: s.suggest(t) for t in ("b0", "b1")}
    for config in branches.values():  # only r1 is ready: both branch from it
        assert stage1_of(config) == stage1_of(roots["r1"]) and config["seed"] == roots["r1"]["seed"]
    assert branches["b0"]["stage2_lr"] != branches["b1"]["stage2_lr"]  # stage 2 is searched
    report(s, "r0", 2, 1, roots["r0"]["stage1_epochs"] + 1)  # a stage-2 result: r0 is past stage 1
    b2 = s.suggest("b2")
    assert stage1_of(b2) == stage1_of(roots["r0"])  # the root with fewer trials (1 vs 3)
    assert [r.trials for r in s.roots] == [2, 3]
    # the Optuna study holds the branch's values as sampled: TPE learns from every trial
    assert s._ot_trials["b2"].params["lam"] == roots["r0"]["lam"]


def test_every_configuration_runs_at_every_seed(tmp_path):
    s = searcher(tmp_path, num_samples=8, seeds=2, seed=5)
    configs = [s.suggest(t) for t in ("a", "b", "c", "d")]
    assert [c["seed"] for c in configs] == [5, 6, 5, 6]
    assert stage1_of(configs[0]) == stage1_of(configs[1]) != stage1_of(configs[2]) == stage1_of(configs[3])
    assert configs[0]["stage2_lr"] != configs[1]["stage2_lr"]


def test_a_root_that_ends_in_stage1_gets_no_branches_and_is_replaced_when_none_is_left(tmp_path):
    s = searcher(tmp_path, num_samples=8)
    r0, r1 = s.suggest("r0"), s.suggest("r1")
    s.on_trial_complete("r0", error=True)
    assert s.suggest("x") is None  # r1 may still become ready
    diverged = {"val_metric": float("nan"), "training_iteration": 1, "stage": 1, "stage_epoch": r1["stage1_epochs"],
                "finished": False, "diverged": True}  # its last stage-1 epoch, diverged: nothing published
    s.on_trial_result("r1", diverged)
    s.on_trial_complete("r1", result=diverged)
    assert not s.roots[1].ready and s.roots[1].failed
    new = s.suggest("r2")  # no root can become ready: a third configuration
    assert len(s.roots) == 3 and s.roots[2].trial_id == "r2"
    assert stage1_of(new) not in (stage1_of(r0), stage1_of(r1))


def test_state_survives_save_and_restore(tmp_path):
    s = searcher(tmp_path, num_samples=8)
    s.suggest("r0"), s.suggest("r1")
    report(s, "r0", 2, 1, 3)
    s.save(str(tmp_path / "state.pkl"))
    restored = searcher(tmp_path / "other", num_samples=8)
    restored.restore(str(tmp_path / "state.pkl"))
    assert restored.summary() == s.summary() and restored.roots[0].ready
    assert stage1_of(restored.suggest("b0")) == s.roots[0].params


@pytest.mark.parametrize("spec, message", [
    (dict(method="finetune"), "has no stage 1"),
    (dict(sensitivity="lambda=0,1"), "search mode"),
    (dict(no_stage1_cache=True), "stage-1 cache"),
    (dict(num_samples=3, seeds=2), "no trial left to branch"),
    (dict(fixed=tuple(f"{k}={v}" for k, v in dict(lam=0.5, alpha=0.01, inner_steps=1, stage1_lr=3e-4,
                                                  stage1_weight_decay=0.1, stage1_epochs=1).items())),
     "use --branching 1"),
    (dict(branching=-1), "--branching is out of range"),
])
def test_refused_where_no_stage1_can_be_shared(tmp_path, spec, message):
    kwargs = {"method": "mona", "branching": 2, "data_dir": str(tmp_path), "storage": str(tmp_path), **TOY, **spec}
    with pytest.raises(ValueError, match=message):
        SweepSpec(**kwargs).resolve()


def test_one_configuration_with_every_stage1_dimension_held_is_allowed(tmp_path):
    held = ("lambda=0.5", "stage1_epochs=1")
    s = searcher(tmp_path, branching=1, num_samples=4, fixed=held)
    root = s.suggest("r0")
    report(s, "r0", 1, 1, 1)
    branch = s.suggest("b0")
    assert branch["lam"] == root["lam"] == 0.5 and stage1_of(branch) == stage1_of(root)


@pytest.mark.ray
def test_sweep_branches_share_their_roots_stage1(ray_local, tmp_path):
    from tuner import experiment

    spec = SweepSpec(method="mona", data_dir=str(tmp_path / "data"), max_epochs=2, max_train_samples=64,
                     storage=str(tmp_path / "r"), name="branch", num_samples=4, branching=2,
                     fixed=("stage1_epochs=1", "inner_steps=1"), **TOY)
    run = experiment.run_experiment(spec.resolve())
    trials, history = run.trials, run.history
    assert len(trials) == 4 and trials["status"].isin(["completed", "pruned"]).all()
    assert trials["stage1_reused"].sum() == 2  # the two branches; each root computed its own
    keys = [f"config/{k}" for k in STAGE1 if f"config/{k}" in trials]
    roots = {tuple(r) for r in trials[~trials["stage1_reused"]][keys].itertuples(index=False)}
    assert len(roots) == 2
    for branch in trials[trials["stage1_reused"]][keys].itertuples(index=False):
        assert tuple(branch) in roots
    # samples_total: what each trial trained; a replayed stage 1 adds none
    for row in trials.itertuples():
        mine = history[history["trial_id"] == row.trial_id]
        assert row.samples_total == mine["samples"].sum()
        assert (mine[mine["stage"] == 1]["samples"] == 0).all() == row.stage1_reused


def test_fewer_roots_than_trial_slots_is_warned(ray_local, tmp_path, caplog):
    import logging

    from tuner import experiment

    spec = SweepSpec(method="mona", data_dir=str(tmp_path / "data"), storage=str(tmp_path / "r"), name="w",
                     num_samples=3, branching=1, **TOY)
    with caplog.at_level(logging.WARNING, logger="tuner.experiment"):
        experiment.build_tuner(spec.resolve(), data_source="test")
    assert "1 stage-1 root(s) for 2 trials at once: 1 slot(s) wait" in caplog.text  # ray_local: 2 CPUs
