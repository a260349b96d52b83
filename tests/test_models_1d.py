"""1D backbones: stack size, embedder, position offsets, encoder bypass, heads, weights, surrogates."""
from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from trial_configs import sample_config

from trainables.errors import DataError, MissingWeightsError
from trainables.models.backbones import create_source_model, pretrained_available
from trainables.models.crossmodal import build_model
from trainables.models.crossmodal_1d import (
    DenseHead1D,
    pretrained_position_ids,
    stack_size,
)
from trainables.models.text_backbones import (
    TEST_BERT_CONFIG,
    create_hf_offline,
    create_random_text_model,
    load_minilm_tokenizer,
    minilm_package_dir,
)
from trainables.registry import get_backbone, get_method, list_methods
from trainables.tasks.source_data import STDLIB_PACKAGES, load_text_surrogate

TINY_ROBERTA = {"model_type": "roberta", "vocab_size": 60, "hidden_size": 16, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 20,
                "type_vocab_size": 1, "pad_token_id": 1, "layer_norm_eps": 1e-5}


def tiny_roberta_spec():
    """roberta-base's registration with a tiny architecture (random weights only)."""
    return replace(get_backbone("roberta-base"), create_kwargs={"config": TINY_ROBERTA}, target_seq_len=8)


def build(spec, shape, k=3, output="classification", init="source", seed=0):
    torch.manual_seed(seed)
    source = create_source_model(spec, "random")
    reference = copy.deepcopy(source).eval()
    return build_model(source, spec, shape, k, output, init), reference


