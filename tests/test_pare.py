"""PaRe: token replacement rule, k schedules, relaxed top-k, loss weighting, full runs, checkpoints."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from trial_configs import sample_config

import trainables.pare
from search_spaces import pare as pare_space
from trainables.losses.task import bce_pos4
from trainables.models.crossmodal import to_tokens
from trainables.ot.otdd import SourceCache
from trainables.pare import (
    K_SCHEDULES,
    PareConfig,
    extra_term_weight,
    from_tokens,
    hard_topk_mask,
    k_at,
    pare_loss,
    relaxed_topk_mask,
    replace_tokens,
)
from trainables.registry import get_method, get_task
from tuner.spec import space_defaults


def pare_trainable(tmp_path, task="test_toy_task", **overrides):
    config = {**sample_config("pare", tmp_path, task=task), "k_schedule": "linear", "k_start": 0.75,
              "k_end": 0.25, "tau": 0.9, "max_train_samples": 96, **overrides}  # 6 batches of 16 per epoch
    return get_method("pare").trainable(config=config)


@pytest.mark.parametrize("k", range(11))
def test_replace_tokens_puts_top_source_tokens_at_lowest_target_positions(k):
    g = torch.Generator().manual_seed(k)
    b, n, d = 3, 10, 4
    target, source = torch.randn(b, n, d, generator=g), torch.randn(b, n, d, generator=g)
    s_tgt, s_src = torch.rand(b, n, generator=g), torch.rand(b, n, generator=g)
    mixed = replace_tokens(target, source, hard_topk_mask(s_src, k), hard_topk_mask(s_tgt, n - k))
    changed = (mixed != target).any(-1)  # (B, N)
    assert changed.sum(1).tolist() == [k] * b
    for i in range(b):
        lowest_target = sorted(torch.argsort(s_tgt[i])[:k].tolist())  # the rule: bottom-k target
        top_source = sorted(torch.argsort(s_src[i], descending=True)[:k].tolist())  # top-k source
        assert torch.nonzero(changed[i]).flatten().tolist() == lowest_target
        assert torch.equal(mixed[i, lowest_target], source[i, top_source])  # paired in index order
        kept = [j for j in range(n) if j not in lowest_target]
        assert torch.equal(mixed[i, kept], target[i, kept])


def test_replace_tokens_rejects_inconsistent_masks():
    t = torch.randn(2, 6, 3)
    with pytest.raises(ValueError, match="k ones"):
        replace_tokens(t, t, hard_topk_mask(torch.rand(2, 6), 2), hard_topk_mask(torch.rand(2, 6), 3))


@pytest.mark.parametrize("layout,shape", [("nchw", (2, 5, 3, 4)), ("nhwc", (2, 3, 4, 5)), ("nld", (2, 12, 5))])
def test_from_tokens_inverts_to_tokens(layout, shape):
    x = torch.randn(shape)
    grid = {"nchw": shape[2:4], "nhwc": shape[1:3], "nld": (1, 12)}[layout]
    assert torch.equal(from_tokens(to_tokens(x, layout), layout, tuple(grid)), x)


@pytest.mark.parametrize("family", K_SCHEDULES)
@pytest.mark.parametrize("n_epochs", [1, 2, 3, 6, 60])
def test_schedule_endpoints_and_monotone(family, n_epochs):
    n_tokens, start, end = 3136, 2000 / 3136, 500 / 3136
    ks = [k_at(e, n_epochs, n_tokens, family, start, end) for e in range(n_epochs)]
    assert ks[0] == 2000
    if n_epochs > 1:
        assert ks[-1] == 500
    assert all(a >= b for a, b in itertools.pairwise(ks))
    assert k_at(n_epochs + 5, n_epochs, n_tokens, family, start, end) == ks[-1]  # held after the end


def test_schedule_errors():
    with pytest.raises(ValueError, match="Unknown k schedule"):
        k_at(0, 5, 100, "quadratic", 0.5, 0.1)
    with pytest.raises(ValueError, match="k_start > 0 and k_end > 0"):
        k_at(1, 5, 100, "exponential", 0.5, 0.0)


def test_config_validation(tmp_path):
    base = sample_config("pare", tmp_path)
    for bad, match in [({"k_start": 0.2, "k_end": 0.4}, "k_end"), ({"k_schedule": "sqrt"}, "Unknown k schedule"),
                       ({"tau": 0.0}, "tau"), ({"warmup_epochs": -1}, "warmup_epochs"),
                       ({"k_schedule": "exponential", "k_end": 0.0}, "exponential")]:
        with pytest.raises(ValueError, match=match):
            PareConfig.from_config({**base, **bad})


@pytest.mark.parametrize("k", [0, 1, 7, 19, 20])
def test_relaxed_topk_forward_is_hard_mask_of_perturbed_scores(k):
    scores = torch.rand(4, 20, requires_grad=True)
    mask = relaxed_topk_mask(scores, k, tau=0.9, generator=torch.Generator().manual_seed(3))
    # the Gumbel noise written out (-log(-log u), u from the same seeded float32 generator)
    u = torch.rand(scores.shape, generator=torch.Generator().manual_seed(3)).clamp(torch.finfo(torch.float32).tiny,
                                                                                   1.0 - 1e-7)
    perturbed = scores.detach() + (-torch.log(-torch.log(u)))
    expected = torch.zeros(4, 20).scatter(1, torch.topk(perturbed, k, dim=1).indices, 1.0)
    assert torch.equal(mask, expected)  # exact straight-through value
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask.sum(1).tolist() == [k] * 4
    (mask * torch.arange(20.0)).sum().backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_pare_loss_matches_hand_computation():
    out = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    out_mixed = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    out_src = torch.tensor([[0.0, 0.0, math.log(2.0)], [1.0, 0.0, 0.0]])
    y, y_s = torch.tensor([0, 1]), torch.tensor([2, 0])
    k, n = 3, 12  # λ_k = k / N = 0.25

    def ce(logits, label):  # -log softmax by hand
        return -(logits[label] - math.log(sum(math.exp(v) for v in logits)))

    task = (ce([2.0, 0.0], 0) + ce([0.0, 1.0], 1)) / 2
    mixed = (ce([1.0, 1.0], 0) + ce([0.0, 3.0], 1)) / 2
    source = (ce([0.0, 0.0, math.log(2.0)], 2) + ce([1.0, 0.0, 0.0], 0)) / 2
    for weight in (1.0, 0.1, 0.3):
        parts = pare_loss(out, out_mixed, out_src, y, y_s, k / n, F.cross_entropy, weight)
        expected = task + weight * (0.75 * mixed + 0.25 * source)
        assert parts.total.item() == pytest.approx(expected, rel=1e-6)
        assert parts.task.item() == pytest.approx(task, rel=1e-6)
        assert parts.source.item() == pytest.approx(source, rel=1e-6)
    assert extra_term_weight("2d", "classification") == 1.0
    assert extra_term_weight("1d", "classification") == 0.1
    assert extra_term_weight("2d", "dense") == 0.3


def test_step_loss_uses_lambda_k_over_n(tmp_path, monkeypatch):
    t = pare_trainable(tmp_path)
    seen = {}
    real = trainables.pare.pare_loss

    def spy(*args, **kwargs):
        seen["lam"] = args[5]
        return real(*args, **kwargs)

    monkeypatch.setattr(trainables.pare, "pare_loss", spy)
    x, y = next(t.train_batches())
    x_s, y_s = t._paired_source(len(x))
    t.step_loss(x, y, x_s, y_s, k=37, relaxed=False)
    assert seen["lam"] == 37 / t.n_tokens


def test_gate_learns_in_warmup_only(tmp_path):
    t = pare_trainable(tmp_path, stage2_epochs=2, warmup_epochs=1)
    x, y = next(t.train_batches())
    x_s, y_s = t._paired_source(len(x))
    k = t.n_tokens // 2
    for relaxed in (True, False):
        t.model.zero_grad(set_to_none=True)
        t.step_loss(x, y, x_s, y_s, k, relaxed).total.backward()
        grad = t.model.pare.gate.weight.grad
        if relaxed:
            assert grad is not None and grad.abs().sum() > 0
        else:
            assert grad is None or not grad.any()
        assert t.model.pare.source_head.weight.grad.abs().sum() > 0
    gate0 = t.model.pare.gate.weight.detach().clone()
    t.train()  # warm-up epoch: the gate moves
    gate1 = t.model.pare.gate.weight.detach().clone()
    assert not torch.equal(gate0, gate1)
    t.train()  # hard top-k epoch: no gradient, AdamW skips it
    assert torch.equal(gate1, t.model.pare.gate.weight.detach())


@pytest.mark.parametrize("task", ["test_toy_task", "test_toy_dense"])
def test_full_run_reports_finite_keys_and_follows_schedule(tmp_path, task):
    t = pare_trainable(tmp_path, task=task, stage2_epochs=3, warmup_epochs=1)
    results = [t.train() for _ in range(3)]
    assert [r["stage"] for r in results] == [2, 2, 2] and results[-1]["finished"]
    for epoch, r in enumerate(results):
        for key in ("train_loss", "val_metric", *t.loss_part_keys):
            assert math.isfinite(r[key]), (key, r[key])
        assert r["k"] == round((0.75, 0.5, 0.25)[epoch] * t.n_tokens)  # linear, 3 epochs
        assert r["lambda_k"] == r["k"] / t.n_tokens
    assert results[0]["k"] == round(0.75 * t.n_tokens) and results[-1]["k"] == round(0.25 * t.n_tokens)
    assert math.isfinite(results[-1]["test_metric"])


def test_checkpoint_restores_next_step_exactly(tmp_path):
    overrides = {"stage2_epochs": 3, "warmup_epochs": 2}  # the restored step is a relaxed (random) one
    a = pare_trainable(tmp_path, **overrides)
    a.train()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    a.save_checkpoint(str(ckpt))
    expected = a.train()
    b = pare_trainable(tmp_path, **overrides)
    b.load_checkpoint(str(ckpt))
    got = b.train()
    assert got["train_loss"] == expected["train_loss"]
    assert got["k"] == expected["k"] and got["otdd_intermediate_source"] == expected["otdd_intermediate_source"]
    for name in ("gate", "source_head"):
        for (ka, va), (_, vb) in zip(getattr(a.model.pare, name).state_dict().items(),
                                     getattr(b.model.pare, name).state_dict().items()):
            assert torch.equal(va, vb), (name, ka)


def test_multi_hot_loss_is_the_public_twocls_objective():
    """FSD50K / DeepSEA (``cls_method: twocls``): BCE with pos_weight on the multi-hot target for
    the target and mixed terms, cross-entropy of the source head on the source labels."""
    out, out_mixed = torch.zeros(1, 2), torch.tensor([[math.log(3.0), 0.0]])
    out_src, y, y_s = torch.zeros(1, 4), torch.tensor([[1.0, 0.0]]), torch.tensor([2])
    log2 = math.log(2.0)
    task = (4 * log2 + log2) / 2  # pos_weight 4 on the positive entry, sigmoid(0) = 1/2 on both
    mixed = (4 * math.log(4 / 3) + log2) / 2  # sigmoid(log 3) = 3/4 on the positive entry
    source = math.log(4.0)  # uniform over 4 source classes
    parts = pare_loss(out, out_mixed, out_src, y, y_s, 0.25, bce_pos4, extra_term_weight("1d", "classification"))
    assert parts.total.item() == pytest.approx(task + 0.1 * (0.75 * mixed + 0.25 * source), rel=1e-6)


# ---- the search space at paper scale (public code) and at the embedded default -----------------
def _space_defaults(task, scale):
    return space_defaults(get_task(task), scale)


class _Ranges:
    """Records each suggest_* call's range and answers its low end."""

    def __init__(self):
        self.offered = {}

    def suggest_float(self, name, low, high, log=False):
        self.offered[name] = (low, high)
        return low

    def suggest_int(self, name, low, high):
        self.offered[name] = (low, high)
        return low

    def suggest_categorical(self, name, choices):
        self.offered[name] = tuple(choices)
        return choices[0]


