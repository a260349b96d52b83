"""The 1D parts of g = predictor ∘ encoder ∘ embedder (ORCA's ``wrapper1D``; MoNA Appendix A.2).

A (C, L) input is cut into N = L / stack patches, stack = the smallest divisor of L with
L / stack <= ``target_seq_len`` (ORCA's ``Embeddings1D.get_stack_num``). The embedder maps
each C x stack patch to one D-wide token with ``Conv1d(C -> D, kernel = stride = stack)``,
applies LayerNorm(D) and adds learned position embeddings (MoNA A.2: "a linear projection
layer, a LayerNorm operation and learnable positional embeddings"). The encoder is the
pretrained transformers model with its ``embeddings`` replaced by a pass-through, called with
``inputs_embeds`` (ORCA's ``embedder_placeholder``), so positions are not added twice; it
returns ``last_hidden_state`` (B, N, D).

Source initialisation ("finetune++", and ORCA's default before stage 1; ORCA
``utils.embedder_init``) copies the pretrained embeddings' LayerNorm and the position rows the
pretrained model itself uses for N consecutive tokens: rows 0..N-1 for BERT, rows
padding_idx + 1 .. padding_idx + N for RoBERTa (``create_position_ids_from_inputs_embeds``;
padding_idx = 1, so rows 2..N+1). ``pretrained_position_ids`` reads them off the pretrained
embeddings module itself rather than branching on the model type. The projection is always
new (ORCA's ``conv_init``: Xavier-uniform with gain √2, zero bias): the text model has no
convolution to copy.

The source embedder stage-1 methods use is the frozen pretrained embeddings module (word +
position + token-type embeddings, LayerNorm) applied to token ids (B, N) -> (B, N, D).

Deviations:
    - The embedder keeps only the N position rows it uses, as an (N, D) parameter; ORCA keeps
      a ``target_seq_len``-row ``nn.Embedding`` (source init: the whole pretrained table).
      The rows used and their gradients are the same; a random init draws them from N(0, 1),
      like ORCA's fresh ``nn.Embedding``.
    - The embedder's LayerNorm uses the backbone's epsilon (RoBERTa 1e-5, BERT 1e-12) also
      under random init (ORCA: ``nn.LayerNorm`` default 1e-5).
    - 1D dense head: ORCA reshapes the pooled (B, N, C_out * stack) tensor straight to
      (B, C_out, L), which for C_out > 1 gives channel c the tokens of the c-th block of the
      sequence; here each token's values are read as (C_out, stack), so token n predicts
      positions n*stack .. (n+1)*stack - 1 of every channel. Identical for C_out = 1.
    - The transformers pooler is removed; classification mean-pools ``last_hidden_state``
      (ORCA's ``adaptive_pooler`` is the same token mean).
    - Precomputed source features (ORCA's ``text_xs.npy``, already embedded by RoBERTa's
      embeddings) pass through the source embedder unchanged.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

EMBEDDER_INITS = ("random", "source")
XAVIER_GAIN = math.sqrt(2)  # ORCA's conv_init


def stack_size(length: int, target_seq_len: int) -> int:
    """Smallest i with ``length % i == 0`` and ``length / i <= target_seq_len``.

    >>> stack_size(1000, 64), stack_size(1000, 512), stack_size(46, 512), stack_size(97, 64)
    (20, 2, 1, 97)

    Raises:
        ValueError: a length or target below 1.
    """
    if length < 1 or target_seq_len < 1:
        raise ValueError(f"need length >= 1 and target_seq_len >= 1, got {length} and {target_seq_len}")
    return next(i for i in range(1, length + 1) if length % i == 0 and length // i <= target_seq_len)


@torch.no_grad()
def pretrained_position_ids(embeddings: nn.Module, n: int) -> torch.Tensor:
    """The rows of ``embeddings.position_embeddings`` the pretrained model uses for n tokens.

    Runs the pretrained embeddings module once on zero ``inputs_embeds`` of length n and
    records the ids its position table is indexed with (BERT: 0..n-1; RoBERTa: 2..n+1).

    Raises:
        ValueError: n exceeds the positions the model has.
    """
    table = embeddings.position_embeddings
    seen: list[torch.Tensor] = []
    handle = table.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    try:
        dim = table.embedding_dim
        embeddings(inputs_embeds=torch.zeros(1, 1, dim, device=table.weight.device))
        first = int(seen[-1].reshape(-1)[0])
        if first + n > table.num_embeddings:
            raise ValueError(f"{n} tokens need position rows {first}..{first + n - 1}, but the backbone has "
                             f"{table.num_embeddings} rows: lower the backbone's target_seq_len to at most "
                             f"{table.num_embeddings - first}")
        embeddings(inputs_embeds=torch.zeros(1, n, dim, device=table.weight.device))
    finally:
        handle.remove()
    return seen[-1].reshape(-1)[:n].clone()


class Embedder1D(nn.Module):
    """Conv1d(C -> D, kernel = stride = stack) -> LayerNorm(D) -> + positions: (B, C, L) -> (B, N, D)."""

    def __init__(self, in_channels: int, stack: int, positions: torch.Tensor, layer_norm: nn.LayerNorm,
                 init: str):
        """
        Args:
            in_channels: the task's C.
            stack: patch length (kernel and stride of the projection).
            positions: (N, D) pretrained position rows (copied under source init).
            layer_norm: the pretrained embeddings' LayerNorm (copied under source init).
            init: "source" or "random".
        """
        super().__init__()
        if init not in EMBEDDER_INITS:
            raise ValueError(f"embedder init must be one of {EMBEDDER_INITS}, got {init!r}")
        n, dim = positions.shape
        self.stack, self.num_tokens = stack, n
        self.projection = nn.Conv1d(in_channels, dim, kernel_size=stack, stride=stack)
        nn.init.xavier_uniform_(self.projection.weight, gain=XAVIER_GAIN)
        nn.init.zeros_(self.projection.bias)
        self.norm = nn.LayerNorm(dim, eps=layer_norm.eps)
        self.position_embeddings = nn.Parameter(torch.empty(n, dim))
        with torch.no_grad():
            if init == "source":
                self.norm.weight.copy_(layer_norm.weight)
                self.norm.bias.copy_(layer_norm.bias)
                self.position_embeddings.copy_(positions)
            else:
                nn.init.normal_(self.position_embeddings)  # nn.Embedding's default, as ORCA

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.stack * self.num_tokens:
            raise ValueError(f"expected (B, C, {self.stack * self.num_tokens}) inputs, got {tuple(x.shape)}")
        tokens = self.projection(x).transpose(1, 2)  # (B, C, L) -> (B, D, N) -> (B, N, D)
        return self.norm(tokens) + self.position_embeddings  # (B, N, D) + (N, D)


class InputsEmbedsPassthrough(nn.Module):
    """Stands in for a transformers model's ``embeddings``: returns ``inputs_embeds`` as given."""

    def forward(self, input_ids=None, inputs_embeds=None, **kwargs) -> torch.Tensor:
        if inputs_embeds is None:
            raise ValueError("the cross-modal encoder takes token embeddings (inputs_embeds), not token ids")
        return inputs_embeds


