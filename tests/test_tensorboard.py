"""Tests of the TensorBoard callback (tuner/tensorboard.py): its hooks called with fake trials,
the event files read back with TensorBoard's own reader (scalars, HParams, purge on resume),
then in a real Tune sweep where it replaces Ray's default TBX logger."""
from __future__ import annotations

import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("tensorboardX", reason="tensorboardX comes with ray[tune]")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import metadata as hp_metadata  # noqa: E402

from tuner.store import read_trials, tensorboard_dir  # noqa: E402
from tuner.tensorboard import HPARAMS_METRICS, TrialTensorBoardCallback  # noqa: E402

STATIC = {"method": "toy_method", "task": "toy", "backbone": "none", "scale": "tiny",
          "code_version": "test"}


def _trial(trial_id, **config):
    return SimpleNamespace(trial_id=trial_id, config={"task": "toy", "max_it": 3, **config})


def _result(it, val, test=math.nan, **extra):
    return {"training_iteration": it, "time_total_s": float(it), "time_this_iter_s": 1.0,
            "timestamp": 1_700_000_000 + it, "val_metric": val, "best_val_metric": val,
            "test_metric": test, "train_loss": 2 * val, "stage": 1 if it == 1 else 2,
            "stage_name": "s", "finished": not math.isnan(test), "config": {"x": 1}, "pid": 3,
            "hist": [1, 2], "nested": {"a": 0.5}, **extra}


def _events(root, trial_id) -> EventAccumulator:
    acc = EventAccumulator(str(Path(tensorboard_dir(str(root), "exp"), trial_id)))
    acc.Reload()
    return acc


def _hparams(acc: EventAccumulator):
    """(the session's hparams, the experiment's hparam names, its metric tags)."""
    content = acc.PluginTagToContent(hp_metadata.PLUGIN_NAME)
    start = hp_metadata.parse_session_start_info_plugin_data(
        content[hp_metadata.SESSION_START_INFO_TAG])
    experiment = hp_metadata.parse_experiment_plugin_data(content[hp_metadata.EXPERIMENT_TAG])
    values = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
              for k, v in start.hparams.items()}
    return (values, {h.name for h in experiment.hparam_infos},
            {m.name.tag for m in experiment.metric_infos})


def _steps(acc, tag):
    return [(e.step, pytest.approx(e.value)) for e in acc.Scalars(tag)]


def test_scalars_and_hparams_round_trip(tmp_path):
    cb = TrialTensorBoardCallback(tmp_path, "exp", STATIC, varying_keys=("x", "seed", "opts"))
    done, pruned = _trial("t_done", x=0.1, seed=0, opts=[1, 2]), _trial("t_pruned", x=0.5, seed=1)
    for trial in (done, pruned):
        cb.on_trial_start(0, [], trial)
    cb.on_trial_result(0, [], done, _result(1, 0.9))
    cb.on_trial_result(0, [], pruned, _result(1, 0.8))
    cb.on_trial_result(0, [], done, _result(2, float("nan"), diverged=False))
    cb.on_trial_result(0, [], done, _result(3, 0.4, test=0.35))
    cb.on_trial_complete(0, [], done)
    cb.on_trial_error(0, [], pruned)

    acc = _events(tmp_path, "t_done")
    assert _steps(acc, "val_metric") == [(1, 0.9), (3, 0.4)]  # NaN at 2 not logged
    assert _steps(acc, "test_metric") == [(3, 0.35)]
    assert {"best_val_metric", "train_loss", "stage", "nested/a", "finished"} <= set(
        acc.Tags()["scalars"])
    assert not {"timestamp", "iteration", "pid", "config/x", "hist"} & set(acc.Tags()["scalars"])
    assert not any(t.startswith("ray/tune/") for t in acc.Tags()["scalars"])

    values, names, metrics = _hparams(acc)
    assert values == {**STATIC, "x": 0.1, "seed": 0.0, "opts": "[1, 2]"}
    assert metrics == set(HPARAMS_METRICS)
    assert names == {*STATIC, "x", "seed", "opts"}  # not the config's "task" and "max_it"
    # the later trial lists every name seen so far, though it lacks "opts"
    values, names, metrics = _hparams(_events(tmp_path, "t_pruned"))
    assert values == {**STATIC, "x": 0.5, "seed": 1.0}
    assert names == {*STATIC, "x", "seed", "opts"} and metrics == set(HPARAMS_METRICS)
    assert "test_metric" not in _events(tmp_path, "t_pruned").Tags()["scalars"]