@pytest.mark.parametrize("task,n_public", [("ecg", 50), ("satellite", 46), ("deepsea", 500)])
def test_paper_scale_1d_schedule_is_main_pare_1d(task, n_public):
    """main_PaRe_1d.py: k = int(32 - 32 ep / epochs) of N target tokens, `if ep < 5`, tau 0.9."""
    d = _space_defaults(task, "paper")
    settings = pare_space.paper_settings(d)
    assert settings["k_schedule"] == "linear" and settings["tau"] == 0.9
    assert settings["k_start"] == pytest.approx(32 / n_public) and settings["k_end"] == 0.0
    assert settings["warmup_epochs"] == 5
    assert k_at(0, d["epochs"], n_public, "linear", settings["k_start"], settings["k_end"]) == 32
    trial = _Ranges()
    pare_space.space(trial, d)
    (s_lo, s_hi), (e_lo, e_hi) = trial.offered["k_start"], trial.offered["k_end"]
    assert s_lo <= settings["k_start"] <= s_hi and s_hi == 1.0  # 1.0: all N tokens
    assert e_lo == 0.0 and e_hi <= s_lo  # disjoint: every sample has k_end <= k_start


def test_paper_scale_2d_schedule_and_embedded_default():
    paper = pare_space.defaults(_space_defaults("spherical", "paper"))
    assert (paper["k_start"], paper["k_end"]) == (2000 / 3136, 500 / 3136)
    assert (paper["warmup_epochs"], paper["tau"], paper["k_schedule"]) == (10, 0.9, "linear")
    mini_defaults = _space_defaults("spherical", "mini")
    mini = pare_space.defaults(mini_defaults)
    assert (mini["k_start"], mini["k_end"]) == (2000 / 3136, 500 / 3136)
    assert mini["warmup_epochs"] == pare_space.warmup_default(mini_defaults["epochs"])
    assert pare_space.paper_settings(mini_defaults) == {}
    for task in ("spherical", "japanesevowels"):  # 2-D and 1-D embedded: the CPU-sized ranges
        trial = _Ranges()
        pare_space.space(trial, _space_defaults(task, "mini"))
        assert (trial.offered["k_start"], trial.offered["k_end"]) == (pare_space.K_START_RANGE, pare_space.K_END_RANGE)


def test_paper_scale_1d_task_the_public_code_never_ran_has_no_paper_k_start():
    d = _space_defaults("japanesevowels", "paper")
    assert "k_start" not in pare_space.paper_settings(d) and pare_space.paper_settings(d)["k_end"] == 0.0
    assert pare_space.defaults(d)["k_start"] == 2000 / 3136


def test_otdd_refuses_multi_hot_labels_and_names_the_fix():
    """The crash of issue #13 on FSD50K / DeepSEA: multi-hot labels handed to OTDD as they are."""
    cache = SourceCache.build(torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2]))
    with pytest.raises(ValueError, match="target_labels"):
        cache.distance(torch.randn(4, 3), torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]]))
