"""``mona``: meta-learned embedder alignment (stage 1), then full fine-tuning (stage 2).

Paper: MoNA, "Learning Modality Knowledge Alignment for Cross-Modality Transfer" (Ma et al.,
ICML 2024, arXiv 2406.18864), §3.2, Alg. 1, Eq. (2)-(6), Appendix A.1-A.3. The authors' code
is not public; this follows the paper and DESIGN §4.

Stage 1, per target batch (x_t, y_t) and source-surrogate batch (x_s, y_s) (Alg. 1):

1. ``L_inner`` = task loss of the full target model g = h ∘ f ∘ e at (φ_e, θ_f, θ_h) (Eq. 1).
2. Virtual update of the full target model, S = ``inner_steps`` plain SGD steps of size
   α = ``alpha`` (Eq. 3): θ^{s+1} = θ^s - α ∇_θ L_inner(θ^s), θ^0 = (φ_e, θ_f, θ_h). The graph
   is kept, so θ_f* depends on φ_e.
3. Source features f_s = normalise(mean_tokens(f(e_src(x_s); θ_f*))) with the frozen
   pretrained stem e_src (``source_embedder``).
4. ``L_outer`` = L_align + L_uniform on f_s (Eq. 4, Wang & Isola's minimised form; see
   ``trainables.losses.alignment`` for the signs).
5. L' = λ L_outer + L_inner (Eq. 5; ``lam`` is λ); its gradient w.r.t. φ_e alone drives an
   AdamW step (Eq. 6). The virtual parameters are discarded: the real encoder and predictor
   weights are untouched by stage 1.

Symbol map: φ_e = ``model.embedder`` parameters (``phi``), θ_f = ``model.encoder``, θ_h =
``model.predictor`` (together ``theta``), α = ``alpha``, S = ``inner_steps``, λ = ``lam``.

The embedder in the inner loop: Eq. (3) starts the inner loop at θ_e^0 = φ_e and updates the
*whole* target model (Fig. 5a), so the embedder is virtually updated too. For S = 1 this
never reaches L_outer: L_outer reads only θ_f*, and the source path uses the frozen source
stem, not the target embedder. For S > 1 it does: steps 2..S evaluate ∇_θf L_inner at the
virtually updated embedder θ_e^1, ... . (The last step's virtual embedder and predictor are
never read; computing them costs one small extra backward through the stem and head.)

The meta-gradient. L_outer depends on φ_e only through θ_f*(φ_e), and for S = 1

    ∇_φ L' = ∇_φ L_inner - λ α (∂²L_inner / ∂φ ∂θ_f) v,    v = ∇_θf L_outer(θ_f*).

A first-order (FOMAML) approximation detaches ∇_θ L_inner and drops the second term, i.e.
all of L_outer's influence: it is not offered. Three modes compute it (``meta_grad``):

- ``exact``: autograd through the S inner steps (``torch.func.functional_call`` with
  ``create_graph=True``; ``meta_gradient_unrolled``); any S. Memory grows with the
  double-backward graph. For S = 1 on a network with grouped convolutions (EfficientNet-Lite0's
  depthwise ones) the same gradient is taken reverse-over-forward
  (``meta_gradient_reverse_over_forward``: reverse mode through one forward-mode L_inner pass
  along v), because PyTorch's double backward of a grouped convolution computes an unused
  weight term group by group (~8,300 one-channel convolutions per step on Lite0). Same
  gradient (~1e-14 apart in float64), one more L_inner forward: on the embedded default
  3.05x a plain step instead of 3.39x unrolled; peak RSS increase 157 MiB, jvp's 195 MiB
  (``bench.method_step_cost``, 2026-12-04).
- ``jvp`` (S = 1): the mixed product as a forward-over-reverse derivative: the forward-mode
  derivative along v of the first-order ∇_φ L_inner (``torch.autograd.forward_ad``). Exact as
  well (equal to ``exact`` to ~1e-13 in float64 on EfficientNet-Lite0, a GELU ViT, Swin and
  BERT), with no second backward graph. Only a modest memory saver, as the forward-mode pass
  carries a tangent for every activation: EfficientNet-Lite0, batch 32, peak RSS increase
  0.94x exact's at 32x32 (188 vs 200 MiB, ``bench.method_step_cost``), 0.80x at 64x64.
- ``finite_difference`` (S = 1): the mixed Hessian-vector product by central differences of
  first-order gradients, as DARTS does (Liu et al., ICLR 2019, arXiv 1806.09055, Eq. 8):
  (∂²L_inner/∂φ∂θ_f) v ≈ [∇_φ L_inner(θ_f + εv) - ∇_φ L_inner(θ_f - εv)] / (2ε),
  ε = r / ||v||, r = ``FD_RADIUS`` = 0.01 (DARTS's value). Four first-order passes, no
  double backward. Only right on smooth networks: across ReLU6 kinks the quotient sees the
  jump of the gradient (measured 44x off, cosine 0.11, on EfficientNet-Lite0), so it is
  refused on networks with such activations (``non_smooth_activations``).
Attention runs on PyTorch's math kernel during a meta-step (``math_attention``): the fused
kernels have no second-order derivatives.

Table 6 ablations (``LossDesign``): ``inner_loss`` False drops L_inner from L' (Eq. 5), so
L' = λ L_outer while the inner step still descends L_inner (the paper: "excluding the
inner-loop loss L_inner from the total objective of the outer-loop in Eq. (5)");
``outer_loss`` "supcon" (Khosla et al. 2020, τ = 0.1) or "davies_bouldin" replaces
alignment + uniformity (``trainables.losses.alignment``).

BatchNorm and dropout: the base puts the encoder in eval mode for stage 1
(``set_train_mode``), so its BatchNorm uses running statistics; the functional calls replace
parameters only and use the modules' buffers as they are. The embedder (train mode) updates
its BatchNorm running statistics exactly once per batch, on the first L_inner forward, as
Emb does; every further forward of the step (inner steps 2..S, the ±εv passes) runs on
scratch copies of the buffers, which are discarded (the jvp and reverse-over-forward passes too).

Deviations:
    - Eq. (4): Wang & Isola's minimised alignment + uniformity with squared distances, not
      the printed signs and plain norms (``trainables.losses.alignment``).
    - α is not given by the paper: searched (``search_spaces.mona``).
    - Stage-1 length: the paper's ten epochs (§A.1; "only 5", §4) are the paper-scale default;
      the embedded default searches 1-3 epochs for the CPU budget (``search_spaces.mona``).
    - Source surrogate: at mini scale scikit-learn's digits instead of CIFAR-10 (DESIGN §9),
      at most ``source_max_samples`` of them, one random batch of ``source_batch_size`` per
      target batch, drawn from the trial's data RNG.
    - 1D backbones: the source surrogate is ORCA's precomputed CoNLL-2003 RoBERTa embeddings
      (paper scale) or standard-library docstrings tokenised for all-MiniLM-L6-v2 (embedded
      default), fed through the frozen pretrained text embeddings (``source_data``).
    - The epoch's ``train_loss`` in stage 1 is the mean of L' (the stage's objective).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from trainables.base import TrialConfig, TwoStageTrainable
from trainables.losses.alignment import (
    alignment_loss,
    davies_bouldin_loss,
    supervised_contrastive_loss,
    uniformity_loss,
)

META_GRAD_MODES = ("exact", "finite_difference", "jvp")
OUTER_LOSSES = ("align_uniform", "supcon", "davies_bouldin")  # Eq. (4) and Table 6's replacements
FD_RADIUS = 1e-2  # DARTS: ε = 0.01 / ||v||
EMBEDDER, ENCODER = "embedder.", "encoder."

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonaConfig(TrialConfig):
    lam: float  # λ of Eq. (5)
    alpha: float  # α of Eq. (3): the virtual SGD step
    inner_steps: int  # S
    meta_grad: str  # "exact" | "finite_difference" | "jvp"
    inner_loss: bool  # L_inner in L' (Eq. 5); False: Table 6's "w/o L_inner"
    outer_loss: str  # one of OUTER_LOSSES
    stage1_lr: float
    stage1_weight_decay: float
    stage1_epochs: int
    source_batch_size: int
    source_max_samples: int  # 0 = the whole source surrogate

    def validate(self) -> None:
        """Check the base fields and MoNA's.

        Raises:
            ValueError: naming the field, the value received and the valid range or the fix.
        """
        super().validate()
        if self.meta_grad not in META_GRAD_MODES:
            raise ValueError(f"meta_grad must be one of {META_GRAD_MODES}, got {self.meta_grad!r}")
        if self.meta_grad != "exact" and self.inner_steps != 1:
            raise ValueError(
                f"meta_grad={self.meta_grad!r} needs inner_steps == 1 (it differentiates a single "
                f"virtual SGD step), got inner_steps={self.inner_steps}. "
                "Use meta_grad='exact' for more inner steps."
            )
        if self.outer_loss not in OUTER_LOSSES:
            raise ValueError(f"outer_loss must be one of {OUTER_LOSSES}, got {self.outer_loss!r}")
        checks = [
            ("lam", self.lam >= 0, ">= 0"), ("alpha", self.alpha > 0, "> 0"),
            ("inner_steps", self.inner_steps >= 1, ">= 1"), ("stage1_lr", self.stage1_lr > 0, "> 0"),
            ("stage1_weight_decay", self.stage1_weight_decay >= 0, ">= 0"),
            ("stage1_epochs", self.stage1_epochs >= 0, ">= 0"),
            ("source_batch_size", self.source_batch_size >= 2, ">= 2 (the outer loss needs pairs)"),
            ("source_max_samples", self.source_max_samples >= 0, ">= 0 (0 = all)"),
        ]
        for name, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name} must be {valid}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class MetaBatch:
    """One stage-1 step's data."""

    x: torch.Tensor  # (B, C, H, W) target inputs
    y: torch.Tensor  # target labels (B,) or dense targets
    x_s: torch.Tensor  # (B_s, 3, H, W) source-surrogate images
    y_s: torch.Tensor  # (B_s,) source labels