class TextEncoder(nn.Module):
    """The pretrained transformers body on (B, N, D) token embeddings -> (B, N, D) hidden states.

    Same interface as ``crossmodal.Encoder`` (``out_dim``, ``num_prefix_tokens``, ``layout``).
    """

    def __init__(self, body: nn.Module):
        super().__init__()
        body.embeddings = InputsEmbedsPassthrough()
        body.pooler = None  # unused: the heads pool themselves
        self.body = body
        self.layout = "nld"
        self.out_dim = body.config.hidden_size
        self.num_prefix_tokens = 0

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.body(inputs_embeds=tokens).last_hidden_state  # (B, N, D)


class DenseHead1D(nn.Module):
    """ORCA's 1D dense predictor: average-pool each token's D values to C_out * stack, unfold to (C_out, L).

    Parameter-free (ORCA's ``adaptive_pooler``): token n's pooled values, read as (C_out, stack),
    are positions n*stack .. (n+1)*stack - 1 of each output channel.
    """

    def __init__(self, num_outputs: int, stack: int):
        super().__init__()
        self.num_outputs, self.stack = num_outputs, stack

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, _ = tokens.shape
        k, s = self.num_outputs, self.stack
        x = F.adaptive_avg_pool1d(tokens, k * s)  # (B, N, D) -> (B, N, K·s), pooling over features
        x = x.reshape(b, n, k, s).permute(0, 2, 1, 3)  # (B, N, K, s) -> (B, K, N, s)
        return x.reshape(b, k, n * s)  # (B, K, N, s) -> (B, K, L)


class SourceEmbedder1D(nn.Module):
    """The frozen pretrained embeddings on source token ids: (B, N) int -> (B, N, D).

    Float input (B, N, D) is taken as already embedded (ORCA's precomputed ``text_xs.npy``)
    and returned unchanged.
    """

    def __init__(self, embeddings: nn.Module):
        super().__init__()
        self.embeddings = embeddings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            if x.dim() != 3:
                raise ValueError(f"precomputed source features must be (B, N, D), got {tuple(x.shape)}")
            return x
        if x.dim() != 2:
            raise ValueError(f"source token ids must be (B, N), got {tuple(x.shape)}")
        return self.embeddings(input_ids=x)  # (B, N) -> (B, N, D)
