"""MoNA: the alignment/uniformity loss, the meta-gradient (exact and finite-difference), and
the Trainable. Gradient checks run in float64 on the tiny timm ``test_efficientnet``
(SiLU: smooth, so central differences converge) through the functions MonaTrainable calls.
"""
from __future__ import annotations

import dataclasses
import math
import pickle

import optuna
import pytest
import torch
from trial_configs import sample_config

from search_spaces import mona as mona_space
from trainables.losses.alignment import (
    alignment_loss,
    davies_bouldin_loss,
    supervised_contrastive_loss,
    uniformity_loss,
)
from trainables.losses.task import cross_entropy
from trainables.models.backbones import create_source_model
from trainables.models.crossmodal import build_model
from trainables.mona import (
    has_grouped_convolution,
    LossDesign,
    MetaBatch,
    MonaConfig,
    math_attention,
    meta_gradient_exact,
    meta_gradient_finite_difference,
    meta_gradient_jvp,
    meta_gradient_reverse_over_forward,
    meta_gradient_unrolled,
    meta_params,
    mona_objective,
    needs_recorded_backward,
    non_smooth_activations,
    scratch_buffers,
)
from trainables.registry import get_backbone, get_method

LAM, ALPHA = 1.0, 0.1
SIDE = 32  # the toy task's side


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from 2 threads, and when the machine's 2 CPUs are shared,
    OpenMP's barriers can make a 0.1 s double backward take 40 s (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- helpers -----------------------------------------------------------------------------------
def tiny_model(dtype=torch.float64, seed: int = 0):
    """A toy-task-like model (1xSIDExSIDE -> 4 classes on test_efficientnet), stage-1 modes set."""
    torch.manual_seed(seed)
    spec = get_backbone("test_efficientnet")
    source_model = create_source_model(spec, "random")
    built = build_model(source_model, spec, (1, SIDE, SIDE), 4, "classification", "random")
    model, source = built.model.to(dtype), built.source_embedder.to(dtype)
    model.train()
    model.encoder.eval()  # as TwoStageTrainable.set_train_mode in stage 1
    return model, source


def tiny_batch(dtype=torch.float64, seed: int = 0) -> MetaBatch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 1, SIDE, SIDE, generator=g).to(dtype)  # 8 target inputs, 4 classes
    y = torch.randint(0, 4, (8,), generator=g)
    x_s = torch.rand(8, 3, SIDE, SIDE, generator=g).to(dtype)  # 8 source images, 2 per class
    return MetaBatch(x, y, x_s, y_s=torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors])


def embedder_names(model) -> list[str]:
    return [f"embedder.{n}" for n, _ in model.embedder.named_parameters()]


def objective_value(model, source, batch, phi_shift: dict, lam, steps) -> float:
    """L'(φ + shift): the virtual update recomputed from the shifted embedder."""
    params = meta_params(model)
    params.update({n: (params[n] + d).detach().requires_grad_(True) for n, d in phi_shift.items()})
    obj = mona_objective(model, source, params, batch, cross_entropy, lam, ALPHA, steps, create_graph=False)
    return obj.total.item()


# ---- alignment and uniformity --------------------------------------------------------------------
def test_alignment_is_zero_when_same_class_features_coincide():
    f = torch.nn.functional.normalize(torch.tensor([[1.0, 2.0], [1.0, 2.0], [-3.0, 1.0], [-3.0, 1.0]]), dim=1)
    assert alignment_loss(f, torch.tensor([0, 0, 1, 1])).item() == pytest.approx(0.0, abs=1e-6)
    # no two samples share a class: defined as 0 (nothing to align), not NaN
    assert alignment_loss(f[1:3], torch.tensor([0, 1])).item() == 0.0


def test_uniformity_of_antipodal_points():
    f = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    assert uniformity_loss(f).item() == pytest.approx(-8.0)  # log exp(-2 * |2|²)
    assert uniformity_loss(f, t=0.5).item() == pytest.approx(-2.0)


