"""How a trial's model and source surrogate are built: one home for the trainables
(``TwoStageTrainable``) and the analyses (``tuner.analyze``), so that an analysis probes
exactly the model a trial trained.
"""
from __future__ import annotations

from pathlib import Path

from trainables.models.backbones import create_source_model
from trainables.models.crossmodal import BuiltModel, build_model
from trainables.registry import BackboneSpec
from trainables.tasks.source_data import SourceData, load_source_surrogate, load_text_surrogate


def build_trial_model(backbone: BackboneSpec, encoder_init: str, weights_path: str | None,
                      input_shape: tuple[int, ...], num_outputs: int, output: str, embedder_init: str,
                      max_tokens: int | None) -> BuiltModel:
    """g = predictor ∘ encoder ∘ embedder around the backbone's source model (DESIGN §3).

    Args:
        encoder_init: "pretrained" (offline weights; missing ones are an error) or "random".
        embedder_init: "source" (copy of the pretrained stem) or "random".
        max_tokens: the task's 1D token limit (ORCA's ``target_seq_len``), None for the backbone's.
    """
    source = create_source_model(backbone, encoder_init, weights_path)
    return build_model(source, backbone, input_shape, num_outputs, output, embedder_init, max_tokens)


def load_source_data(backbone: BackboneSpec, data_root: str | Path, input_shape: tuple[int, ...],
                     num_tokens: int | None, weights_path: str | None, max_samples: int, seed: int,
                     exact_length: bool = False) -> SourceData:
    """The backbone's labelled source surrogate as stage-1 methods and probes see it.

    2D backbones: images at the task's (H, W). 1D backbones: token sequences of the target
    embedder's token count ``num_tokens`` from the backbone's own tokenizer (or ORCA's
    precomputed features, cut to exactly ``num_tokens`` when ``exact_length``: PaRe mixes
    tokens position-wise).
    """
    if backbone.modality == "1d":
        return load_text_surrogate(backbone.source_surrogate, Path(data_root), num_tokens,
                                   lambda: backbone.load_tokenizer(backbone.model_id, weights_path), max_samples,
                                   seed, exact_length)
    return load_source_surrogate(backbone.source_surrogate, Path(data_root), tuple(input_shape[1:]), max_samples, seed)
