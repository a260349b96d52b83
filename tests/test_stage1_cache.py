"""The stage-1 cache (trainables/stage1_cache.py): a reused stage 1 is a computed one, bit for bit."""
from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import multiprocessing
import shutil

import pytest
import torch
from ray import tune
from trial_configs import TOY, sample_config

from trainables import stage1_cache
from trainables.base import BASE_STAGE1_KEYS, TrialConfig
from trainables.registry import get_method
from tuner.spec import SweepSpec
from tuner.sweep import parse_args, spec_from_args

STAGE1_METHODS = ("emb", "orca", "mona")
# Compared between runs: everything a step reports except its throughput and the cache's own keys.
COMPARED = ("stage", "epoch", "stage_epoch", "stage2_epoch", "train_loss", "val_metric", "best_val_metric",
            "test_metric", "lr", "diverged", "finished")
# Config fields no stage 1 reads (or reads by content: data_root, weights_path), with a valid other
# value for the check that changing them leaves stage 1 as it was. A new TrialConfig field must be
# put here or in a stage-1 key list (BASE_STAGE1_KEYS or the method's stage1_keys).
NOT_STAGE1 = {
    "stage2_lr": lambda v: v * 3, "stage2_epochs": lambda v: v + 1, "stage2_weight_decay": lambda v: v + 0.05,
    "optimizer": lambda v: "sgd" if v != "sgd" else "adamw", "grad_accum": lambda v: v + 1,
    "freeze_encoder": lambda v: not v, "stage1_cache": None, "data_root": None, "weights_path": None,
}


def config(method: str, tmp_path, cache: str | None = "cache", **overrides) -> dict:
    """A small two-epoch stage 1 + two-epoch stage 2 on the toy task, caching under tmp_path/cache."""
    small = {"stage1_epochs": 2, "stage2_epochs": 2, "max_train_samples": 64,
             "stage1_cache": str(tmp_path / cache) if cache else ""}
    if method == "mona":
        small.update(inner_steps=1, meta_grad="exact")
    if method == "orca":
        small.update(source_samples=64, ot_solver="emd")  # the source side is built at every trial's setup
    return {**sample_config(method, tmp_path), **small, **overrides}


@pytest.fixture
def stage1_calls(monkeypatch):
    """Counts real stage-1 epochs (not replays) of every method, by method name."""
    calls = {m: 0 for m in STAGE1_METHODS}
    for m in STAGE1_METHODS:
        cls = get_method(m).trainable
        original = cls.stage1_epoch

        def counted(self, _original=original, _m=m):
            calls[_m] += 1
            return _original(self)
        monkeypatch.setattr(cls, "stage1_epoch", counted)
    return calls


def run(method: str, cfg: dict, steps: int | None = None, trainable=None) -> tuple[list[dict], dict, object]:
    """Results of ``steps`` steps (default: the whole plan), the final model state and the trainable."""
    t = trainable or get_method(method).trainable(config=cfg)
    total = sum(s.epochs for s in t.plan) if steps is None else steps
    results = [t.train() for _ in range(total)]
    return results, {k: v.clone() for k, v in t.model.state_dict().items()}, t


def assert_same(a: list[dict], b: list[dict], state_a: dict | None = None, state_b: dict | None = None) -> None:
    """Bit-identical results (NaN equal to NaN) and, if given, model states."""
    assert len(a) == len(b)
    for i, (ra, rb) in enumerate(zip(a, b)):
        for key in COMPARED:
            same = ra[key] == rb[key] or (isinstance(ra[key], float) and math.isnan(ra[key]) and math.isnan(rb[key]))
            assert same, (i, key, ra[key], rb[key])
    if state_a is not None:
        assert state_a.keys() == state_b.keys()
        for k in state_a:
            assert torch.equal(state_a[k], state_b[k]), k


def entries(directory) -> list:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ---- reuse is bit-identical ---------------------------------------------------------------------
@pytest.mark.parametrize("method", ["emb", "mona"])
def test_reused_stage1_gives_bit_identical_stage2(method, tmp_path, stage1_calls):
    cfg = config(method, tmp_path)
    first, state_first, a = run(method, cfg)
    assert stage1_calls[method] == 2 and entries(tmp_path / "cache") == [f"{a.s1.key}.pt"]
    second, state_second, b = run(method, cfg)
    assert stage1_calls[method] == 2  # nothing trained in stage 1 the second time
    assert_same(first, second, state_first, state_second)
    assert [r["stage1_reused"] for r in first + second] == [False] * 4 + [True] * 4
    assert all(r["stage1_saved_s"] == 0.0 for r in first)
    assert 0 < second[1]["stage1_saved_s"] == second[-1]["stage1_saved_s"]
    assert second[-1]["finished"] and math.isfinite(second[-1]["test_metric"])
    # the cache changes nothing: the same trial without it computes the same numbers
    uncached, state_uncached, _ = run(method, {**cfg, "stage1_cache": ""})
    assert_same(first, uncached, state_first, state_uncached)
    a.stop(), b.stop()