def test_pickled_callback_resumes_a_trial_without_duplicate_steps(tmp_path):
    cb = TrialTensorBoardCallback(tmp_path, "exp", STATIC, varying_keys=("x", "seed", "opts"))
    trial = _trial("t1", x=0.1, seed=0)
    for it, val in [(1, 0.9), (2, 0.8), (3, 0.7)]:
        cb.on_trial_result(0, [], trial, _result(it, val))
    restored = pickle.loads(pickle.dumps(cb))  # with a writer open: not pickled
    assert restored._trial_writer == {} and restored.static == STATIC
    cb.on_experiment_end([])  # the first driver dies after iteration 3...
    # ...the restored one resumes from the checkpoint of iteration 2 and re-reports 3
    restored.on_trial_start(0, [], trial)
    restored.on_trial_result(0, [], trial, _result(3, 0.6))
    restored.on_trial_result(0, [], trial, _result(4, 0.5, test=0.45))
    restored.on_trial_complete(0, [], trial)
    acc = _events(tmp_path, "t1")
    assert _steps(acc, "val_metric") == [(1, 0.9), (2, 0.8), (3, 0.6), (4, 0.5)]
    assert _hparams(acc)[0]["x"] == 0.1


def test_bad_static_and_name_rejected(tmp_path):
    with pytest.raises(ValueError, match="scalars"):
        TrialTensorBoardCallback(tmp_path, "exp", {"method": ["a"]})
    with pytest.raises(ValueError, match="experiment name"):
        TrialTensorBoardCallback(tmp_path, "a/b", STATIC)
    with pytest.raises(ValueError, match="collection"):
        TrialTensorBoardCallback(tmp_path, "exp", STATIC, varying_keys="seed")


@pytest.mark.ray
def test_sweep_writes_tensorboard_runs_instead_of_rays(tmp_path, ray_local):
    """A real Tune run: one run per trial under <storage>/<exp>/tensorboard, named by the
    store's trial ids, HParams with the gridded key; Ray's own TBX logger is replaced (no event
    files in its trial directories) while its CSV / JSON loggers stay."""
    from ray import tune

    from test_store import MAX_IT, STATIC as STORE_STATIC, _config, _make_trainable, _tuner
    from tuner.store_callback import ResultsStoreCallback

    space = _config(tmp_path / "markers", x=tune.grid_search([0.3, 0.9]))
    (tmp_path / "markers").mkdir()
    callbacks = [ResultsStoreCallback(tmp_path, "exp", STORE_STATIC),
                 TrialTensorBoardCallback(tmp_path, "exp", STORE_STATIC, varying_keys=("x",))]
    assert not _tuner(tmp_path, _make_trainable(), space, callbacks=callbacks).fit().errors

    trials = read_trials(tmp_path, "exp")
    runs = sorted(p.name for p in Path(tensorboard_dir(str(tmp_path), "exp")).iterdir())
    assert runs == sorted(trials.trial_id)
    for trial_id, x in zip(trials.trial_id, trials["config/x"]):
        acc = _events(tmp_path, trial_id)
        assert [e.step for e in acc.Scalars("val_metric")] == list(range(1, MAX_IT + 1))
        values, names, metrics = _hparams(acc)
        assert values["x"] == pytest.approx(x) and values["method"] == STORE_STATIC["method"]
        assert {"method", "task", "backbone", "scale", "x"} <= names
        assert not {"kind", "max_it", "marker_dir"} & names
        assert metrics == set(HPARAMS_METRICS)
    exp_dir = tmp_path / "exp"
    events = [p.relative_to(exp_dir).parts[0] for p in exp_dir.rglob("events.out.tfevents.*")]
    assert set(events) == {"tensorboard"}  # none from Ray's own logger in its trial dirs
    assert len(list(exp_dir.glob("*/progress.csv"))) == 2  # Ray's CSV logger still runs
