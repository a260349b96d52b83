"""Distortion of source knowledge: linear-probe error of encoder features on the source surrogate.

MoNA (Ma et al., ICML 2024, arXiv 2406.18864) §2.2 and Fig. 3: the source surrogate's images
x_i^s go through the *pretrained* source embedder and an encoder,
f_i^s = f(e(x_i^s; θ_{e_0}^S); θ_f), and a linear probe on these features measures how much
source knowledge the encoder holds. θ_f = θ_{f_0}^S (the pretrained encoder) gives the
reference (Fig. 3's dashed line); θ_f = θ_f^T (a trial's encoder after fine-tuning on the
target) gives that trial's value. A higher probe error than the reference is distortion.

Features are mean-pooled encoder tokens (the classification predictor's pooling, DESIGN §3).
The probe (``linear_probe_error``) is scikit-learn's multinomial ``LogisticRegression`` on
standardised features, fitted on a fixed stratified split of the surrogate (``probe_split``)
and scored by 0-1 error (in percent, as Fig. 3) on the held-out part; the split and the
probe are seeded, so one encoder always gets one value.

Deviations:
    - The paper does not give its probe's settings; these are ours: L2-regularised logistic
      regression (C = 1, lbfgs, up to 1,000 iterations) on features standardised with the
      training part's mean and std, a 70/30 stratified split of the surrogate.
    - The surrogate is the backbone's (``BackboneSpec.source_surrogate``: CIFAR-10 at paper
      scale, scikit-learn's digits for the embedded default) at the target task's (H, W), as
      the trials' stage-1 methods see it; the paper probes CIFAR-10's own train/test split.
    - For an experiment trained from a random encoder (``encoder_init="random"``) the
      reference is a seeded random encoder, not a pretrained one.
"""
from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables.build import build_trial_model, load_source_data
from trainables.models.crossmodal import BuiltModel
from trainables.registry import BackboneSpec

log = logging.getLogger(__name__)

TEST_FRACTION = 0.3
PROBE_C = 1.0
PROBE_MAX_ITER = 1000
FEATURE_CHUNK = 128
ENCODER_PREFIX = "encoder."


@dataclass(frozen=True)
class ProbeData:
    """The source surrogate and its fixed probe split."""

    x: torch.Tensor  # images (N, 3, H, W), token ids (N, T) or features (N, T, D)
    y: np.ndarray  # (N,) int64
    train: np.ndarray  # indices into x
    test: np.ndarray
    source: str


def probe_split(y: np.ndarray, test_fraction: float = TEST_FRACTION, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified split of ``range(len(y))`` into probe train and test indices.

    >>> train, test = probe_split(np.repeat([0, 1], 10), 0.3, seed=0)
    >>> len(train), len(test), np.bincount(np.repeat([0, 1], 10)[test]).tolist()
    (14, 6, [3, 3])
    """
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    train, test = train_test_split(index, test_size=test_fraction, random_state=seed, stratify=y)
    return np.sort(train), np.sort(test)


def linear_probe_error(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray,
                       seed: int = 0) -> float:
    """0-1 error on ``f_test`` of a logistic-regression probe fitted on ``f_train``.

    Args:
        f_train, f_test: (n, D) features.
        y_train, y_test: (n,) class labels.

    Returns:
        The 0-1 error in percent (as ``trainables.metrics.error_rate``): 100 · the fraction of
        misclassified test samples.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(),
                          LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER, random_state=seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe.fit(f_train, y_train)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.warning("linear probe: lbfgs stopped at %d iterations before converging", PROBE_MAX_ITER)
    return float(100.0 * np.mean(probe.predict(f_test) != y_test))


@torch.no_grad()
def encoder_features(encoder: nn.Module, source_embedder: nn.Module, x: torch.Tensor,
                     device: torch.device | str = "cpu", chunk: int = FEATURE_CHUNK) -> np.ndarray:
    """f(e(x; θ_{e_0}^S); θ_f), mean-pooled over tokens, in eval mode (BatchNorm statistics fixed).

    Args:
        encoder: returns (B, N, D) tokens (``crossmodal.Encoder`` / ``TextEncoder``).
        source_embedder: the pretrained stem (``BuiltModel.source_embedder``).
        x: (n, ...) source-surrogate inputs (CPU).

    Returns:
        (n, D) float32 features.
    """
    encoder.eval().to(device)
    source_embedder.eval().to(device)
    out = [encoder(source_embedder(x[i:i + chunk].to(device))).mean(dim=1).float().cpu()  # (B, N, D) -> (B, D)
           for i in range(0, len(x), chunk)]
    return torch.cat(out).numpy()


def probe_encoder(encoder: nn.Module, source_embedder: nn.Module, data: ProbeData,
                  device: torch.device | str = "cpu", seed: int = 0) -> float:
    """Linear-probe error of ``encoder``'s features on the surrogate's held-out part."""
    feats = encoder_features(encoder, source_embedder, data.x, device)
    return linear_probe_error(feats[data.train], data.y[data.train], feats[data.test], data.y[data.test], seed)


def encoder_from_state(reference: nn.Module, model_state: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``reference`` holding the encoder weights of a trial's model state dict.

    Args:
        reference: an encoder of the trial's architecture (``BuiltModel.model.encoder``).
        model_state: ``CrossModalModel.state_dict()`` as a trial checkpoint stores it
            (``"model"``): keys ``embedder.*``, ``encoder.*``, ``predictor.*``.

    Raises:
        ValueError: the state holds no encoder, or one that does not fit ``reference``.
    """
    state = {k[len(ENCODER_PREFIX):]: v for k, v in model_state.items() if k.startswith(ENCODER_PREFIX)}
    if not state:
        raise ValueError(f"the model state holds no '{ENCODER_PREFIX}*' weights "
                         f"(keys start with {sorted({k.split('.')[0] for k in model_state})})")
    encoder = copy.deepcopy(reference)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"the checkpoint's encoder does not fit the backbone: {str(e).splitlines()[0]}") from e
    return encoder


def build_reference(spec: BackboneSpec, init: str, weights_path: str | None, input_shape: tuple[int, ...],
                    num_outputs: int, output: str, max_tokens: int | None, seed: int = 0) -> BuiltModel:
    """The model a trial starts from (``trainables.build.build_trial_model``).

    Its encoder is the reference (pretrained, or seeded random for ``init="random"``) and its
    source embedder the pretrained stem that every encoder is probed through.
    """
    torch.manual_seed(seed)  # only a random init draws numbers
    return build_trial_model(spec, init, weights_path, input_shape, num_outputs, output, "source", max_tokens)


def load_probe_data(spec: BackboneSpec, data_root: str | Path, input_shape: tuple[int, ...], num_tokens: int | None,
                    weights_path: str | None, max_samples: int = 0, seed: int = 0,
                    test_fraction: float = TEST_FRACTION) -> ProbeData:
    """The backbone's labelled source surrogate as the trials load it (``load_source_data``),
    and its probe split."""
    src = load_source_data(spec, data_root, input_shape, num_tokens, weights_path, max_samples, seed)
    train, test = probe_split(src.y, test_fraction, seed)
    return ProbeData(torch.as_tensor(src.x), src.y, train, test, src.source)
