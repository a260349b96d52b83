"""Backbones, weight loading, embedder source-init and predictor shapes."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from trainables.errors import MissingWeightsError
from trainables.models.backbones import (
    create_source_model,
    create_timm_offline,
    default_backbone,
    efficientnet_lite0_package_file,
    map_state_dict_by_position,
)
from trainables.models.crossmodal import build_model, first_conv
from trainables.registry import get_backbone


def _photos(side: int = 224) -> torch.Tensor:
    """scikit-learn's two sample photos (china, flower): resize short side, centre crop."""
    from sklearn.datasets import load_sample_images

    x = torch.tensor(np.stack(load_sample_images().images)).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(256, 384), mode="bicubic", antialias=True).clamp(0, 1)
    top, left = (256 - side) // 2, (384 - side) // 2
    return x[:, :, top:top + side, left:left + side]


def test_efficientnet_lite0_every_tensor_maps():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    source = torch.load(efficientnet_lite0_package_file(), map_location="cpu", weights_only=True)
    mapped = map_state_dict_by_position(model, source)
    tensors = [k for k in mapped if not k.endswith("num_batches_tracked")]
    assert len(mapped) == len(model.state_dict()) == 296 and len(tensors) == 247
    model.load_state_dict(mapped, strict=True)
    for (key, value), src in zip(model.state_dict().items(), source.values()):
        assert torch.equal(value, src), key


def test_efficientnet_lite0_classifies_real_photos():
    """ImageNet classes: 698 palace (china.jpg), 985 daisy (flower.jpg)."""
    model = create_source_model(get_backbone("tf_efficientnet_lite0"), "pretrained").eval()
    with torch.no_grad():
        probs = model((_photos() - 0.5) / 0.5).softmax(-1)  # TF-lite normalisation: mean = std = 0.5
    assert probs.argmax(-1).tolist() == [698, 985]
    assert probs.max(-1).values.min() > 0.25


def test_position_mapping_refuses_shape_mismatch():
    model = timm.create_model("test_efficientnet")
    source = {k: torch.zeros(1) for k in model.state_dict()}
    with pytest.raises(ValueError, match="shape mismatch"):
        map_state_dict_by_position(model, source)


def test_missing_paper_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="--weights PATH"):
        create_source_model(get_backbone("swin_base_patch4_window7_224.ms_in22k"), "pretrained")
    with pytest.raises(MissingWeightsError, match="no_such_file"):
        create_timm_offline("swin_tiny_patch4_window7_224", str(tmp_path / "no_such_file.pth"))


def test_timm_weights_load_from_a_named_file(tmp_path):
    spec = get_backbone("test_swin")
    reference = create_source_model(spec, "random")
    path = tmp_path / "swin.pth"
    torch.save(reference.state_dict(), path)
    loaded = create_source_model(spec, "pretrained", str(path))
    for (k, a), b in zip(reference.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("in_channels", [1, 3, 5])
def test_source_init_copies_and_adapts_the_stem(in_channels):
    spec = get_backbone("test_efficientnet")
    source = create_source_model(spec, "random")
    w = source.conv_stem.weight.detach().clone()  # (D, 3, k, k)
    bn_weight = source.bn1.weight.detach().clone()
    built = build_model(source, spec, (in_channels, 32, 32), 4, "classification", "source")
    got = first_conv(built.model.embedder).weight.detach()
    if in_channels == 1:
        expected = w.sum(dim=1, keepdim=True)  # grayscale: the RGB filters summed
    else:  # channels cycle through RGB, scaled so a channel-constant input responds as RGB
        expected = w[:, [c % 3 for c in range(in_channels)]] * (3 / in_channels)
    torch.testing.assert_close(got, expected)
    assert torch.equal(built.model.embedder.stem[1].weight.detach(), bn_weight)
    # the frozen source embedder keeps the pretrained 3-channel stem
    assert torch.equal(first_conv(built.source_embedder).weight, w)
    assert not any(p.requires_grad for p in built.source_embedder.parameters())


def test_random_init_embedder_differs_from_source():
    spec = get_backbone("test_efficientnet")
    torch.manual_seed(0)
    source = create_source_model(spec, "random")
    w = source.conv_stem.weight.detach().clone()
    built = build_model(source, spec, (3, 32, 32), 4, "classification", "random")
    assert not torch.allclose(first_conv(built.model.embedder).weight, w)


@pytest.mark.parametrize("backbone,shape,grid", [
    ("test_efficientnet", (1, 32, 32), (1, 1)),
    ("test_vit", (2, 32, 32), (4, 4)),
    ("test_swin", (3, 60, 60), (7, 7)),  # resized to 224: 56x56 tokens -> 7x7 after 3 merges
])
@pytest.mark.parametrize("output,k", [("classification", 10), ("dense", 2)])
def test_predictor_shapes(backbone, shape, grid, output, k):
    spec = get_backbone(backbone)
    built = build_model(create_source_model(spec, "random"), spec, shape, k, output, "random")
    assert built.grid == grid
    y = built.model(torch.randn(3, *shape))
    assert y.shape == ((3, k) if output == "classification" else (3, k, *shape[1:]))


def test_swin_embedder_replaces_patch_embed_and_resizes():
    spec = get_backbone("test_swin")
    built = build_model(create_source_model(spec, "random"), spec, (1, 60, 60), 3, "classification", "source")
    tokens = built.model.embedder(torch.randn(2, 1, 60, 60))
    assert tokens.shape == (2, 56, 56, 16)  # NHWC after 4x4 patches of a 224x224 resize
    assert isinstance(built.model.encoder.body.patch_embed, torch.nn.Identity)


def test_default_backbones_per_modality_and_scale():
    assert default_backbone("2d", "paper") == "swin_base_patch4_window7_224.ms_in22k"
    assert default_backbone("1d", "paper") == "roberta-base"
    assert default_backbone("1d", "mini") == "all-minilm-l6-v2"
    assert get_backbone("roberta-base").library == "transformers"
    assert get_backbone("tf_efficientnet_lite0").library == "timm"
    with pytest.raises(ValueError, match="--backbone"):
        default_backbone("3d", "mini")


def test_auto_scale_falls_back_to_the_embedded_1d_backbone(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from tuner.spec import SweepSpec

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # no RoBERTa here
    resolved = SweepSpec(task="test_toy_1d", method="finetune", data_dir=str(tmp_path)).resolve()
    assert (resolved.scale, resolved.backbone) == ("mini", "all-minilm-l6-v2")
    assert "no local weights for roberta-base" in resolved.fallback_reason


def test_source_model_and_builder_refuse_bad_requests():
    spec = get_backbone("test_bert")
    with pytest.raises(ValueError, match="init must be one of"):
        create_source_model(spec, "pretraind")
    with pytest.raises(MissingWeightsError, match="init='random'"):
        create_source_model(spec, "pretrained")
    with pytest.raises(ValueError, match=r"needs 2-d inputs per sample, got input shape \(1, 32, 32\)"):
        build_model(create_source_model(spec, "random"), spec, (1, 32, 32), 4, "classification", "random")