@dataclass(frozen=True)
class LossDesign:
    """What L' is made of (Table 6): L_inner in it or not, and which L_outer."""

    inner_loss: bool = True
    outer_loss: str = "align_uniform"


@dataclass(frozen=True)
class OuterLoss:
    """L_outer (``total``, by the design's ``outer_loss``); alignment and uniformity always
    computed too, for the log."""

    align: torch.Tensor
    uniform: torch.Tensor
    total: torch.Tensor


@dataclass(frozen=True)
class Objective:
    """L' = λ L_outer + L_inner (Eq. 5) and its parts, as tensors (graph attached)."""

    total: torch.Tensor
    inner: torch.Tensor
    outer: OuterLoss


@dataclass(frozen=True)
class MetaStep:
    """One meta-gradient: ∇_φ L' for each embedder parameter, and the loss values."""

    grads: list[torch.Tensor]  # in ``model.embedder.parameters()`` order
    objective: float  # L'
    loss_inner: float
    loss_outer: float
    loss_align: float
    loss_uniform: float
    fell_back: bool = False  # exact mode: reverse-over-forward failed on this network, redone unrolled


# ---- parameters ------------------------------------------------------------------------------
def meta_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """All parameters of ``model`` by name, ready for the inner loop.

    The embedder entries are the model's own parameters (φ_e, the leaves the meta-gradient is
    taken w.r.t.); encoder and predictor entries are detached views that require grad (θ:
    leaves sharing storage, so the inner loop can differentiate w.r.t. them even though stage 1
    freezes them, and nothing ever writes to the real tensors).
    """
    return {n: p if n.startswith(EMBEDDER) else p.detach().requires_grad_(True)
            for n, p in model.named_parameters()}


