"""ORCA: the label-aware OTDD against brute force, its source cache, gradients, and the trainable."""
from __future__ import annotations

import math

import numpy as np
import optuna
import ot
import pytest
import torch
from trial_configs import sample_config

from search_spaces import orca as orca_space
from trainables.orca import OrcaConfig, token_mean_features, weighted_class_otdd
from trainables.ot.labels import kmeans_pseudo_labels, target_labels
from trainables.ot.otdd import SourceCache, half_sq_distances, otdd, self_ot_cost
from trainables.registry import get_method


def _labelled_clouds(n: int, k: int, d: int, shift: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    centres = torch.randn(k, d, generator=g, dtype=torch.float64) * 2
    return centres[y] + shift + torch.randn(n, d, generator=g, dtype=torch.float64), y


def _brute_force_otdd(xs: np.ndarray, ys: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> float:
    """Exact OTDD by explicit loops: W by ot.emd2 between class clouds, then the full cost."""
    def half_sq(a, b):
        return np.array([[0.5 * sum((a[i, k] - b[j, k]) ** 2 for k in range(a.shape[1]))
                          for j in range(len(b))] for i in range(len(a))])

    def emd(cost):
        return ot.emd2(np.full(cost.shape[0], 1 / cost.shape[0]), np.full(cost.shape[1], 1 / cost.shape[1]), cost)

    cs, ct = sorted(set(ys.tolist())), sorted(set(yt.tolist()))
    w = {(a, b): emd(half_sq(xs[ys == a], xt[yt == b])) for a in cs for b in ct}
    cost = np.zeros((len(xs), len(xt)))
    for i in range(len(xs)):
        for j in range(len(xt)):
            cost[i, j] = 0.5 * sum((xs[i, k] - xt[j, k]) ** 2 for k in range(xs.shape[1])) + w[ys[i], yt[j]]
    return emd(cost)


@pytest.mark.parametrize("target_classes", [1, 2])
def test_exact_otdd_equals_brute_force(target_classes):
    xs, ys = _labelled_clouds(12, 3, 2, 0.0, seed=0)
    xt, yt = _labelled_clouds(9, target_classes, 2, 1.0, seed=1)
    yt = yt + 5  # label sets need not match
    expected = _brute_force_otdd(xs.numpy(), ys.numpy(), xt.numpy(), yt.numpy())
    assert otdd(xs, ys, xt, yt, solver="emd").item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("solver", ["emd", "sinkhorn"])
def test_cached_source_side_equals_recomputing_it(solver):
    xs, ys = _labelled_clouds(40, 3, 4, 0.0, seed=2)
    cache = SourceCache.build(xs, ys, solver, 0.1)
    for seed in (3, 4):
        xt, yt = _labelled_clouds(15, 2, 4, 0.5, seed=seed)
        cached = otdd(xs, ys, xt, yt, solver, 0.1, cache=cache)
        fresh = otdd(xs, ys, xt, yt, solver, 0.1)
        assert cached.item() == pytest.approx(fresh.item(), rel=1e-10, abs=1e-10)
    with pytest.raises(ValueError, match="does not match"):
        otdd(xs + 1, ys, xt, yt, solver, 0.1, cache=cache)


def test_unknown_solver_lists_the_valid_ones():
    x, y = _labelled_clouds(6, 2, 2, 0.0, seed=0)
    with pytest.raises(ValueError, match="Unknown OT solver 'exact'. Valid: emd, sinkhorn"):
        otdd(x, y, x, y, solver="exact")


@pytest.mark.filterwarnings("ignore:Sinkhorn did not converge")
def test_sinkhorn_with_small_reg_approaches_emd():
    xs, ys = _labelled_clouds(30, 3, 3, 0.0, seed=5)
    xt, yt = _labelled_clouds(20, 2, 3, 1.0, seed=6)
    exact = otdd(xs, ys, xt, yt, "emd").item()
    gaps = [abs(otdd(xs, ys, xt, yt, "sinkhorn", reg).item() - exact) / exact for reg in (0.1, 0.03, 0.003)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.005, gaps  # measured 9%, 3.3%, 0.2%


def test_symmetric_self_term_matches_pot():
    x, _ = _labelled_clouds(50, 2, 3, 0.0, seed=7)
    cost = half_sq_distances(x, x)
    a = torch.full((50,), 1 / 50, dtype=torch.float64)
    for eps in (0.5, 5.0):
        pot = ot.solve(cost, a, a, reg=eps, reg_type="KL", max_iter=100_000, tol=1e-12).value
        assert self_ot_cost(cost, eps).item() == pytest.approx(pot.item(), rel=1e-8)


@pytest.mark.parametrize("solver", ["emd", "sinkhorn"])
def test_gradient_reaches_the_embedder_and_steps_lower_the_otdd(solver):
    torch.manual_seed(0)
    source_x, source_y = _labelled_clouds(60, 3, 8, 0.0, seed=8)
    cache = SourceCache.build(source_x, source_y, solver, 0.1)
    embedder = torch.nn.Conv2d(1, 8, kernel_size=4, stride=4)  # (B, 1, 16, 16) -> (B, 8, 4, 4)
    images = torch.randn(24, 1, 16, 16)
    positions = torch.arange(24) % 2
    optimiser = torch.optim.Adam(embedder.parameters(), lr=0.05)
    values = []
    for _ in range(8):
        feats = token_mean_features(embedder, images, "nchw")  # (24, 8)
        loss = weighted_class_otdd(feats, positions, (0.5, 0.5), cache)
        optimiser.zero_grad()
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in embedder.parameters())
        optimiser.step()
        values.append(loss.item())
    assert values[-1] < 0.8 * values[0], values


def test_kmeans_pseudo_labels_are_k_clusters_and_seeded():
    y = np.random.default_rng(0).normal(size=(200, 1, 4, 4)).astype(np.float32)
    labels = kmeans_pseudo_labels(y, 10, seed=3)
    assert labels.shape == (200,) and labels.dtype == np.int64 and set(labels.tolist()) == set(range(10))
    assert np.array_equal(labels, kmeans_pseudo_labels(y, 10, seed=3))
    assert np.array_equal(target_labels(y, 10, 3), labels)
    classes = np.array([3, 1, 3, 2])
    assert np.array_equal(target_labels(classes, 10, 3), classes)  # class indices are kept
    with pytest.raises(ValueError, match="at least k=10"):
        kmeans_pseudo_labels(y[:5], 10, seed=0)


MINI_DEFAULTS = {"lr": 1e-3, "weight_decay": 1e-4, "epochs": 6, "task": "spherical", "modality": "2d", "scale": "mini"}


def test_space_keys_equal_the_config_fields(tmp_path):
    fields = set(OrcaConfig.__dataclass_fields__)
    for seed in range(6):
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
        extra = orca_space.space(trial, defaults=MINI_DEFAULTS)
        keys = set(trial.params) | set(extra)
        assert keys <= fields and not set(trial.params) & set(extra)
        assert ("ot_reg" in trial.params) == (trial.params["ot_solver"] == "sinkhorn")
        assert keys == set(orca_space.defaults(MINI_DEFAULTS))
    config = sample_config("orca", tmp_path)
    with pytest.raises(ValueError, match="Unknown OT solver"):
        OrcaConfig.from_config({**config, "ot_solver": "wasserstein"})
    with pytest.raises(ValueError, match="target_samples_per_class"):
        OrcaConfig.from_config({**config, "target_samples_per_class": 1})


def _orca_config(tmp_path, **overrides) -> dict:
    config = sample_config("orca", tmp_path, **{k: overrides.pop(k) for k in ("task",) if k in overrides})
    return {**config, "stage1_epochs": 2, "stage2_epochs": 1, "ot_solver": "emd", "ot_reg": 0.1, **overrides}


def test_stage1_changes_only_the_embedder(tmp_path):
    t = get_method("orca").trainable(config=_orca_config(tmp_path))
    frozen = {k: v.clone() for k, v in t.model.state_dict().items() if not k.startswith("embedder.")}
    embedder = {k: v.clone() for k, v in t.model.embedder.state_dict().items()}
    result = t.train()
    assert result["stage"] == 1 and result["stage_name"] == "otdd_alignment"
    assert math.isfinite(result["otdd"]) and result["otdd"] == result["train_loss"]
    for k, v in t.model.state_dict().items():
        if not k.startswith("embedder."):
            assert torch.equal(v, frozen[k]), k  # encoder and predictor weights, BatchNorm statistics
    assert any(not torch.equal(v, embedder[k]) for k, v in t.model.embedder.state_dict().items())
    t.stop()


def test_two_pass_gradient_equals_one_graph(tmp_path):
    """Pass 1 without a graph + pass 2 per chunk gives the gradient of one graph over the chunks."""
    t = get_method("orca").trainable(config=_orca_config(tmp_path))
    t.set_train_mode()
    x = t.train_x[:40]
    positions = (torch.arange(40) % 2)
    weights = (0.5, 0.5)
    state = {k: v.clone() for k, v in t.model.embedder.state_dict().items()}
    feats = t._features_without_graph(x).requires_grad_(True)
    weighted_class_otdd(feats, positions, weights, t.source_cache).backward()
    t.model.embedder.zero_grad()
    t._backprop_features(x, feats.grad)
    two_pass = [p.grad.clone() for p in t.model.embedder.parameters()]
    t.model.embedder.load_state_dict(state)  # same BatchNorm statistics for the reference
    t.model.embedder.zero_grad()
    graph = torch.cat([token_mean_features(t.model.embedder, chunk, "nchw") for _, chunk in t._chunks(x)])
    assert torch.allclose(graph.detach(), feats.detach(), atol=1e-6)
    weighted_class_otdd(graph, positions, weights, t.source_cache).backward()
    for a, b in zip(two_pass, (p.grad for p in t.model.embedder.parameters())):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    t.stop()


@pytest.mark.parametrize("task", ["test_toy_task", "test_toy_dense"])
def test_full_run_stage1_then_stage2(task, tmp_path):
    config = _orca_config(tmp_path, task=task)
    t = get_method("orca").trainable(config=config)
    results = [t.train() for _ in range(3)]
    assert [r["stage"] for r in results] == [1, 1, 2]
    assert all(math.isfinite(r["otdd"]) for r in results[:2]) and math.isnan(results[2]["otdd"])
    assert results[-1]["finished"] and math.isfinite(results[-1]["test_metric"])
    assert len(t.target_classes.members) == (4 if task == "test_toy_task" else config["num_pseudo_labels"])
    t.stop()
