"""The cross-modal model g = predictor ∘ encoder ∘ embedder (ORCA; MoNA Appendix A.2).

The encoder is the pretrained source body. The target embedder is a copy of the backbone's
own stem (timm's ``patch_embed`` for Swin/ViT, ``conv_stem`` + ``bn1`` for EfficientNet) with
its input convolution re-made for the task's channel count, so any timm model whose stem is
named in its ``BackboneSpec`` plugs in. The pretrained stem is kept, frozen, as the source
embedder that stage-1 methods (ORCA, MoNA, PaRe) feed source-surrogate images through.

1D backbones (transformers text models) get the pieces of ``crossmodal_1d``: a Conv1d patch
embedder with the backbone's LayerNorm and position embeddings, the body called with
``inputs_embeds``, and the pretrained embeddings module as the source embedder.

Deviation (documented): for CNN backbones the "tokens" are the spatial positions of the
feature map; for the embedded EfficientNet-Lite0 the input keeps its native size (no resize
to 224, which only Swin's fixed windows need), DESIGN §9.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainables.models.crossmodal_1d import (
    DenseHead1D,
    Embedder1D,
    SourceEmbedder1D,
    TextEncoder,
    pretrained_position_ids,
    stack_size,
)
from trainables.registry import BackboneSpec

EMBEDDER_INITS = ("random", "source")


def first_conv(module: nn.Module) -> nn.Conv2d:
    """The first Conv2d inside ``module`` (the stem's input projection)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise ValueError(f"no Conv2d in stem {type(module).__name__}")


def reset_all_parameters(module: nn.Module) -> None:
    """Re-initialise every submodule that knows how (random init of a copied stem)."""
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()


class Embedder2D(nn.Module):
    """Resize (optional) then the backbone's stem with a ``in_channels``-channel input conv.

    Source init copies the pretrained stem and adapts its input conv with timm's
    ``adapt_input_conv`` (1 channel: sum of the RGB filters; C > 3: the RGB filters repeated
    cyclically and scaled by 3/C), so an input constant across channels gives the pretrained
    response. Random init re-initialises every parameter of the copy.
    """

    def __init__(self, stem: nn.Module, in_channels: int, input_size: int | None, init: str):
        from timm.models import adapt_input_conv  # imported where used: ~5 s (torchvision, torch._dynamo)

        super().__init__()
        if init not in EMBEDDER_INITS:
            raise ValueError(f"embedder init must be one of {EMBEDDER_INITS}, got {init!r}")
        self.input_size = input_size
        self.stem = copy.deepcopy(stem)
        conv = first_conv(self.stem)
        weight = conv.weight.detach()
        conv.in_channels = in_channels
        conv.weight = nn.Parameter(adapt_input_conv(in_channels, weight.clone()))
        if init == "random":
            reset_all_parameters(self.stem)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and x.shape[-2:] != (self.input_size, self.input_size):
            # (B, C, H, W) -> (B, C, S, S): the backbone's fixed input side (Swin: 224).
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.stem(x)


def to_tokens(x: torch.Tensor, layout: str) -> torch.Tensor:
    """(B, N, D) tokens from a stem or body output in ``layout`` (see ``BackboneSpec``)."""
    if layout == "nhwc":
        return x.flatten(1, 2)  # (B, h, w, D) -> (B, h*w, D)
    if layout == "nchw":
        return x.flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, h*w, D)
    if layout == "nld":
        return x  # already (B, N, D)
    raise ValueError(f"unknown layout {layout!r}")