def scratch_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every buffer: forwards run on them update no real BatchNorm statistics."""
    return {n: b.clone() for n, b in model.named_buffers()}


def encoder_params(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's entries of a full-model parameter dict, named relative to the encoder."""
    return {n[len(ENCODER):]: p for n, p in params.items() if n.startswith(ENCODER)}


# ---- the losses ------------------------------------------------------------------------------
def task_loss(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
              loss_fn, buffers: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Eq. (1): the task loss of ``model`` run with ``params`` (and optionally ``buffers``)."""
    tensors = params if buffers is None else {**buffers, **params}
    return loss_fn(functional_call(model, tensors, (x,)), y)


def inner_update(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                 loss_fn, alpha: float, steps: int, create_graph: bool = True,
                 buffers: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """S virtual SGD steps on the whole target model (Eq. 3; Alg. 1 "virtually update").

    Args:
        params: every parameter of ``model`` by name (``meta_params``); all must require grad.
        alpha: the step size α.
        steps: S >= 1.
        create_graph: keep the graph of each gradient so the result depends on the initial
            ``params`` to second order (the exact meta-gradient). ``False`` detaches the
            gradients: the first-order approximation (only for showing that it loses L_outer).
        buffers: the buffers of the first forward; None (the default): the model's own, so
            that forward updates the real BatchNorm statistics.

    Returns:
        (L_inner at ``params`` (Eq. 1), the virtual parameters θ* after S steps). Only the
        first forward updates the real BatchNorm statistics (none with ``buffers`` given).
    """
    if steps < 1:
        raise ValueError(f"inner steps must be >= 1, got {steps}")
    names = list(params)
    current, loss_inner = params, None
    for step in range(steps):
        loss = task_loss(model, current, x, y, loss_fn, buffers)
        # retain_graph: L_inner (the first loss) is part of L' and is differentiated again
        grads = torch.autograd.grad(loss, [current[n] for n in names], create_graph=create_graph,
                                    retain_graph=True)
        current = {n: current[n] - alpha * g for n, g in zip(names, grads)}
        if loss_inner is None:
            loss_inner = loss
        if step + 1 < steps and buffers is None:  # steps 2..S: scratch statistics
            buffers = scratch_buffers(model)
    return loss_inner, current


def source_features(encoder: nn.Module, params: dict[str, torch.Tensor], source_embedder: nn.Module,
                    x_s: torch.Tensor) -> torch.Tensor:
    """Source features f_s on the unit sphere, from the (virtual) encoder ``params``.

    Returns:
        (B_s, D) L2-normalised token means of f(e_src(x_s); θ_f).
    """
    with torch.no_grad():
        embedded = source_embedder(x_s)  # frozen pretrained stem: a constant of φ and θ
    tokens = functional_call(encoder, params, (embedded,))  # (B_s, N, D)
    return F.normalize(tokens.mean(dim=1), dim=1)  # (B_s, N, D) -> (B_s, D), unit norm


def outer_loss(encoder: nn.Module, params: dict[str, torch.Tensor], source_embedder: nn.Module,
               x_s: torch.Tensor, y_s: torch.Tensor, kind: str = "align_uniform") -> OuterLoss:
    """L_outer on the source features of ``params``: Eq. (4) in Wang & Isola's minimised form
    ("align_uniform"), or Table 6's supervised contrastive ("supcon") / Davies-Bouldin index."""
    f = source_features(encoder, params, source_embedder, x_s)
    align, uniform = alignment_loss(f, y_s), uniformity_loss(f)
    if kind == "align_uniform":
        return OuterLoss(align, uniform, align + uniform)
    if kind == "supcon":
        return OuterLoss(align, uniform, supervised_contrastive_loss(f, y_s))
    if kind == "davies_bouldin":
        return OuterLoss(align, uniform, davies_bouldin_loss(f, y_s))
    raise ValueError(f"outer_loss must be one of {OUTER_LOSSES}, got {kind!r}")


def mona_objective(model: nn.Module, source_embedder: nn.Module, params: dict[str, torch.Tensor],
                   batch: MetaBatch, loss_fn, lam: float, alpha: float, steps: int,
                   create_graph: bool = True, design: LossDesign = LossDesign(),
                   buffers: dict[str, torch.Tensor] | None = None) -> Objective:
    """L'(φ) = λ L_outer(θ_f*(φ)) + L_inner(φ) (Eq. 5), θ* from ``inner_update`` (``buffers``
    as there).

    Without L_inner (``design.inner_loss`` False, Table 6) L' = λ L_outer: the inner loop
    still takes its step on L_inner, but L_inner is not in the outer objective.
    """
    loss_inner, virtual = inner_update(model, params, batch.x, batch.y, loss_fn, alpha, steps, create_graph,
                                       buffers)
    outer = outer_loss(model.encoder, encoder_params(virtual), source_embedder, batch.x_s, batch.y_s, design.outer_loss)
    total = lam * outer.total + (loss_inner if design.inner_loss else 0.0)
    return Objective(total, loss_inner, outer)


# ---- the meta-gradient -------------------------------------------------------------------------
def _meta_step(grads, objective: torch.Tensor, inner: torch.Tensor, outer: OuterLoss) -> MetaStep:
    return MetaStep([g.detach() for g in grads], objective.item(), inner.item(), outer.total.item(),
                    outer.align.item(), outer.uniform.item())


def meta_gradient_unrolled(model: nn.Module, source_embedder: nn.Module, batch: MetaBatch, loss_fn,
                           lam: float, alpha: float, steps: int, design: LossDesign = LossDesign(),
                           buffers: dict[str, torch.Tensor] | None = None) -> MetaStep:
    """∇_φ L' by reverse-mode autograd through the S inner steps (a double backward; any S).

    Args:
        buffers: as in ``inner_update`` (given: no real BatchNorm statistics move).

    Returns:
        The embedder gradients and the loss values; no parameter of ``model`` is changed
        (the embedder's BatchNorm statistics advance once, as in a plain training step).
    """
    params = meta_params(model)
    phi = [p for n, p in params.items() if n.startswith(EMBEDDER)]
    obj = mona_objective(model, source_embedder, params, batch, loss_fn, lam, alpha, steps, create_graph=True,
                         design=design, buffers=buffers)
    grads = torch.autograd.grad(obj.total, phi, allow_unused=True)  # unused: λ = 0 without L_inner
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, phi)]
    return _meta_step(grads, obj.total, obj.inner, obj.outer)