def test_alignment_and_uniformity_hand_computed():
    # e1, e2, -e1 with labels 0, 0, 1: d²(0,1) = 2, d²(0,2) = 4, d²(1,2) = 2.
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    assert alignment_loss(f, torch.tensor([0, 0, 1])).item() == pytest.approx(2.0)
    # all three share a class: mean of the six ordered pairs (2, 4, 2) * 2 / 6 = 8/3
    assert alignment_loss(f, torch.tensor([1, 1, 1])).item() == pytest.approx(8 / 3)
    expected = math.log((2 * math.exp(-4) + 2 * math.exp(-8) + 2 * math.exp(-4)) / 6)
    assert uniformity_loss(f).item() == pytest.approx(expected)
    # gradient of the alignment: d/df0 of (|f0 - f1|² * 2 / 2) = 2 (f0 - f1)
    f.requires_grad_(True)
    (grad,) = torch.autograd.grad(alignment_loss(f, torch.tensor([0, 0, 1])), f)
    expected_grad = torch.tensor([[2.0, -2.0], [-2.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(grad, expected_grad)


def test_supervised_contrastive_loss_by_hand():
    """e1, e1, e2, -e1 with labels 0, 0, 1, 1 and τ = 1. Dot products: f0·f1 = 1, f0·f2 = 0,
    f0·f3 = -1, f1 likewise, f2·f3 = 0. Anchors 0 and 1: positive dot 1 among {1, 0, -1}:
    -log(e / (e + 1 + 1/e)); anchors 2 and 3: positive dot 0 among {0, -1, 0} (for 2: f2·f0,
    f2·f1, f2·f3 = 0, 0, 0; for 3: -1, -1, 0): -log(1 / 3) and -log(1 / (2/e + 1)).
    """
    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    e = math.e
    l01 = -math.log(e / (e + 1 + 1 / e))
    l2 = -math.log(1 / 3)
    l3 = -math.log(1 / (2 / e + 1))
    expected = (2 * l01 + l2 + l3) / 4
    got = supervised_contrastive_loss(f, torch.tensor([0, 0, 1, 1]), temperature=1.0)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_davies_bouldin_loss_matches_scikit_learn():
    from sklearn.metrics import davies_bouldin_score

    g = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(24, 5, generator=g, dtype=torch.float64), dim=1)
    y = torch.arange(24) % 4
    assert davies_bouldin_loss(f, y).item() == pytest.approx(davies_bouldin_score(f.numpy(), y.numpy()), rel=1e-9)
    with pytest.raises(ValueError, match="two classes"):
        davies_bouldin_loss(f, torch.zeros(24, dtype=torch.long))


def test_losses_refuse_a_single_sample():
    with pytest.raises(ValueError, match="B >= 2"):
        uniformity_loss(torch.ones(1, 4))


# ---- the meta-gradient -------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 2])
def test_exact_meta_gradient_matches_central_differences_of_the_objective(steps):
    """<∇_φ L', u> equals [L'(φ + hu) - L'(φ - hu)] / 2h, θ*(φ ± hu) recomputed each time.

    One direction is the outer loss's own contribution to the gradient (exact minus λ = 0), on
    which a first-order gradient would be off by 100%; two are random.
    """
    model, source = tiny_model()
    batch = tiny_batch()
    names = embedder_names(model)
    grads = meta_gradient_exact(model, source, batch, cross_entropy, LAM, ALPHA, steps).grads
    direct = meta_gradient_exact(model, source, batch, cross_entropy, 0.0, ALPHA, steps).grads
    g = torch.Generator().manual_seed(1)
    directions = [[a - b for a, b in zip(grads, direct)]] + [
        [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in grads] for _ in range(2)]
    h = 1e-5
    for u in directions:
        norm = flat(u).norm()
        u = [t / norm for t in u]
        plus = objective_value(model, source, batch, {n: h * t for n, t in zip(names, u)}, LAM, steps)
        minus = objective_value(model, source, batch, {n: -h * t for n, t in zip(names, u)}, LAM, steps)
        numeric = (plus - minus) / (2 * h)
        analytic = torch.dot(flat(grads), flat(u)).item()
        # error relative to the gradient's norm (u is a unit vector); measured ~1e-9
        assert abs(analytic - numeric) < 1e-6 * flat(grads).norm().item(), (steps, analytic, numeric)
    # The first direction is not degenerate: the outer loss moves the gradient substantially.
    assert flat(directions[0]).norm() > 0.1 * flat(direct).norm()


def test_finite_difference_mode_matches_exact():
    """The outer-loss term -λα H v agrees: relative error < 1e-3 (float64; measured 3e-5, the
    O(r²) truncation of r = 0.01) and < 1e-2 in float32 (measured 1.3e-4)."""
    for dtype, tol in ((torch.float64, 1e-3), (torch.float32, 1e-2)):
        model, source = tiny_model(dtype)
        batch = tiny_batch(dtype)
        direct = flat(meta_gradient_exact(model, source, batch, cross_entropy, 0.0, ALPHA, 1).grads)
        exact = flat(meta_gradient_exact(model, source, batch, cross_entropy, LAM, ALPHA, 1).grads) - direct
        fd_step = meta_gradient_finite_difference(model, source, batch, cross_entropy, LAM, ALPHA)
        fd = flat(fd_step.grads) - direct
        assert ((fd - exact).norm() / exact.norm()).item() < tol, dtype
        assert torch.nn.functional.cosine_similarity(fd, exact, dim=0).item() > 1 - tol
        assert exact.norm() > 0.1 * direct.norm()  # the compared term is not negligible


def backbone_model(name: str, dtype=torch.float64):
    """A toy-task model on a registered backbone, random weights, stage-1 modes set."""
    torch.manual_seed(0)
    spec = get_backbone(name)
    built = build_model(create_source_model(spec, "random"), spec, (1, SIDE, SIDE), 4, "classification", "source")
    model, source = built.model.to(dtype), built.source_embedder.to(dtype)
    model.train()
    model.encoder.eval()
    return model, source


@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite0", "test_vit"])
def test_jvp_mode_equals_exact_on_the_default_backbone_and_a_gelu_transformer(backbone):
    """EfficientNet-Lite0 (ReLU6, BatchNorm; the embedded default) and a GELU ViT (attention):
    the forward-over-reverse product matches autograd through the inner step (measured 4e-14
    and 7e-14); central differences are ~44x off on the ReLU6 network and refused there. Both
    take the low-memory path (no recorded backward graph); the tiny SiLU EfficientNet of the
    other jvp tests takes the recorded one."""
    model, source = backbone_model(backbone)
    assert not needs_recorded_backward(model) and needs_recorded_backward(tiny_model()[0])
    batch = tiny_batch()
    with math_attention():
        direct = flat(meta_gradient_exact(model, source, batch, cross_entropy, 0.0, ALPHA, 1).grads)
        exact = flat(meta_gradient_exact(model, source, batch, cross_entropy, LAM, ALPHA, 1).grads) - direct
        jvp = flat(meta_gradient_jvp(model, source, batch, cross_entropy, LAM, ALPHA).grads) - direct
    assert exact.norm() > 1e-3 * direct.norm()  # the compared outer term is there
    assert ((jvp - exact).norm() / exact.norm()).item() < 1e-9
    assert non_smooth_activations(model) == (["ReLU6"] if backbone == "tf_efficientnet_lite0" else [])


def reference_exact(model, source, batch, lam, design=LossDesign()) -> tuple[torch.Tensor, float]:
    """The exact meta-gradient as first written (S = 1): one reverse pass through the unrolled,
    create_graph inner step. (``meta_gradient_unrolled`` is this, with the bookkeeping.)"""
    params = meta_params(model)
    phi = [params[n] for n in embedder_names(model)]
    obj = mona_objective(model, source, params, batch, cross_entropy, lam, ALPHA, 1, create_graph=True,
                         design=design)
    grads = torch.autograd.grad(obj.total, phi, allow_unused=True)
    return flat([torch.zeros_like(p) if g is None else g for g, p in zip(grads, phi)]), obj.total.item()


DESIGNS = [LossDesign(), LossDesign(inner_loss=False), LossDesign(outer_loss="supcon"),
           LossDesign(outer_loss="davies_bouldin")]


@pytest.mark.parametrize("backbone,design", [("test_efficientnet", d) for d in DESIGNS]
                         + [("tf_efficientnet_lite0", LossDesign())], ids=str)
def test_reverse_over_forward_equals_the_unrolled_exact_gradient(backbone, design):
    """The S = 1 path of the exact mode on grouped-convolution networks (SiLU + squeeze-excite;
    ReLU6 + BatchNorm, the embedded default) gives the unrolled double-backward gradient
    (measured ~1e-15 apart, relative to the outer part, in float64), for λ > 0 and λ = 0."""
    model, source = tiny_model() if backbone == "test_efficientnet" else backbone_model(backbone)
    assert has_grouped_convolution(model)
    batch = tiny_batch()
    direct, _ = reference_exact(model, source, batch, 0.0)  # ∇_φ L_inner
    outer_part, _ = reference_exact(model, source, batch, LAM, LossDesign(False, design.outer_loss))
    assert outer_part.norm() > 1e-6 * direct.norm()
    for lam, scale in ((LAM, outer_part.norm()), (0.0, direct.norm())):
        want, objective = reference_exact(model, source, batch, lam, design)
        step = meta_gradient_reverse_over_forward(model, source, batch, cross_entropy, lam, ALPHA, design=design)
        assert ((flat(step.grads) - want).norm() / scale).item() < 1e-9, lam
        assert step.objective == pytest.approx(objective, rel=1e-12, abs=1e-15)
        exact = meta_gradient_exact(model, source, batch, cross_entropy, lam, ALPHA, 1, design=design)
        assert torch.equal(flat(exact.grads), flat(step.grads))  # the exact mode takes this path


class GroupedConvAttention(torch.nn.Module):
    """A grouped convolution (so the exact mode tries reverse-over-forward) and a log-softmax in
    the encoder, whose forward-mode formula reverse mode cannot differentiate."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedder = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=4), torch.nn.BatchNorm2d(4))
        self.encoder = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1, groups=4), torch.nn.Flatten(2),
                                           Tokens())
        self.predictor = Pool(torch.nn.Linear(4, 4))

    def forward(self, x):
        return self.predictor(self.encoder(self.embedder(x)))


class Tokens(torch.nn.Module):
    def forward(self, x):  # (B, C, N) -> (B, N, C), a log-softmax over the channels
        return torch.log_softmax(torch.tanh(x.transpose(1, 2)), dim=-1)


class Pool(torch.nn.Module):
    def __init__(self, linear):
        super().__init__()
        self.linear = linear

    def forward(self, tokens):
        return self.linear(tokens.mean(dim=1))


def test_exact_mode_falls_back_to_unrolled_where_reverse_over_forward_fails():
    model = GroupedConvAttention().to(torch.float64).train()
    model.encoder.eval()
    source = torch.nn.Conv2d(3, 4, 3, stride=4).to(torch.float64).requires_grad_(False)
    batch = tiny_batch()
    with pytest.raises(RuntimeError):
        meta_gradient_reverse_over_forward(model, source, batch, cross_entropy, LAM, ALPHA)
    want, _ = reference_exact(model, source, batch, LAM)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = meta_gradient_exact(model, source, batch, cross_entropy, LAM, ALPHA, 1)  # fails, then unrolled
    assert step.fell_back
    assert ((flat(step.grads) - want).norm() / want.norm()).item() < 1e-12
    assert model.state_dict()["embedder.1.num_batches_tracked"] == before["embedder.1.num_batches_tracked"] + 1
    step = meta_gradient_exact(model, source, batch, cross_entropy, LAM, ALPHA, 1,
                               reverse_over_forward=False)  # unrolled straight away
    assert not step.fell_back
    assert ((flat(step.grads) - want).norm() / want.norm()).item() < 1e-12
    assert model.state_dict()["embedder.1.num_batches_tracked"] == before["embedder.1.num_batches_tracked"] + 2


def test_unrolled_on_scratch_buffers_moves_no_batchnorm_statistics():
    """The fallback's unrolled pass (after a failed reverse-over-forward one) runs on copies."""
    model, source = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    meta_gradient_unrolled(model, source, tiny_batch(), cross_entropy, LAM, ALPHA, 2, buffers=scratch_buffers(model))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_finite_difference_mode_is_refused_on_a_relu6_backbone(tmp_path):
    config = {**sample_config("mona", tmp_path, backbone="tf_efficientnet_lite0"), "meta_grad": "finite_difference",
              "inner_steps": 1}
    with pytest.raises(ValueError, match="finite_difference' is wrong on tf_efficientnet_lite0: its ReLU6 "
                                         "activations .* Use --set meta_grad=jvp"):
        get_method("mona").trainable(config=config)


@pytest.mark.parametrize("mode", ["exact", "jvp", "finite_difference"])
def test_without_inner_loss_the_meta_gradient_is_the_outer_part_alone(mode):
    """Table 6 "w/o L_inner": ∇_φ (λ L_outer) = g(λ) - g(0) of the full objective."""
    model, source = tiny_model()
    batch = tiny_batch()
    full = flat(meta_gradient_exact(model, source, batch, cross_entropy, LAM, ALPHA, 1).grads)
    direct = flat(meta_gradient_exact(model, source, batch, cross_entropy, 0.0, ALPHA, 1).grads)
    design = LossDesign(inner_loss=False)
    if mode == "exact":
        step = meta_gradient_exact(model, source, batch, cross_entropy, LAM, ALPHA, 1, design=design)
    elif mode == "jvp":
        step = meta_gradient_jvp(model, source, batch, cross_entropy, LAM, ALPHA, design=design)
    else:
        step = meta_gradient_finite_difference(model, source, batch, cross_entropy, LAM, ALPHA, design=design)
    tol = 1e-3 if mode == "finite_difference" else 1e-9
    assert ((flat(step.grads) - (full - direct)).norm() / (full - direct).norm()).item() < tol
    assert step.objective == pytest.approx(LAM * step.loss_outer)  # L' = λ L_outer


@pytest.mark.parametrize("outer", ["supcon", "davies_bouldin"])
def test_outer_loss_variants_reach_the_embedder_and_the_modes_agree(outer):
    model, source = tiny_model()
    batch = tiny_batch()
    design = LossDesign(outer_loss=outer)
    exact = meta_gradient_exact(model, source, batch, cross_entropy, LAM, ALPHA, 1, design=design)
    jvp = meta_gradient_jvp(model, source, batch, cross_entropy, LAM, ALPHA, design=design)
    direct = flat(meta_gradient_exact(model, source, batch, cross_entropy, 0.0, ALPHA, 1).grads)
    outer_part = flat(exact.grads) - direct
    assert outer_part.norm() > 1e-6 * direct.norm()
    assert ((flat(jvp.grads) - flat(exact.grads)).norm() / outer_part.norm()).item() < 1e-9
    assert exact.loss_outer != pytest.approx(exact.loss_align + exact.loss_uniform)  # not Eq. (4)


def test_outer_loss_reaches_the_embedder_only_through_second_order_terms():
    model, source = tiny_model()
    batch = tiny_batch()
    params = meta_params(model)
    phi = [params[n] for n in embedder_names(model)]
    exact = mona_objective(model, source, params, batch, cross_entropy, LAM, ALPHA, 1, create_graph=True)
    grads = torch.autograd.grad(exact.outer.total, phi)
    assert flat(grads).norm() > 1e-4
    # First-order (detached inner gradient, FOMAML): θ_f* no longer depends on φ, so the outer
    # loss contributes nothing to the embedder's gradient.
    first = mona_objective(model, source, params, batch, cross_entropy, LAM, ALPHA, 1, create_graph=False)
    assert first.outer.total.item() == pytest.approx(exact.outer.total.item(), rel=1e-12)
    assert all(g is None for g in torch.autograd.grad(first.outer.total, phi, allow_unused=True))
    # ... and the first-order gradient of L' is just ∇_φ L_inner, whatever λ.
    direct = torch.autograd.grad(first.inner, phi, retain_graph=True)
    torch.testing.assert_close(flat(torch.autograd.grad(first.total, phi)), flat(direct))


@pytest.mark.parametrize("mode", ["exact", "exact reverse-over-forward", "finite_difference", "jvp"])
def test_meta_gradient_leaves_the_model_parameters_untouched(mode):
    model, source = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = tiny_batch()
    if mode == "exact":
        meta_gradient_exact(model, source, batch, cross_entropy, LAM, ALPHA, 2)
    elif mode == "exact reverse-over-forward":  # S = 1 on this grouped-convolution network
        meta_gradient_exact(model, source, batch, cross_entropy, LAM, ALPHA, 1)
    elif mode == "jvp":
        meta_gradient_jvp(model, source, batch, cross_entropy, LAM, ALPHA)
    else:
        meta_gradient_finite_difference(model, source, batch, cross_entropy, LAM, ALPHA)
    for k, v in model.state_dict().items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(v, before[k]), k
    # the embedder's BatchNorm statistics advanced exactly once (one real forward per step)
    tracked = [k for k in before if k.startswith("embedder.") and k.endswith("num_batches_tracked")]
    assert tracked and all(model.state_dict()[k] == before[k] + 1 for k in tracked)
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before if k.startswith("encoder."))


# ---- config and space ---------------------------------------------------------------------------
def test_modes_and_ablations_are_settable_from_the_cli_and_checked(tmp_path):
    from tuner.spec import SweepSpec

    toy = dict(task="test_toy_task", scale="mini", backbone="test_efficientnet", init="random", data_dir=str(tmp_path))
    config = SweepSpec(method="mona", fixed=("meta_grad=jvp", "inner_loss=false", "outer_loss=supcon"),
                       **toy).resolve().default_config()
    assert (config["meta_grad"], config["inner_loss"], config["outer_loss"]) == ("jvp", False, "supcon")
    with pytest.raises(ValueError, match="outer_loss must be one of"):
        SweepSpec(method="mona", fixed=("outer_loss=contrastive",), **toy).resolve()
    with pytest.raises(ValueError, match="meta_grad='jvp' needs inner_steps == 1"):
        SweepSpec(method="mona", fixed=("meta_grad=jvp", "inner_steps=2"), **toy).resolve()


def test_config_refuses_finite_difference_with_several_inner_steps(tmp_path):
    config = {**sample_config("mona", tmp_path), "meta_grad": "finite_difference", "inner_steps": 2}
    with pytest.raises(ValueError, match=r"needs inner_steps == 1.*got inner_steps=2.*meta_grad='exact'"):
        MonaConfig.from_config(config)
    with pytest.raises(ValueError, match="meta_grad must be one of"):
        MonaConfig.from_config({**config, "meta_grad": "first_order"})
    with pytest.raises(ValueError, match="source_batch_size must be >= 2"):
        MonaConfig.from_config({**config, "meta_grad": "exact", "source_batch_size": 1})


def test_space_samples_valid_configs_and_defaults_are_in_range(tmp_path):
    fields = {f.name for f in dataclasses.fields(MonaConfig)}
    assert pickle.loads(pickle.dumps(mona_space.space)) is mona_space.space
    for seed in range(4):
        MonaConfig.from_config(sample_config("mona", tmp_path, seed=seed))  # exact key set, validated
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    mini = {"lr": 1e-3, "weight_decay": 1e-4, "epochs": 6, "task": "spherical", "modality": "2d", "scale": "mini"}
    constants = mona_space.space(trial, mini)
    dims = mona_space.defaults(mini)
    assert set(dims) == set(trial.params) and set(dims) | set(constants) <= fields
    for name, value in dims.items():
        dist = trial.distributions[name]
        ok = value in dist.choices if hasattr(dist, "choices") else dist.low <= value <= dist.high
        assert ok, (name, value)
    assert set(mona_space.ALIASES.values()) <= fields


# ---- the Trainable -----------------------------------------------------------------------------
def mona_config(tmp_path, **overrides) -> dict:
    return {**sample_config("mona", tmp_path), "stage1_epochs": 1, "stage2_epochs": 1, **overrides}


@pytest.mark.parametrize("mode,steps", [("exact", 2), ("finite_difference", 1), ("jvp", 1)])
def test_stage1_changes_only_the_embedder(tmp_path, mode, steps):
    t = get_method("mona").trainable(config=mona_config(tmp_path, meta_grad=mode, inner_steps=steps))
    rest = {k: v.clone() for k, v in t.model.state_dict().items() if not k.startswith("embedder.")}
    embedder = [p.clone() for p in t.model.embedder.parameters()]
    result = t.train()
    assert result["stage"] == 1 and result["stage_name"] == "meta_alignment"
    for k, v in t.model.state_dict().items():
        if not k.startswith("embedder."):
            assert torch.equal(v, rest[k]), k  # encoder and predictor bit-identical, BN stats too
    assert all(not torch.equal(a, b) for a, b in zip(embedder, t.model.embedder.parameters()))
    t.stop()


def test_lambda_zero_is_the_emb_update(tmp_path):
    """λ = 0: one stage-1 epoch of MoNA gives Emb's embedder (same batches, same AdamW)."""
    mona = mona_config(tmp_path, lam=0.0, inner_steps=1, stage1_lr=1e-2)
    emb_keys = {f.name for f in dataclasses.fields(get_method("emb").trainable.config_class)}
    emb = {k: v for k, v in mona.items() if k in emb_keys}
    emb["stage2_weight_decay"] = mona["stage1_weight_decay"]  # Emb's stage 1 uses stage 2's decay
    a, b = get_method("mona").trainable(config=mona), get_method("emb").trainable(config=emb)
    a.train(), b.train()
    for (k, va), vb in zip(a.model.embedder.state_dict().items(), b.model.embedder.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=1e-5, atol=1e-6, msg=k)  # weights and BN statistics
    a.stop(), b.stop()


def test_full_run_reports_finite_loss_parts(tmp_path):
    """The contract recipe's config (sweep constants + a space sample) runs both stages."""
    t = get_method("mona").trainable(config=mona_config(tmp_path))
    results = [t.train() for _ in range(sum(s.epochs for s in t.plan))]
    keys = ("loss_inner", "loss_outer", "loss_align", "loss_uniform")
    stage1, stage2 = results[0], results[-1]
    assert stage1["stage"] == 1 and all(math.isfinite(stage1[k]) for k in keys)
    assert stage1["loss_outer"] == pytest.approx(stage1["loss_align"] + stage1["loss_uniform"])
    assert stage1["loss_uniform"] < 0 and stage1["loss_align"] >= 0
    assert stage2["stage"] == 2 and all(k in stage2 and math.isnan(stage2[k]) for k in keys)
    assert stage2["finished"] and math.isfinite(stage2["test_metric"])
    t.stop()