def test_restored_mid_stage1_continues_computing_or_replaying(tmp_path, stage1_calls):
    """Tune checkpoint/restore in the middle of a computed and of a replayed stage 1."""
    cfg = config("emb", tmp_path)
    reference, state_ref, _ = run("emb", {**cfg, "stage1_cache": ""})
    calls = stage1_calls["emb"]
    _, _, a = run("emb", cfg, steps=1)  # computing: killed after stage-1 epoch 1 ...
    ckpt = a.save(str(tmp_path / "computing"))
    b = get_method("emb").trainable(config=cfg)
    b.restore(ckpt)  # ... and resumed: it computes epoch 2 and publishes
    rest, state_b, _ = run("emb", cfg, steps=3, trainable=b)
    assert_same(reference[1:], rest, state_ref, state_b)
    assert stage1_calls["emb"] == calls + 2 and len(entries(tmp_path / "cache")) == 1
    _, _, c = run("emb", cfg, steps=1)  # replaying: restored after one replayed epoch
    ckpt = c.save(str(tmp_path / "replaying"))
    d = get_method("emb").trainable(config=cfg)
    d.restore(ckpt)
    rest, state_d, _ = run("emb", cfg, steps=3, trainable=d)
    assert stage1_calls["emb"] == calls + 2
    assert_same(reference[1:], rest, state_ref, state_d)
    assert all(r["stage1_reused"] for r in rest)


def test_actor_reuse_looks_up_the_new_config(tmp_path, stage1_calls):
    """``reset_config`` (Ray's actor reuse) to a config with another stage-2 lr reuses stage 1."""
    cfg = config("emb", tmp_path)
    _, _, t = run("emb", cfg)
    other = {**cfg, "stage2_lr": cfg["stage2_lr"] * 3}
    assert t.reset_config(other)
    reused, state, _ = run("emb", other, trainable=t)
    assert stage1_calls["emb"] == 2 and all(r["stage1_reused"] for r in reused)
    computed, state_computed, _ = run("emb", {**other, "stage1_cache": ""})
    assert_same(computed, reused, state_computed, state)


# ---- the key ------------------------------------------------------------------------------------
def changed(value):
    """Another value of the same type (the key is computed, not the config validated)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    return value + "-other"


def key_of(t, **replaced) -> str:
    """The trial's stage-1 cache key, with config fields replaced."""
    saved, t.cfg = t.cfg, dataclasses.replace(t.cfg, **replaced)
    try:
        return stage1_cache.cache_key(t.stage1_inputs(stage1_cache.state_digests(t.model.state_dict())))
    finally:
        t.cfg = saved


@pytest.mark.parametrize("method", STAGE1_METHODS)
def test_key_changes_with_every_stage1_input_and_nothing_else(method, tmp_path):
    t = get_method(method).trainable(config=config(method, tmp_path))
    key = key_of(t)
    assert key_of(t) == key  # deterministic
    for name in t.stage1_keys + ("seed", "num_threads", "data_seed", "max_train_samples", "val_fraction"):
        assert key_of(t, **{name: changed(getattr(t.cfg, name))}) != key, name
    for name in ("stage2_lr", "stage2_epochs", "data_root", "stage1_cache", "weights_path", "freeze_encoder"):
        assert key_of(t, **{name: changed(getattr(t.cfg, name))}) == key, name
    wrapped = tune.with_resources(get_method(method).trainable, {"cpu": 1})(config=t.config)
    assert key_of(wrapped) == key  # the class Ray runs wraps the method's: the same key
    with torch.no_grad():
        next(t.model.encoder.parameters()).add_(1e-3)  # other weights (same path): another key
    assert key_of(t) != key
    t.stop(), wrapped.stop()