@dataclass(frozen=True)
class FirstOrder:
    """The first-order part of an S = 1 meta-step: L_inner, its gradients, L_outer at θ_f* and
    v = ∇_θf L_outer(θ_f*), from plain backward passes (no graph kept between them)."""

    params: dict[str, torch.Tensor]  # meta_params(model)
    phi_names: list[str]
    enc_names: list[str]
    loss_inner: torch.Tensor
    grad_phi: list[torch.Tensor]  # ∇_φ L_inner, in phi_names order
    outer: OuterLoss
    v: tuple[torch.Tensor, ...]  # in enc_names order


def first_order(model: nn.Module, source_embedder: nn.Module, batch: MetaBatch, loss_fn, alpha: float,
                outer_kind: str, phi_grads: bool = True) -> FirstOrder:
    """Steps 1-4 of Alg. 1 for S = 1 with first-order gradients only (the real BatchNorm
    statistics advance once, on the L_inner forward). ``phi_grads`` False: ∇_φ L_inner is not
    taken (``grad_phi`` empty; the backward stops at the encoder's input)."""
    params = meta_params(model)
    names = list(params)
    phi_names = [n for n in names if n.startswith(EMBEDDER)]
    enc_names = [n for n in names if n.startswith(ENCODER)]
    # L_inner and its gradients w.r.t. φ_e and θ_f (the predictor's step is never read for S = 1)
    loss_inner = task_loss(model, params, batch.x, batch.y, loss_fn)
    wrt = (phi_names if phi_grads else []) + enc_names
    grads = dict(zip(wrt, torch.autograd.grad(loss_inner, [params[n] for n in wrt])))
    virtual = {n: (params[n] - alpha * grads[n]).detach().requires_grad_(True) for n in enc_names}
    outer = outer_loss(model.encoder, encoder_params(virtual), source_embedder, batch.x_s, batch.y_s, outer_kind)
    v = torch.autograd.grad(outer.total, [virtual[n] for n in enc_names])
    return FirstOrder(params, phi_names, enc_names, loss_inner, [grads[n] for n in phi_names if phi_grads], outer, v)