# ---- geometry ------------------------------------------------------------------------------------
@pytest.mark.parametrize("length,target,stack", [
    (1000, 64, 20), (1000, 512, 2), (46, 512, 1), (64, 16, 4), (97, 64, 97), (60, 7, 10), (8, 8, 1),
])
def test_stack_is_the_smallest_divisor_within_the_target(length, target, stack):
    assert stack_size(length, target) == stack
    assert length % stack == 0 and length // stack <= target
    assert all(length % i or length // i > target for i in range(1, stack))


def test_stack_refuses_empty_inputs():
    with pytest.raises(ValueError, match="target_seq_len"):
        stack_size(10, 0)


@pytest.mark.parametrize("shape,tokens", [((2, 64), 16), ((3, 100), 10), ((1, 13), 13), ((1, 17), 1)])
def test_embedder_shapes(shape, tokens):
    spec = get_backbone("test_bert")  # target_seq_len 16, width 32
    built, _ = build(spec, shape)
    out = built.model.embedder(torch.randn(5, *shape))
    assert out.shape == (5, tokens, 32) and built.grid == (1, tokens)
    assert built.model.embedder.num_tokens == tokens and built.model.embedder.stack == shape[1] // tokens
    assert built.model(torch.randn(5, *shape)).shape == (5, 3)
    with pytest.raises(ValueError, match="inputs"):
        built.model.embedder(torch.randn(5, shape[0], shape[1] + 1))


# ---- positions and source init ----------------------------------------------------------------
def test_pretrained_position_rows_roberta_offset_and_bert():
    roberta = create_random_text_model("r", TINY_ROBERTA).embeddings
    bert = create_random_text_model("b", TEST_BERT_CONFIG).embeddings
    assert pretrained_position_ids(roberta, 5).tolist() == [2, 3, 4, 5, 6]  # padding_idx 1 + 1
    assert pretrained_position_ids(bert, 5).tolist() == [0, 1, 2, 3, 4]
    # 20 rows, offset 2: at most 18 tokens
    assert pretrained_position_ids(roberta, 18).tolist()[-1] == 19
    with pytest.raises(ValueError, match="target_seq_len to at most 18"):
        pretrained_position_ids(roberta, 19)


def test_roberta_embedder_adds_the_rows_roberta_uses_for_inputs_embeds():
    """With a zero projection, LayerNorm(0) = β, so the embedder outputs β + P[2 + i]."""
    from transformers.models.roberta.modeling_roberta import RobertaEmbeddings

    spec = tiny_roberta_spec()
    built, reference = build(spec, (2, 40))  # stack 5 -> 8 tokens
    embedder = built.model.embedder
    with torch.no_grad():
        embedder.projection.weight.zero_()
        embedder.projection.bias.zero_()
        out = embedder(torch.randn(3, 2, 40))
    table = reference.embeddings.position_embeddings.weight
    ids = RobertaEmbeddings.create_position_ids_from_inputs_embeds(torch.zeros(1, 8, 16), padding_idx=1)[0]
    assert ids.tolist() == list(range(2, 10))
    expected = reference.embeddings.LayerNorm.bias + table[ids]  # (8, 16)
    torch.testing.assert_close(out, expected.expand(3, -1, -1))


@pytest.mark.parametrize("backbone", ["test_bert", "roberta"])
def test_source_init_copies_layernorm_and_positions_exactly(backbone):
    spec = tiny_roberta_spec() if backbone == "roberta" else get_backbone("test_bert")
    offset = 2 if backbone == "roberta" else 0
    built, reference = build(spec, (2, 64))
    n = built.model.embedder.num_tokens
    pre = reference.embeddings
    assert torch.equal(built.model.embedder.position_embeddings.detach(),
                       pre.position_embeddings.weight[offset:offset + n])
    assert torch.equal(built.model.embedder.norm.weight.detach(), pre.LayerNorm.weight)
    assert torch.equal(built.model.embedder.norm.bias.detach(), pre.LayerNorm.bias)
    assert built.model.embedder.norm.eps == pre.LayerNorm.eps


def test_random_init_reinitialises_layernorm_and_positions():
    spec = get_backbone("test_bert")
    source = create_source_model(spec, "random")
    with torch.no_grad():  # make the pretrained LayerNorm distinguishable from a fresh one
        source.embeddings.LayerNorm.weight.mul_(3.0)
    pre = copy.deepcopy(source.embeddings)
    built = build_model(source, spec, (2, 64), 3, "classification", "random")
    e = built.model.embedder
    assert torch.equal(e.norm.weight.detach(), torch.ones(32)) and torch.equal(e.norm.bias.detach(), torch.zeros(32))
    assert not torch.allclose(e.position_embeddings, pre.position_embeddings.weight[:16])
    assert 0.8 < e.position_embeddings.std().item() < 1.2  # N(0, 1), as ORCA's fresh nn.Embedding


# ---- encoder -------------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", ["test_bert", "roberta"])
def test_encoder_bypasses_embeddings_exactly(backbone):
    """encoder(embeddings(W)) of the cross-modal model == the original model on inputs_embeds=W."""
    spec = tiny_roberta_spec() if backbone == "roberta" else get_backbone("test_bert")
    built, reference = build(spec, (2, 64))
    encoder = built.model.encoder.eval()
    w = torch.randn(3, 7, encoder.out_dim)
    with torch.no_grad():
        expected = reference(inputs_embeds=w).last_hidden_state
        got = encoder(reference.embeddings(inputs_embeds=w))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert encoder.layout == "nld" and encoder.num_prefix_tokens == 0
    assert not any(n.startswith(("body.embeddings", "body.pooler")) for n, _ in encoder.named_parameters())


def test_source_embedder_is_the_frozen_pretrained_embeddings():
    spec = get_backbone("test_bert")
    built, reference = build(spec, (2, 64))
    ids = torch.randint(0, 30522, (4, 16))
    with torch.no_grad():
        torch.testing.assert_close(built.source_embedder(ids), reference.embeddings(input_ids=ids))
    features = torch.randn(4, 16, 32)
    assert built.source_embedder(features) is features  # ORCA's precomputed embeddings
    assert not any(p.requires_grad for p in built.source_embedder.parameters())
    assert not built.source_embedder.training


# ---- heads -----------------------------------------------------------------------------------
def test_dense_head_pools_features_per_token_and_unfolds():
    tokens = torch.arange(16.0).reshape(1, 2, 8)  # token 0: 0..7, token 1: 8..15
    out = DenseHead1D(num_outputs=2, stack=2)(tokens)
    # pool 8 -> 4 values per token: pairs' means; token n's values read as (channel, step)
    expected = torch.tensor([[[0.5, 2.5, 8.5, 10.5], [4.5, 6.5, 12.5, 14.5]]])
    torch.testing.assert_close(out, expected)


def test_dense_model_predicts_channels_by_length():
    built, _ = build(get_backbone("test_bert"), (2, 64), k=3, output="dense")
    assert built.model(torch.randn(4, 2, 64)).shape == (4, 3, 64)


# ---- weights ---------------------------------------------------------------------------------
def _sentence_embeddings(model, tokenizer, sentences):
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (B, T, D)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)  # mean over real tokens