def test_code_version_is_the_content_of_the_package(tmp_path):
    copy = tmp_path / "trainables"
    shutil.copytree(stage1_cache.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert stage1_cache.code_digest(copy) == stage1_cache.code_digest()
    (copy / "emb.py").write_text((copy / "emb.py").read_text() + "\n# an uncommitted edit\n")
    assert stage1_cache.code_digest(copy) != stage1_cache.code_digest()


@pytest.mark.parametrize("method", STAGE1_METHODS)
def test_config_fields_stage1_does_not_declare_do_not_change_it(method, tmp_path):
    """Every config field outside the key is one stage 1 does not read: changing it (to another
    valid value) leaves the stage-1 results and model bit-identical."""
    cls = get_method(method).trainable
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    assert set(BASE_STAGE1_KEYS + cls.stage1_keys) <= fields
    undeclared = fields - set(BASE_STAGE1_KEYS) - set(cls.stage1_keys)
    assert undeclared <= NOT_STAGE1.keys(), f"classify {sorted(undeclared - NOT_STAGE1.keys())} in NOT_STAGE1"
    cfg = config(method, tmp_path, cache=None, stage1_epochs=1, max_train_samples=32)
    base, state, _ = run(method, cfg, steps=1)
    for name in sorted(undeclared):
        other = {**cfg, name: NOT_STAGE1[name](cfg[name])} if NOT_STAGE1[name] else None
        if name == "stage1_cache":
            other = {**cfg, name: str(tmp_path / "another")}
        elif name == "data_root":
            other = {**cfg, name: str(tmp_path / "elsewhere")}
        if other is None:
            continue  # weights_path: the model's content is in the key, not its path
        results, other_state, _ = run(method, other, steps=1)
        assert_same(base, results, state, other_state)


# ---- racing trials ------------------------------------------------------------------------------
def _race_child(cfg: dict, barrier, queue) -> None:
    """One racing trial: computes stage 1, waits for the other at publish, then publishes."""
    original = stage1_cache.publish

    def publish_together(*args, **kwargs):
        barrier.wait(timeout=300)  # both computed (both missed): they publish at the same moment
        published = original(*args, **kwargs)
        queue.put(("published", published))
        return published

    stage1_cache.publish = publish_together
    results, state, _ = run("emb", cfg)
    queue.put(("results", [{k: r[k] for k in COMPARED} for r in results],
               stage1_cache.combined_digest(stage1_cache.state_digests(state))))


def test_two_trials_racing_on_one_key_publish_once(tmp_path, stage1_calls):
    cfg = config("emb", tmp_path)
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    children = [ctx.Process(target=_race_child, args=(cfg, barrier, queue)) for _ in range(2)]
    for c in children:
        c.start()
    messages = [queue.get(timeout=600) for _ in range(4)]
    for c in children:
        c.join(timeout=60)
        assert c.exitcode == 0
    published = [m[1] for m in messages if m[0] == "published"]
    finished = [m[1:] for m in messages if m[0] == "results"]
    assert sorted(published) == [False, True]  # exactly one publisher
    assert len(entries(tmp_path / "cache")) == 1 and entries(tmp_path / "cache")[0].endswith(".pt")  # no temp file
    reused, state, _ = run("emb", cfg)  # the one entry loads ...
    assert stage1_calls["emb"] == 0 and all(r["stage1_reused"] for r in reused)
    digest = stage1_cache.combined_digest(stage1_cache.state_digests(state))
    for results, child_digest in finished:  # ... and both racers ended as the reused run does
        assert_same(results, reused)
        assert child_digest == digest


# ---- corrupt entries ----------------------------------------------------------------------------
def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def unsafe_pickle(path) -> None:
    torch.save({"format": 1, "payload": datetime.datetime(2026, 1, 1)}, path)  # weights_only refuses it


def wrong_shapes(path) -> None:
    entry = torch.load(path, weights_only=True)
    entry["state"] = {k: torch.zeros(3) for k in entry["state"]}
    torch.save(entry, path)


def missing_rows(path) -> None:
    entry = torch.load(path, weights_only=True)
    del entry["rows"]
    torch.save(entry, path)


@pytest.mark.parametrize("corrupt", [truncate, unsafe_pickle, wrong_shapes, missing_rows])
def test_corrupt_entry_is_refused_in_one_line_and_replaced(corrupt, tmp_path, stage1_calls, caplog):
    cfg = config("emb", tmp_path)
    first, state_first, a = run("emb", cfg)
    path = stage1_cache.entry_path(cfg["stage1_cache"], a.s1.key)
    corrupt(path)
    with caplog.at_level(logging.WARNING, logger="trainables.stage1_cache"):
        again, state_again, _ = run("emb", cfg)
    refusals = [r for r in caplog.records if r.name == "trainables.stage1_cache"]
    assert len(refusals) == 1 and str(path) in refusals[0].getMessage()
    assert "\n" not in refusals[0].getMessage()
    assert stage1_calls["emb"] == 4 and not any(r["stage1_reused"] for r in again)  # recomputed
    assert_same(first, again, state_first, state_again)
    assert path.with_name(path.name + ".refused").exists()
    reused, state_reused, _ = run("emb", cfg)  # the replaced entry is good
    assert stage1_calls["emb"] == 4 and all(r["stage1_reused"] for r in reused)
    assert_same(first, reused, state_first, state_reused)


# ---- where the cache is: spec, CLI, config --------------------------------------------------------
def test_cache_location_from_the_flags(tmp_path, caplog):
    spec = dict(method="emb", data_dir=str(tmp_path), storage=str(tmp_path / "r"), name="x", **TOY)
    assert SweepSpec(**spec).resolve().trial_constants()["stage1_cache"] == str(tmp_path / "r" / "x" / "stage1_cache")
    shared = SweepSpec(**spec, stage1_cache=str(tmp_path / "shared")).resolve()
    assert shared.trial_constants()["stage1_cache"] == str(tmp_path / "shared")
    assert SweepSpec(**spec, no_stage1_cache=True).resolve().trial_constants()["stage1_cache"] == ""
    on_s3 = {**spec, "storage": "s3://bucket/results"}
    with caplog.at_level(logging.WARNING, logger="tuner.spec"):
        assert SweepSpec(**on_s3).resolve().trial_constants()["stage1_cache"] == ""
    assert [r.getMessage() for r in caplog.records if "stage-1 cache off" in r.getMessage()][0].count("s3://") == 1
    mounted = SweepSpec(**on_s3, stage1_cache=str(tmp_path / "nfs")).resolve()
    assert mounted.trial_constants()["stage1_cache"] == str(tmp_path / "nfs")
    for bad in ({"stage1_cache": "s3://bucket/cache"}, {"stage1_cache": str(tmp_path), "no_stage1_cache": True}):
        with pytest.raises(ValueError, match="--stage1-cache"):
            SweepSpec(**spec, **bad).resolve()
    args = parse_args(["--task", "t", "--method", "emb", "--stage1-cache", "c"])
    assert spec_from_args(args).stage1_cache == "c" and not spec_from_args(args).no_stage1_cache
    assert spec_from_args(parse_args(["--task", "t", "--method", "emb", "--no-stage1-cache"])).no_stage1_cache


def test_config_refuses_a_relative_or_remote_cache_directory(tmp_path):
    cfg = config("emb", tmp_path)
    for bad in ("relative/dir", "s3://bucket/cache"):
        with pytest.raises(ValueError, match="stage1_cache must be an absolute local"):
            get_method("emb").trainable.config_class.from_config({**cfg, "stage1_cache": bad})
    assert "stage1_cache" in {f.name for f in dataclasses.fields(TrialConfig)}


# ---- end to end through Ray and the store ----------------------------------------------------------
@pytest.mark.ray
def test_sweep_reuses_a_shared_stage1_and_the_store_records_it(ray_local, tmp_path):
    from tuner import experiment
    from tuner.store import read_history, read_trials

    spec = SweepSpec(method="emb", data_dir=str(tmp_path / "data"), max_epochs=1, max_train_samples=64,
                     storage=str(tmp_path / "r"), name="reuse", sensitivity="stage2_lr=1e-3,3e-3",
                     max_concurrent=1, **TOY)
    trials = experiment.run_experiment(spec.resolve()).trials
    assert len(trials) == 2 and (trials["status"] == "completed").all()
    assert sorted(trials["stage1_reused"].tolist()) == [False, True]
    reused = trials[trials["stage1_reused"]].iloc[0]
    computed = trials[~trials["stage1_reused"]].iloc[0]
    assert reused["stage1_saved_s"] > 0 and computed["stage1_saved_s"] == 0
    assert len(entries(tmp_path / "r" / "reuse" / "stage1_cache")) == 1
    history = read_history(str(tmp_path / "r"), "reuse")
    stage1 = history[history["stage"] == 1].sort_values("trial_id")
    mine = stage1[stage1["trial_id"] == reused["trial_id"]]
    theirs = stage1[stage1["trial_id"] == computed["trial_id"]]
    assert mine["stage1_reused"].all() and not theirs["stage1_reused"].any()
    assert mine["val_metric"].tolist() == theirs["val_metric"].tolist()  # the stored rows, replayed
    assert (mine["stage2_epoch"] == 0).all()  # ASHA's clock stands still in stage 1, as computed