def _combine(fo: FirstOrder, mixed: list[torch.Tensor], lam: float, alpha: float, design: LossDesign) -> MetaStep:
    """∇_φ L' = [∇_φ L_inner] - λ α (∂²L_inner/∂φ∂θ_f) v, the bracket only with L_inner in L'."""
    inner = fo.grad_phi if design.inner_loss else [torch.zeros_like(g) for g in fo.grad_phi]
    meta = [g - lam * alpha * h for g, h in zip(inner, mixed)]
    total = lam * fo.outer.total + (fo.loss_inner if design.inner_loss else 0.0)
    return _meta_step(meta, torch.as_tensor(total), fo.loss_inner, fo.outer)


def has_grouped_convolution(model: nn.Module) -> bool:
    """Whether ``model`` has a grouped (e.g. depthwise) convolution: there the double backward
    of ``meta_gradient_unrolled`` is slow: PyTorch's ``_convolution_double_backward`` computes
    the weight term of a convolution's input gradient even when no weight needs it, and for a
    grouped one a group at a time (EfficientNet-Lite0: ~8,300 one-channel convolutions per step,
    ~0.13 s when timed alone)."""
    return any(isinstance(m, nn.modules.conv._ConvNd) and m.groups > 1 for m in model.modules())


def meta_gradient_exact(model: nn.Module, source_embedder: nn.Module, batch: MetaBatch, loss_fn,
                        lam: float, alpha: float, steps: int, design: LossDesign = LossDesign(),
                        reverse_over_forward: bool = True) -> MetaStep:
    """∇_φ L' exactly (second order, any S).

    S = 1 on a network with grouped convolutions (``has_grouped_convolution``; the embedded
    default's EfficientNet-Lite0): reverse-over-forward (``meta_gradient_reverse_over_forward``),
    no double backward. Otherwise: ``meta_gradient_unrolled``, autograd through the S inner
    steps. The two agree to rounding (~1e-14 in float64). Where reverse-over-forward fails (an
    operation whose forward-mode formula reverse mode cannot differentiate, e.g. softmax's,
    which works in place) the step is redone unrolled and ``fell_back`` set: the caller then
    passes ``reverse_over_forward=False`` for that network (``MonaTrainable``).

    Returns:
        The embedder gradients and the loss values; no parameter of ``model`` is changed
        (the embedder's BatchNorm statistics advance once, as in a plain training step).
    """
    if steps == 1 and reverse_over_forward and has_grouped_convolution(model):
        try:
            return meta_gradient_reverse_over_forward(model, source_embedder, batch, loss_fn, lam, alpha, design)
        except (RuntimeError, NotImplementedError) as e:
            log.warning("MoNA exact meta-gradient: reverse-over-forward is not differentiable on this "
                        "network (%s); using the unrolled double backward", e)
            # its first forward advanced the real BatchNorm statistics: scratch copies here
            step = meta_gradient_unrolled(model, source_embedder, batch, loss_fn, lam, alpha, steps, design,
                                          buffers=scratch_buffers(model))
            return dataclasses.replace(step, fell_back=True)
    return meta_gradient_unrolled(model, source_embedder, batch, loss_fn, lam, alpha, steps, design)