def test_minilm_package_weights_are_the_real_model():
    from safetensors.torch import load_file

    model = create_source_model(get_backbone("all-minilm-l6-v2"), "pretrained").eval()
    shipped = load_file(str(minilm_package_dir() / "model.safetensors"))
    state = model.state_dict()
    assert all(torch.equal(state[k], shipped[k]) for k in state)  # every tensor from the package
    f = _sentence_embeddings(model, load_minilm_tokenizer("m"), [
        "A man is playing a guitar.", "Someone is playing the guitar.",
        "The stock market fell sharply on Monday.",
    ])
    paraphrase, unrelated = (f[0] @ f[1]).item(), (f[0] @ f[2]).item()
    assert paraphrase > 0.7 and unrelated < 0.3, (paraphrase, unrelated)


def test_missing_roberta_weights_is_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    spec = get_backbone("roberta-base")
    with pytest.raises(MissingWeightsError, match="--weights PATH.*--scale mini.*--init random"):
        create_source_model(spec, "pretrained")
    with pytest.raises(MissingWeightsError, match="no_such_dir"):
        create_source_model(spec, "pretrained", str(tmp_path / "no_such_dir"))
    assert not pretrained_available(spec)
    assert pretrained_available(get_backbone("all-minilm-l6-v2"))


