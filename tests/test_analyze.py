"""MoNA's analysis tools: the modality knowledge discrepancy (Alg. 2) and the linear-probe
distortion of source knowledge (Fig. 3), their store table, plot and command line."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from trial_configs import sample_config

from trainables.analysis.discrepancy import (
    adapt_inputs,
    check_classifier,
    disagreement,
    draw_experiments,
    experiment_streams,
    modality_discrepancy,
    value_range,
)
from trainables.analysis.distortion import (
    build_reference,
    encoder_features,
    encoder_from_state,
    linear_probe_error,
    load_probe_data,
    probe_encoder,
)
from trainables.registry import get_backbone, get_method
from tuner import analyze, mona_analyses, plot, store

# ------------------------------------------------------------------------------ discrepancy


def alg2_loop(logits: np.ndarray, labels: np.ndarray, subsets: np.ndarray, perms: np.ndarray) -> list[float]:
    """Alg. 2, lines 6-9, one experiment and one sample at a time (the slow reference)."""
    values = []
    for subset, perm in zip(subsets, perms):
        wrong = 0
        for z, y in zip(logits, labels):
            source_class = max(subset, key=lambda c: (z[c], -list(subset).index(c)))  # first max wins
            j = list(subset).index(source_class)  # the source class's slot = a target label
            wrong += j != perm[y]
        values.append(wrong / len(labels))
    return values


def test_disagreement_by_hand():
    z = np.array([[5, 1, 0], [0, 1, 5], [2, 9, 1], [1, 0, 1]], dtype=np.float32)  # (n=4, C_s=3)
    y = torch.tensor([1, 0, 1, 1])
    subsets = torch.tensor([[0, 2], [0, 2], [1, 2]])
    perms = torch.tensor([[1, 0], [0, 1], [0, 1]])
    # B={0,2}: arg-max slots [0, 1, 0, 0] (sample 3 ties: first slot); π=[1,0] maps y to [0, 1, 0, 0]
    # -> 0 wrong; π = identity -> 4 wrong. B={1,2}: slots [0, 1, 0, 1] vs y [1, 0, 1, 1] -> 3 wrong.
    got = disagreement(torch.from_numpy(z.T.copy()), y, subsets, perms)
    assert got.tolist() == [0.0, 1.0, 0.75]


def test_draws_are_sorted_subsets_and_permutations():
    subsets, perms = draw_experiments(*experiment_streams(3), num_source=9, k=4, count=500)
    assert subsets.shape == perms.shape == (500, 4)
    assert (np.diff(subsets, axis=1) > 0).all() and subsets.min() >= 0 and subsets.max() < 9
    assert (np.sort(perms, axis=1) == np.arange(4)).all()
    # every class is drawn: 500 subsets of 4 from 9 classes (each class ~222 times)
    assert set(np.unique(subsets)) == set(range(9))


def test_vectorised_matches_the_loop_reference():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(30, 12)).astype(np.float32)
    labels = rng.integers(0, 4, size=30)
    result = modality_discrepancy(logits, labels, num_classes=4, experiments=50, seed=5, batch_size=7)
    subsets, perms = draw_experiments(*experiment_streams(5), num_source=12, k=4, count=50)
    expected = alg2_loop(logits, labels, subsets, perms)
    np.testing.assert_allclose(result.values, expected, atol=1e-6)
    assert result.value == pytest.approx(min(expected))
    np.testing.assert_allclose(result.running_min, np.minimum.accumulate(expected), atol=1e-6)
    assert result.values[result.best] == result.value and result.values[:result.best].min() > result.value
    np.testing.assert_array_equal(result.best_subset, subsets[result.best])


def test_known_subset_and_permutation_give_zero_when_found():
    """Logits that reproduce the labels under subset B* and permutation π*: Alg. 2 finds D = 0."""
    rng = np.random.default_rng(0)
    subset, perm = np.array([1, 3, 4]), np.array([2, 0, 1])  # B* of 6 source classes, π*
    labels = np.repeat(np.arange(3), 20)
    logits = rng.normal(size=(60, 6)).astype(np.float32)
    logits[np.arange(60), subset[perm[labels]]] += 10.0  # the source class in slot π*(y) wins
    # P(a draw is (B*, π*)) = 1 / (C(6,3) · 3!) = 1/120; 3,000 draws miss it with P ~ 1e-11
    found = modality_discrepancy(logits, labels, num_classes=3, experiments=3000, seed=0)
    assert found.value == 0.0
    np.testing.assert_array_equal(found.best_subset, subset)
    np.testing.assert_array_equal(found.best_perm, perm)
    too_few = modality_discrepancy(logits, labels, num_classes=3, experiments=found.best, seed=0)
    assert too_few.value > 0.0  # no experiment before it finds a perfect match
    np.testing.assert_array_equal(too_few.values, found.values[:found.best])


def test_batch_size_does_not_change_the_result():
    rng = np.random.default_rng(2)
    logits, labels = rng.normal(size=(40, 20)).astype(np.float32), rng.integers(0, 5, size=40)
    runs = [modality_discrepancy(logits, labels, 5, experiments=200, seed=9, batch_size=b) for b in (1, 13, None)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.values, runs[0].values)


def test_discrepancy_refuses_bad_inputs():
    logits, labels = np.zeros((4, 3), np.float32), np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"\|Y\^s\| >= \|Y\^t\|"):
        modality_discrepancy(logits, labels, num_classes=4)
    with pytest.raises(ValueError, match="must lie in"):
        modality_discrepancy(logits, labels, num_classes=3)
    with pytest.raises(ValueError, match="without a classifier"):
        check_classifier(torch.nn.Linear(2, 2), "text")


def test_inputs_are_adapted_to_the_source_model():
    grey = torch.full((2, 1, 4, 4), 0.75)
    out = adapt_inputs(grey, side=8, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert out.shape == (2, 3, 8, 8) and torch.allclose(out, torch.ones_like(out))  # (0.75 - 0.5) / 0.25
    two = torch.stack([torch.zeros(4, 4), torch.ones(4, 4)])[None]  # (1, 2, 4, 4): channels averaged
    assert torch.allclose(adapt_inputs(two, 4, (0.5,) * 3, (1.0,) * 3), torch.zeros(1, 3, 4, 4))
    assert value_range(np.array([-2.0, 2.0])) == (-2.0, 2.0)
    scaled = adapt_inputs(torch.tensor([[[[-2.0, 2.0]]]]), 1, (0.0,) * 3, (1.0,) * 3, *value_range(np.array([-2.0, 2.0])))
    assert torch.allclose(scaled, torch.full((1, 3, 1, 1), 0.5))  # min-max to [0, 1], then resized


def test_cli_refuses_a_dense_task_in_one_line(capsys):
    assert analyze.main(["discrepancy", "--task", "test_toy_dense"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "classification tasks only" in err and "dense" in err
    assert analyze.main(["discrepancy", "--task", "test_toy_1d", "--backbone", "test_bert"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "without a classifier" in err


# ------------------------------------------------------------------------------- distortion


def test_probe_error_is_zero_on_separable_features_and_not_on_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    separable = np.eye(3)[y] * 5 + rng.normal(0, 0.1, size=(90, 3))  # (90, 3): one-hot clusters
    train, test = np.arange(0, 90, 2), np.arange(1, 90, 2)
    assert linear_probe_error(separable[train], y[train], separable[test], y[test]) == 0.0
    noise = rng.normal(size=(90, 3))
    assert linear_probe_error(noise[train], y[train], noise[test], y[test]) > 20.0  # chance is 66.7 %


@pytest.fixture(scope="module")
def tiny_reference():
    spec = get_backbone("test_efficientnet")
    return spec, build_reference(spec, "random", None, (1, 32, 32), 4, "classification", None, seed=0)


def test_the_reference_encoder_gives_the_same_value_twice(tmp_path, tiny_reference):
    spec, built = tiny_reference
    again = build_reference(spec, "random", None, (1, 32, 32), 4, "classification", None, seed=0)
    probe = load_probe_data(spec, tmp_path, (1, 32, 32), None, None, max_samples=150, seed=0)
    assert probe.x.shape == (150, 3, 32, 32) and len(probe.train) + len(probe.test) == 150
    first = probe_encoder(built.model.encoder, built.source_embedder, probe)
    second = probe_encoder(again.model.encoder, again.source_embedder, probe)
    assert first == second and 0.0 <= first <= 100.0


def test_encoder_from_state_takes_only_the_encoder(tiny_reference):
    _, built = tiny_reference
    state = {k: v + 1.0 if v.is_floating_point() else v for k, v in built.model.state_dict().items()}
    encoder = encoder_from_state(built.model.encoder, state)
    for name, value in encoder.state_dict().items():
        assert torch.equal(value, state[f"encoder.{name}"])
    assert not torch.equal(next(encoder.parameters()), next(built.model.encoder.parameters()))  # a copy
    with pytest.raises(ValueError, match="no 'encoder"):
        encoder_from_state(built.model.encoder, {"embedder.w": torch.zeros(1)})


def test_distortion_table_round_trip(tmp_path):
    assert list(store.read_distortion(str(tmp_path), "exp").columns) == list(store.DISTORTION_COLUMNS)
    row = {"experiment": "exp", "trial_id": "t1", "method": "mona", "probe_error": 12.5,
           "pretrained_probe_error": 10.0, "distortion": 2.5}
    store.append_rows(str(tmp_path), "exp", store.DISTORTION, [row])
    store.append_rows(str(tmp_path), "exp", store.DISTORTION, [{**row, "probe_error": 11.0}])  # last wins
    store.compact_store(str(tmp_path), "exp")
    back = store.read_distortion(str(tmp_path), "exp")
    assert back[["trial_id", "method", "probe_error", "pretrained_probe_error"]].to_dict("records") == [
        {"trial_id": "t1", "method": "mona", "probe_error": 11.0, "pretrained_probe_error": 10.0}]
    assert store.read_trials(str(tmp_path), "exp").empty  # the other tables are untouched


def _fake_experiment(storage, name: str, tmp_path):
    """A trials row and Ray-style checkpoints of one finetune trial on the toy task."""
    config = sample_config("finetune", tmp_path)
    trainable = get_method("finetune").trainable(config=config)
    trial_dir = storage / name / "FinetuneTrainable_abc12_00000"
    (trial_dir / "checkpoint_000000").mkdir(parents=True)
    trainable.save_checkpoint(str(trial_dir / "checkpoint_000000"))  # the untrained model
    trainable.train()
    (trial_dir / "checkpoint_000001").mkdir()
    trainable.save_checkpoint(str(trial_dir / "checkpoint_000001"))
    row = {"experiment": name, "trial_id": "abc12_00000", "status": "completed", "method": "finetune",
           "task": "test_toy_task", "test_metric": 50.0, **{f"config/{k}": v for k, v in config.items()}}
    store.append_rows(str(storage), name, store.TRIALS, [row])
    store.append_rows(str(storage), name, store.TRIALS, [{**row, "trial_id": "pruned1", "status": "pruned"}])
    return trainable


def test_distortion_of_an_experiment_end_to_end(tmp_path, tiny_reference):
    storage = tmp_path / "runs"
    trainable = _fake_experiment(storage, "exp", tmp_path)
    rows = mona_analyses.run_distortion(str(storage), "exp", max_samples=150)
    assert rows["trial_id"].tolist() == ["abc12_00000"]  # completed trials only
    spec, built = tiny_reference  # seed 0, as the trial's encoder_init="random" draws
    probe = load_probe_data(spec, tmp_path, (1, 32, 32), None, None, max_samples=150, seed=0)
    reference = probe_encoder(built.model.encoder, built.source_embedder, probe)
    final = probe_encoder(trainable.model.encoder, built.source_embedder, probe)
    got = rows.iloc[0]
    assert got["pretrained_probe_error"] == reference and got["probe_error"] == final
    assert got["checkpoint"].endswith("checkpoint_000001/state.pt")  # the last checkpoint
    assert math.isclose(got["distortion"], final - reference)
    trained = encoder_features(trainable.model.encoder, built.source_embedder, probe.x[:8])
    assert not np.allclose(trained, encoder_features(built.model.encoder, built.source_embedder, probe.x[:8]))
    stored = store.read_distortion(str(storage), "exp")
    assert stored["probe_error"].tolist() == [final]

    _, table = plot.plot_distortion(str(storage), ["exp"])
    assert table.to_dict("records") == [
        {"method": "finetune", "mean": final, "std": pytest.approx(float("nan"), nan_ok=True), "n": 1,
         "pretrained": reference}]
    assert plot.main(["distortion", "exp", "--storage", str(storage), "--out", str(tmp_path / "d.png")]) == 0
    assert (tmp_path / "d.png").stat().st_size > 0


def test_distortion_errors_are_one_line(tmp_path, capsys):
    assert analyze.main(["distortion", "nothing", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no experiment 'nothing'" in err
    assert plot.main(["distortion", "nothing", "--storage", str(tmp_path)]) == 2
    assert "run python -m tuner.analyze distortion" in capsys.readouterr().err