def meta_gradient_reverse_over_forward(model: nn.Module, source_embedder: nn.Module, batch: MetaBatch, loss_fn,
                                       lam: float, alpha: float, design: LossDesign = LossDesign()) -> MetaStep:
    """∇_φ L' for S = 1 (exact), the mixed product reverse-over-forward.

    ∇_φ L' = ∇_φ [L_inner - λ α D],  D(φ) = d/dt L_inner(φ, θ_f + t v) at t = 0 = <∇_θf L_inner, v>,
    v = ∇_θf L_outer(θ_f*) held fixed (``first_order``; ∇_φ of D is the mixed product). D comes
    from one L_inner pass with θ_f as forward-mode dual tensors (tangent v), and one reverse
    pass differentiates L_inner - λ α D. Convolutions then run only forward and first-order
    backward kernels: the unrolled double backward's unused per-group weight terms
    (``has_grouped_convolution``) are never computed. The price is a second L_inner forward.
    The loss is differentiated apart: D = <∇_out loss, d out/dt> by a small double backward at
    the network output (PyTorch's forward-mode formula of log_softmax works in place and
    cannot be differentiated again).

    Returns:
        As ``meta_gradient_exact``.

    Raises:
        RuntimeError or NotImplementedError: an operation has no forward-mode derivative, or
            one that reverse mode cannot differentiate (e.g. softmax attention). The real
            BatchNorm statistics have then advanced (``first_order``).
    """
    fo = first_order(model, source_embedder, batch, loss_fn, alpha, design.outer_loss, phi_grads=False)
    phi = [fo.params[n] for n in fo.phi_names]
    fixed = {n: p.detach() for n, p in fo.params.items() if not n.startswith(EMBEDDER)}
    with fwAD.dual_level():
        dual = {n: fwAD.make_dual(fixed[n], vn) for n, vn in zip(fo.enc_names, fo.v)}
        # scratch buffers: the real BatchNorm statistics advanced in first_order
        out = functional_call(model, {**scratch_buffers(model), **fixed, **dual, **dict(zip(fo.phi_names, phi))},
                              (batch.x,))
        primal, tangent = fwAD.unpack_dual(out)
    loss = loss_fn(primal, batch.y)  # L_inner again, same value
    objective = loss if design.inner_loss else loss.new_zeros(())
    if tangent is not None and lam * alpha != 0:  # None: the output does not depend on θ_f
        (g_out,) = torch.autograd.grad(loss, primal, create_graph=True)
        objective = objective - lam * alpha * (g_out * tangent).sum()
    grads = (torch.autograd.grad(objective, phi, allow_unused=True) if objective.requires_grad
             else [None] * len(phi))  # λ = 0 without L_inner
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, phi)]
    total = lam * fo.outer.total + (fo.loss_inner if design.inner_loss else 0.0)
    return _meta_step(grads, torch.as_tensor(total), fo.loss_inner, fo.outer)


def meta_gradient_finite_difference(model: nn.Module, source_embedder: nn.Module, batch: MetaBatch,
                                    loss_fn, lam: float, alpha: float, radius: float = FD_RADIUS,
                                    design: LossDesign = LossDesign()) -> MetaStep:
    """∇_φ L' for S = 1, the mixed second derivative by central differences (DARTS).

    ∇_φ L' = ∇_φ L_inner - λ α [∇_φ L_inner(θ_f + εv) - ∇_φ L_inner(θ_f - εv)] / (2ε),
    v = ∇_θf L_outer(θ_f*), ε = ``radius`` / ||v||. Four first-order passes (L_inner, L_outer,
    and the two shifted L_inner), no double backward. Valid on smooth networks only: across
    ReLU/ReLU6 kinks the difference quotient does not converge to the mixed derivative
    (``MonaTrainable`` refuses this mode there; use "jvp").

    Returns:
        As ``meta_gradient_exact``.
    """
    fo = first_order(model, source_embedder, batch, loss_fn, alpha, design.outer_loss)
    phi = [fo.params[n] for n in fo.phi_names]
    v_norm = torch.sqrt(sum((t * t).sum() for t in fo.v))
    if v_norm > 0:
        eps = radius / v_norm
        fixed = {n: p.detach() for n, p in fo.params.items() if not n.startswith(EMBEDDER)}

        def grad_phi_shifted(sign: float) -> tuple[torch.Tensor, ...]:
            shifted = {**fixed, **{n: fixed[n] + sign * eps * vn for n, vn in zip(fo.enc_names, fo.v)}}
            loss = task_loss(model, {**shifted, **dict(zip(fo.phi_names, phi))}, batch.x, batch.y, loss_fn,
                             buffers=scratch_buffers(model))
            return torch.autograd.grad(loss, phi)

        mixed = [(gp - gm) / (2 * eps) for gp, gm in zip(grad_phi_shifted(1.0), grad_phi_shifted(-1.0))]
    else:  # L_outer is flat in θ_f: no second-order term
        mixed = [torch.zeros_like(p) for p in phi]
    return _combine(fo, mixed, lam, alpha, design)