class Encoder(nn.Module):
    """The pretrained body: the source model with its stem removed; returns (B, N, D) tokens."""

    def __init__(self, body: nn.Module, layout: str):
        super().__init__()
        if layout not in ("nhwc", "nchw", "nld"):
            raise ValueError(f"unknown layout {layout!r}")
        self.body = body
        self.layout = layout
        self.out_dim = body.num_features
        self.num_prefix_tokens = getattr(body, "num_prefix_tokens", 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ViT: (B, P+N, D) -> (B, N, D), dropping the cls/register tokens
        return to_tokens(self.body.forward_features(x), self.layout)[:, self.num_prefix_tokens:]


class ClassificationHead(nn.Module):
    """Mean-pool tokens, then Linear(D -> K)."""

    def __init__(self, dim: int, num_outputs: int):
        super().__init__()
        self.fc = nn.Linear(dim, num_outputs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(tokens.mean(dim=1))  # (B, N, D) -> (B, D) -> (B, K)


class DenseHead2D(nn.Module):
    """ORCA's dense predictor: 1x1 conv D -> 3·s², PixelShuffle(s), channel-pool to K, resize.

    ``s`` is the encoder's output stride (32 for Swin-B on 224: 7x7 -> 224x224), ``grid`` the
    encoder's (h, w) token grid and ``out_hw`` the task's target size.
    """

    def __init__(self, dim: int, num_outputs: int, grid: tuple[int, int], stride: int, out_hw: tuple[int, int]):
        super().__init__()
        self.grid, self.out_hw, self.num_outputs = grid, out_hw, num_outputs
        self.proj = nn.Conv2d(dim, 3 * stride * stride, kernel_size=1)
        self.shuffle = nn.PixelShuffle(stride)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, _, d = tokens.shape
        x = tokens.transpose(1, 2).reshape(b, d, *self.grid)  # (B, N, D) -> (B, D, h, w)
        x = self.shuffle(self.proj(x))  # (B, 3·s², h, w) -> (B, 3, h·s, w·s)
        h, w = x.shape[-2:]
        # Average-pool the 3 channels to K: (B, 3, H, W) -> (B, H·W, 3) -> (B, H·W, K) -> (B, K, H, W)
        x = F.adaptive_avg_pool1d(x.flatten(2).transpose(1, 2), self.num_outputs).transpose(1, 2)
        x = x.reshape(b, self.num_outputs, h, w)
        return F.adaptive_avg_pool2d(x, self.out_hw)


class CrossModalModel(nn.Module):
    def __init__(self, embedder: nn.Module, encoder: nn.Module, predictor: nn.Module):
        super().__init__()
        self.embedder, self.encoder, self.predictor = embedder, encoder, predictor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.encoder(self.embedder(x)))


@dataclass
class BuiltModel:
    """The trained model and the frozen pretrained stem stage-1 methods need."""

    model: CrossModalModel
    source_embedder: nn.Module  # pretrained stem (2D: 3-channel images; 1D: token ids), requires_grad False
    grid: tuple[int, int]  # encoder token grid for the task's input size ((1, N) for 1D)


def split_source_model(source_model: nn.Module, spec: BackboneSpec) -> tuple[nn.Module, nn.Module]:
    """Detach the stem modules named by ``spec`` from ``source_model`` (in place).

    Returns:
        (stem, body): the stem as an ``nn.Sequential``; the body with the stem replaced by
        ``nn.Identity`` and the classifier removed.
    """
    stem = nn.Sequential(*[getattr(source_model, name) for name in spec.stem])
    for name in spec.stem:
        setattr(source_model, name, nn.Identity())
    source_model.reset_classifier(0)
    return stem, source_model


def build_model(
    source_model: nn.Module,
    spec: BackboneSpec,
    input_shape: tuple[int, ...],
    num_outputs: int,
    output: str,
    embedder_init: str,
    max_tokens: int | None = None,
) -> BuiltModel:
    """Assemble embedder, encoder and predictor around ``source_model`` (consumed).

    Args:
        input_shape: the task's (C, H, W) (2D backbones) or (C, L) (1D backbones).
        output: "classification" or "dense" (dense predicts (K, H, W), or (K, L) in 1D).
        embedder_init: "source" (copy the pretrained stem) or "random".
        max_tokens: 1D only: a task's own, lower token limit (ORCA's per-task
            ``target_seq_len``, e.g. 64 for ECG); None = the backbone's ``target_seq_len``.

    Raises:
        ValueError: an unknown ``output``, or an input shape that does not fit the backbone.
    """
    if output not in ("classification", "dense"):
        raise ValueError(f"output must be 'classification' or 'dense', got {output!r}")
    expected = 2 if spec.modality == "1d" else 3
    if len(input_shape) != expected:
        raise ValueError(f"backbone {spec.name!r} ({spec.modality}) needs {expected}-d inputs per sample, "
                         f"got input shape {tuple(input_shape)}")
    if spec.modality == "1d":
        return _build_1d(source_model, spec, tuple(input_shape), num_outputs, output, embedder_init, max_tokens)
    return _build_2d(source_model, spec, tuple(input_shape), num_outputs, output, embedder_init)


def _build_2d(source_model: nn.Module, spec: BackboneSpec, input_shape: tuple[int, int, int],
              num_outputs: int, output: str, embedder_init: str) -> BuiltModel:
    stem, body = split_source_model(source_model, spec)
    embedder = Embedder2D(stem, input_shape[0], spec.input_size, embedder_init)
    source_embedder = Embedder2D(stem, 3, spec.input_size, "source").requires_grad_(False).eval()
    encoder = Encoder(body, spec.layout)
    grid, stride = _probe_grid(embedder, encoder, input_shape)
    if output == "classification":
        predictor: nn.Module = ClassificationHead(encoder.out_dim, num_outputs)
    else:
        predictor = DenseHead2D(encoder.out_dim, num_outputs, grid, stride, tuple(input_shape[1:]))
    return BuiltModel(CrossModalModel(embedder, encoder, predictor), source_embedder, grid)


def _build_1d(source_model: nn.Module, spec: BackboneSpec, input_shape: tuple[int, int],
              num_outputs: int, output: str, embedder_init: str, max_tokens: int | None) -> BuiltModel:
    """ORCA's ``wrapper1D``: patch embedder with copied LayerNorm and positions, body on inputs_embeds."""
    channels, length = input_shape
    if spec.target_seq_len is None:
        raise ValueError(f"1D backbone {spec.name!r} has no target_seq_len")
    (stem_name,) = spec.stem  # the transformers model's embeddings module
    embeddings = getattr(source_model, stem_name)
    stack = stack_size(length, min(spec.target_seq_len, max_tokens or spec.target_seq_len))
    n = length // stack
    positions = embeddings.position_embeddings.weight.detach()[pretrained_position_ids(embeddings, n)]  # (N, D)
    embedder = Embedder1D(channels, stack, positions, embeddings.LayerNorm, embedder_init)
    source_embedder = SourceEmbedder1D(embeddings).requires_grad_(False).eval()
    encoder = TextEncoder(source_model)  # replaces source_model.embeddings by a pass-through
    if output == "classification":
        predictor: nn.Module = ClassificationHead(encoder.out_dim, num_outputs)
    else:
        predictor = DenseHead1D(num_outputs, stack)
    return BuiltModel(CrossModalModel(embedder, encoder, predictor), source_embedder, (1, n))


@torch.no_grad()
def _probe_grid(embedder: nn.Module, encoder: Encoder, input_shape: tuple[int, int, int]):
    """Token grid (h, w) and output stride of the encoder, from one dummy input."""
    modes = embedder.training, encoder.training
    embedder.eval(), encoder.eval()
    feats = encoder.body.forward_features(embedder(torch.zeros(1, *input_shape)))
    embedder.train(modes[0]), encoder.train(modes[1])
    if encoder.layout == "nhwc":
        grid = tuple(feats.shape[1:3])
    elif encoder.layout == "nchw":
        grid = tuple(feats.shape[2:4])
    else:  # ViT tokens: a square grid of patches after the prefix tokens
        side = math.isqrt(feats.shape[1] - encoder.num_prefix_tokens)
        grid = (side, side)
    side_in = embedder.input_size or input_shape[1]
    return grid, max(side_in // grid[0], 1)