def test_text_weights_load_from_a_named_directory_and_file(tmp_path):
    from safetensors.torch import save_file

    reference = create_random_text_model("test_bert", TEST_BERT_CONFIG)
    reference.save_pretrained(tmp_path / "ckpt")
    from_dir = create_hf_offline("test_bert", str(tmp_path / "ckpt"))
    # a checkpoint with a head: prefixed keys and extra tensors, as roberta-base's own file
    with_head = {f"bert.{k}": v.contiguous() for k, v in reference.state_dict().items() if not k.startswith("pooler.")}
    save_file({**with_head, "cls.bias": torch.zeros(3)}, str(tmp_path / "w.safetensors"))
    from_file = create_hf_offline("test_bert", str(tmp_path / "w.safetensors"), config=TEST_BERT_CONFIG)
    for key, value in reference.state_dict().items():
        assert torch.equal(from_dir.state_dict()[key], value), key
        if not key.startswith("pooler."):
            assert torch.equal(from_file.state_dict()[key], value), key
    save_file({"bert.embeddings.word_embeddings.weight": torch.zeros(2, 2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="missing"):
        create_hf_offline("test_bert", str(tmp_path / "bad.safetensors"), config=TEST_BERT_CONFIG)


# ---- source surrogates ----------------------------------------------------------------------
def test_stdlib_docstring_surrogate_is_labelled_english_of_exact_length():
    tokenizer = load_minilm_tokenizer("m")
    src = load_text_surrogate("stdlib-docstrings", ".", 32, lambda: tokenizer, max_samples=400, seed=1)
    assert src.x.shape == (400, 32) and src.x.dtype == np.int64 and src.num_classes == len(STDLIB_PACKAGES)
    assert set(np.unique(src.y)) == set(range(10))  # every package represented
    words = " ".join(tokenizer.decode(row) for row in src.x[src.y == STDLIB_PACKAGES.index("logging")][:20])
    assert " the " in words and "log" in words
    again = load_text_surrogate("stdlib-docstrings", ".", 32, lambda: tokenizer, max_samples=400, seed=1)
    other = load_text_surrogate("stdlib-docstrings", ".", 32, lambda: tokenizer, max_samples=400, seed=2)
    assert np.array_equal(src.x, again.x) and not np.array_equal(src.x, other.x)


def test_conll_surrogate_reads_orca_features_and_refuses_missing(tmp_path):
    with pytest.raises(DataError, match="text_xs.npy"):
        load_text_surrogate("conll2003", tmp_path, 8, lambda: None)
    xs = np.random.default_rng(0).normal(size=(6, 12, 4)).astype(np.float32)
    np.save(tmp_path / "text_xs.npy", xs)
    np.save(tmp_path / "text_ys.npy", np.array([0, 1, 2, 0, 1, 2]))
    src = load_text_surrogate("conll2003", tmp_path, 8, lambda: None)
    assert src.x.shape == (6, 12, 4) and src.num_classes == 3 and np.array_equal(src.x, xs)
    cut = load_text_surrogate("conll2003", tmp_path, 8, lambda: None, exact_length=True)
    assert np.array_equal(cut.x, xs[:, :8])
    with pytest.raises(DataError, match="12 tokens per sequence"):
        load_text_surrogate("conll2003", tmp_path, 16, lambda: None, exact_length=True)
    np.save(tmp_path / "text_ys.npy", np.array([{"a": 1}] * 6, dtype=object))
    with pytest.raises(DataError, match="pickled"):
        load_text_surrogate("conll2003", tmp_path, 8, lambda: None)


# ---- every method on the 1D toy task ---------------------------------------------------------
SMALL = {"stage1_epochs": 1, "stage2_epochs": 1, "source_samples": 64, "source_max_samples": 64,
         "max_train_samples": 48}


@pytest.mark.parametrize("method", list_methods(include_hidden=True))
def test_every_method_runs_on_the_1d_toy_task(method, tmp_path):
    config = sample_config(method, tmp_path, task="test_toy_1d", backbone="test_bert")
    config.update({k: v for k, v in SMALL.items() if k in config})
    trainable = get_method(method).trainable(config=config)
    embedder_before = [p.detach().clone() for p in trainable.model.embedder.parameters()]
    results = [trainable.train() for _ in range(sum(stage.epochs for stage in trainable.plan))]
    assert [r["stage"] for r in results] == [s.index for s in trainable.plan]
    assert all(math.isfinite(r["train_loss"]) for r in results)
    assert results[-1]["finished"] and math.isfinite(results[-1]["test_metric"])
    assert any(not torch.equal(a, b) for a, b in zip(embedder_before, trainable.model.embedder.parameters()))
    if hasattr(trainable, "source_y") and getattr(trainable, "source_x", None) is not None:
        assert trainable.source_x.shape[1] == trainable.model.embedder.num_tokens == 16
    trainable.stop()


@pytest.mark.parametrize("method", ["finetune++", "pare"])
def test_dense_1d_task_trains(method, tmp_path):
    config = sample_config(method, tmp_path, task="test_toy_1d_dense", backbone="test_bert")
    config.update({k: v for k, v in SMALL.items() if k in config})
    trainable = get_method(method).trainable(config=config)
    result = trainable.train()
    assert result["finished"] and math.isfinite(result["test_metric"])
    assert trainable.predict(trainable.data.x_val[:3]).shape == (3, 1, 64)
    trainable.stop()


def test_1d_trial_resumes_exactly(tmp_path):
    """A checkpoint after epoch 1 of 2 continues bit-for-bit (dropout RNG, gate, source batches)."""
    config = sample_config("pare", tmp_path, task="test_toy_1d", backbone="test_bert")
    config.update({k: v for k, v in SMALL.items() if k in config} | {"stage2_epochs": 2})
    a = get_method("pare").trainable(config=config)
    a.train()
    ckpt = a.save(str(tmp_path / "ckpt"))
    expected = a.train()
    b = get_method("pare").trainable(config=config)
    b.restore(ckpt)
    got = b.train()
    for key in ("train_loss", "val_metric", "test_metric", "loss_source", "otdd_intermediate_source"):
        assert got[key] == expected[key], key
    a.stop(), b.stop()