# Activations whose backward kernel (silu_backward, mish_backward, hardsigmoid_backward) has no
# forward-mode derivative; autograd uses their composite, differentiable backward only while it
# records a graph.
NO_FORWARD_AD_BACKWARD = (nn.SiLU, nn.Mish, nn.Hardsigmoid)


def needs_recorded_backward(model: nn.Module) -> bool:
    """Whether the jvp mode must differentiate ``model`` with ``create_graph=True``: an activation
    in ``NO_FORWARD_AD_BACKWARD`` (e.g. SiLU, the tiny test EfficientNet's) has no forward-mode
    derivative of its plain backward. None of the registered pretrained backbones has one."""
    return any(isinstance(m, NO_FORWARD_AD_BACKWARD) for m in model.modules())


def meta_gradient_jvp(model: nn.Module, source_embedder: nn.Module, batch: MetaBatch, loss_fn,
                      lam: float, alpha: float, design: LossDesign = LossDesign()) -> MetaStep:
    """∇_φ L' for S = 1, the mixed second derivative as a forward-over-reverse product.

    (∂²L_inner/∂φ∂θ_f) v = d/dt ∇_φ L_inner(φ, θ_f + t v) at t = 0: one L_inner pass with θ_f
    as forward-mode dual tensors (tangent v, ``torch.autograd.forward_ad``); the tangent of
    its first-order ∇_φ (``torch.autograd.grad``) is the product. Exact (no truncation, right
    across ReLU6 kinks where central differences fail), and without ``create_graph`` it
    records no second backward graph. (``torch.func.jvp`` over ``torch.func.grad`` gives the
    same numbers but records one, as ``grad`` always differentiates with ``create_graph=True``:
    1.4-1.6x this mode's peak RSS on EfficientNet-Lite0. Networks that need the recorded
    graph, ``needs_recorded_backward``, pay that too.)

    Returns:
        As ``meta_gradient_exact``.

    Raises:
        RuntimeError: an operation in the network has no forward-mode derivative.
    """
    fo = first_order(model, source_embedder, batch, loss_fn, alpha, design.outer_loss)
    phi = [fo.params[n] for n in fo.phi_names]
    fixed = {n: p.detach() for n, p in fo.params.items() if not n.startswith(EMBEDDER)}
    try:
        with fwAD.dual_level():
            dual = {n: fwAD.make_dual(fixed[n], vn) for n, vn in zip(fo.enc_names, fo.v)}
            # scratch buffers: the real BatchNorm statistics advanced in first_order
            loss = task_loss(model, {**fixed, **dual, **dict(zip(fo.phi_names, phi))}, batch.x, batch.y,
                             loss_fn, buffers=scratch_buffers(model))
            grads = torch.autograd.grad(loss, phi, create_graph=needs_recorded_backward(model))
            tangents = [fwAD.unpack_dual(g).tangent for g in grads]
    except NotImplementedError as e:  # e.g. an activation called as a function, not a module
        raise RuntimeError(f"meta_grad='jvp' cannot differentiate this network: {e} "
                           "Use meta_grad='exact'.") from e
    # None: that part of ∇_φ L_inner does not depend on θ_f (no second-order term)
    mixed = [torch.zeros_like(p) if t is None else t.detach() for t, p in zip(tangents, phi)]
    return _combine(fo, mixed, lam, alpha, design)


def math_attention():
    """Scaled-dot-product attention on PyTorch's math backend: the fused kernels (flash,
    memory-efficient; timm's ViT/Swin and transformers use them through
    ``F.scaled_dot_product_attention``) have no double backward and no forward-mode
    derivative of their backward, which the exact and jvp meta-gradients need (measured on a
    timm ViT on CPU: "derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward
    is not implemented"). Same values, more memory for attention."""
    return sdpa_kernel([SDPBackend.MATH])


# Activations whose gradient jumps (ReLU family, hard sigmoid/swish/tanh), by class name so that
# timm's own versions (HardSwish, HardSigmoid, HardMish) count too.
NON_SMOOTH = ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "Hardswish", "HardSwish", "Hardsigmoid",
              "HardSigmoid", "Hardtanh", "HardMish", "Threshold", "Hardshrink", "Softshrink")


def non_smooth_activations(model: nn.Module) -> list[str]:
    """The activation types in ``model`` whose gradient jumps at a kink. Central differences of
    gradients across such a kink see the jump, not the (almost everywhere zero) second
    derivative autograd and ``torch.func`` compute: the finite-difference mode is wrong there."""
    return sorted({type(m).__name__ for m in model.modules() if type(m).__name__ in NON_SMOOTH})


# ---- the Trainable ----------------------------------------------------------------------------
class MonaTrainable(TwoStageTrainable):
    """Stage 1: the embedder by MoNA's bi-level objective (Alg. 1); stage 2: everything, task loss."""

    config_class = MonaConfig
    stage1_name = "meta_alignment"
    # Read by stage 1 beyond BASE_STAGE1_KEYS: every MonaConfig field.
    stage1_keys = ("lam", "alpha", "inner_steps", "meta_grad", "inner_loss", "outer_loss", "stage1_lr",
                   "stage1_weight_decay", "stage1_epochs", "source_batch_size", "source_max_samples")
    loss_part_keys = ("loss_inner", "loss_outer", "loss_align", "loss_uniform")

    def setup_method(self) -> None:
        """Refuse central differences on a network with kinks; load the source surrogate.

        Raises:
            ValueError: ``meta_grad="finite_difference"`` on a non-smooth network (one line).
        """
        kinks = non_smooth_activations(self.model) if self.cfg.meta_grad == "finite_difference" else []
        if kinks:
            raise ValueError(
                f"meta_grad='finite_difference' is wrong on {self.cfg.backbone}: its {', '.join(kinks)} "
                "activations have kinks where central differences are not second derivatives (measured "
                "~44x off on EfficientNet-Lite0). Use --set meta_grad=jvp (exact, S = 1) or exact.")
        self.design = LossDesign(self.cfg.inner_loss, self.cfg.outer_loss)
        self.reverse_over_forward = True  # exact mode, S = 1: until it fails on this network
        self.load_source(self.cfg.source_max_samples)

    def stage1_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.embedder.parameters(), lr=self.cfg.stage1_lr,
                                 weight_decay=self.cfg.stage1_weight_decay)

    def meta_gradient(self, batch: MetaBatch) -> MetaStep:
        """∇_φ L' on ``batch`` with the configured mode (attention on the math kernel)."""
        with math_attention():
            return self._meta_gradient(batch)

    def _meta_gradient(self, batch: MetaBatch) -> MetaStep:
        cfg = self.cfg
        if cfg.meta_grad == "exact":
            step = meta_gradient_exact(self.model, self.source_embedder, batch, self.loss_fn, cfg.lam, cfg.alpha,
                                       cfg.inner_steps, self.design, self.reverse_over_forward)
            self.reverse_over_forward &= not step.fell_back
            return step
        if cfg.meta_grad == "jvp":
            return meta_gradient_jvp(self.model, self.source_embedder, batch, self.loss_fn, cfg.lam, cfg.alpha,
                                     design=self.design)
        return meta_gradient_finite_difference(self.model, self.source_embedder, batch, self.loss_fn,
                                               cfg.lam, cfg.alpha, design=self.design)

    def stage1_epoch(self) -> dict:
        """One epoch of Alg. 1's stage 1: one meta-step on φ_e per target batch."""
        self.set_train_mode()
        keys = ("train_loss",) + self.loss_part_keys
        totals, seen = dict.fromkeys(keys, 0.0), 0
        for x, y in self.train_batches():
            x_s, y_s = self.source_batch(self.cfg.source_batch_size)
            step = self.meta_gradient(MetaBatch(x, y, x_s, y_s))
            if not math.isfinite(step.objective):
                return {"train_loss": step.objective, "samples": seen}
            self.optimizer.zero_grad(set_to_none=True)
            for p, g in zip(self.model.embedder.parameters(), step.grads):
                p.grad = g
            self.optimizer.step()
            self.scheduler.step()
            values = (step.objective, step.loss_inner, step.loss_outer, step.loss_align, step.loss_uniform)
            for key, value in zip(keys, values):
                totals[key] += value * len(x)
            seen += len(x)
        return {**{k: v / seen for k, v in totals.items()}, "samples": seen}

