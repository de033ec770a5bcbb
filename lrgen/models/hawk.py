"""Hawk: a bidirectional stack of Griffin RG-LRU recurrent blocks (De et al. 2024) over single-nucleotide tokens.

Residual block ``i`` (pre-norm)::

    x = x + RecurrentBlock(RMSNorm(x))
    x = x + GeGLU(RMSNorm(x))

followed by a final RMSNorm and an LM head tied to the embedding.

Recurrent block, made bidirectional the BiMamba way. With ``u = RMSNorm(x)``::

    g     = gelu(linear_y(u))                                   # gate branch, position-wise
    v     = linear_x(u)                                         # shared by both directions
    h_fwd = RG-LRU_fwd(conv_fwd(v))                             # left to right
    h_rev = flip(RG-LRU_rev(conv_rev(flip(v))))                 # right to left
    out   = linear_out((h_fwd + h_rev) * g)

``linear_x``, ``linear_y`` and ``linear_out`` are tied between the directions (so this equals the sum of a forward
and a reversed Griffin block sharing those projections, with ``linear_out``'s bias added once); each direction has
its own causal depthwise conv (width 4, with bias) and its own RG-LRU (gates and ``Λ``). RG-LRU on conv output
``x_t``, with block-diagonal gate weights::

    r_t = σ(W_a x_t + b_a),   i_t = σ(W_x x_t + b_x)
    log a_t = -8 · r_t · softplus(Λ)
    h_t = a_t ⊙ h_{t-1} + sqrt(1 - a_t²) ⊙ (i_t ⊙ x_t)          # float32 state

Each direction is one scan (``runner(fn, v, reverse=..., key="layers.{i}.fwd"/".rev")``) whose state is
``(conv_state (B, D, 3), h (B, D))``; the state is ``d_model`` wide (no expansion). The scans take their chunks in
sequence order: the reverse direction's conv and RG-LRU run right to left in place (no flipped copies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lrgen.errors import LrgenError
from lrgen.models.base import LanguageModel
from lrgen.models.config import ModelConfig
from lrgen.models.layers import RMSNorm
from lrgen.models.scan import ScanRunner, run_whole, sequence_order
from lrgen.ops import causal_conv1d, conv_states, linear_scan
from lrgen.tokenizer import VOCAB_SIZE

FAMILY = "hawk"

_C = 8.0  # the fixed exponent scale c of Griffin's a_t = a^(c r_t)


@dataclass
class HawkConfig(ModelConfig):
    """Architecture of a Hawk model; serialised as ``config.json``."""

    model_type: ClassVar[str] = FAMILY
    d_model: int = 512
    n_layers: int = 16
    n_heads: int = 8  # blocks of the block-diagonal RG-LRU gate weights
    mlp_expansion: int = 3
    conv_width: int = 4
    vocab_size: int = VOCAB_SIZE
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise LrgenError(f"hawk config: d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


class BlockDiagonalLinear(nn.Module):
    """``y = x W + b`` with ``W`` block-diagonal: ``n_blocks`` independent ``(w, w)`` blocks over the channels."""

    def __init__(self, dim: int, n_blocks: int) -> None:
        super().__init__()
        self.n_blocks = n_blocks
        width = dim // n_blocks
        self.weight = nn.Parameter(torch.randn(n_blocks, width, width) / math.sqrt(width))
        self.bias = nn.Parameter(torch.zeros(n_blocks, width))

    def forward(self, x: Tensor) -> Tensor:
        xb = x.unflatten(-1, (self.n_blocks, -1))
        return (torch.einsum("...hi,hij->...hj", xb, self.weight) + self.bias).flatten(-2)


def _init_softplus_lambda(dim: int) -> Tensor:
    """``Λ`` such that ``a = exp(-softplus(Λ))`` has ``a²`` uniform in ``[0.9², 0.999²]`` (Griffin's ring init)."""
    a = torch.empty(dim).uniform_(0.9**2, 0.999**2).sqrt()
    return torch.log(torch.expm1(-torch.log(a)))  # inverse softplus of -log a


class RGLRU(nn.Module):
    """One direction of the temporal block: causal depthwise conv, then the real-gated linear recurrent unit."""

    def __init__(self, dim: int, n_heads: int, conv_width: int) -> None:
        super().__init__()
        self.conv_weight = nn.Parameter(torch.empty(dim, conv_width).uniform_(-1, 1) / math.sqrt(conv_width))
        self.conv_bias = nn.Parameter(torch.zeros(dim))
        self.gate_a = BlockDiagonalLinear(dim, n_heads)
        self.gate_x = BlockDiagonalLinear(dim, n_heads)
        self.a_param = nn.Parameter(_init_softplus_lambda(dim))

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-position recurrence weight ``a_t`` and input ``sqrt(1 - a_t²) i_t x_t``, both float32."""
        xf = x.float()
        r = torch.sigmoid(self.gate_a(x).float())
        i = torch.sigmoid(self.gate_x(x).float())
        log_a = -_C * r * F.softplus(self.a_param.float())
        a = torch.exp(log_a)
        multiplier = torch.sqrt(-torch.expm1(2 * log_a))  # sqrt(1 - a²), accurate for a near 1
        return a, multiplier * i * xf

    def scan(self, x: Tensor, state: tuple[Tensor, Tensor] | None, marks: tuple[int, int] | None = None, *,
             reverse: bool = False, out: Tensor | None = None):
        """One chunk ``(B, T, D)``, in sequence order, from ``state = (conv_state, h)`` (``None``: zeros), walked
        right to left when ``reverse``; with ``marks`` also the states there (the LRU's states are its outputs);
        the output added into ``out`` when given (the sequence-order contract of :mod:`lrgen.models.scan`)."""
        conv_in, h = (None, None) if state is None else state
        xt = x.transpose(1, 2)
        xc, conv_state = causal_conv1d(xt, self.conv_weight, self.conv_bias, conv_in, None, reverse)
        a, b = self.gates(xc.transpose(1, 2))
        hseq, h = linear_scan(a, b, h, reverse)
        y = hseq.to(x.dtype) if out is None else out.add_(hseq.to(x.dtype))
        if marks is None:
            return y, (conv_state, h)
        convs = conv_states(xt, conv_in, self.conv_weight.shape[-1], marks, reverse)
        first, every, length = *marks, x.shape[1]  # the state after p = first, first + every, … positions
        index = (torch.arange(length - first, -1, -every, device=x.device) if reverse
                 else torch.arange(first - 1, length, every, device=x.device))
        hs = hseq[:, index].float()
        return y, (conv_state, h), list(zip(convs.unbind(1), hs.unbind(1)))


class RecurrentBlock(nn.Module):
    """Griffin's recurrent block, bidirectional with tied ``linear_x``/``linear_y``/``linear_out`` (module doc)."""

    def __init__(self, config: HawkConfig, index: int) -> None:
        super().__init__()
        d = config.d_model
        self.index = index
        self.linear_x = nn.Linear(d, d)
        self.linear_y = nn.Linear(d, d)
        self.linear_out = nn.Linear(d, d)
        self.fwd = RGLRU(d, config.n_heads, config.conv_width)
        self.rev = RGLRU(d, config.n_heads, config.conv_width)

    def forward(self, u: Tensor, runner: ScanRunner) -> Tensor:
        g = F.gelu(self.linear_y(u), approximate="tanh")
        v = self.linear_x(u)
        h = runner(sequence_order(self.fwd.scan), v, reverse=False, key=f"layers.{self.index}.fwd")
        h = h + runner(sequence_order(self.rev.scan), v, reverse=True, key=f"layers.{self.index}.rev")
        return self.linear_out(h * g)


class GeGLU(nn.Module):
    """``W_down(gelu(W_gate x) * W_up x)`` with hidden width ``mlp_expansion * d_model``."""

    def __init__(self, d_model: int, expansion: int) -> None:
        super().__init__()
        hidden = expansion * d_model
        self.gate = nn.Linear(d_model, hidden)
        self.up = nn.Linear(d_model, hidden)
        self.down = nn.Linear(hidden, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.gelu(self.gate(x), approximate="tanh") * self.up(x))


class HawkLayer(nn.Module):
    def __init__(self, config: HawkConfig, index: int) -> None:
        super().__init__()
        self.norm_mix = RMSNorm(config.d_model, config.norm_eps)
        self.mixer = RecurrentBlock(config, index)
        self.norm_mlp = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = GeGLU(config.d_model, config.mlp_expansion)

    def forward(self, x: Tensor, runner: ScanRunner) -> Tensor:
        x = x + self.mixer(self.norm_mix(x), runner)
        return x + self.mlp(self.norm_mlp(x))


class HawkModel(LanguageModel):
    """Bidirectional Hawk masked language model over the character vocabulary."""

    family = FAMILY
    tokenizer_kind = "char"
    streamable = True
    position_wise = ((RMSNorm, "forward"), (RGLRU, "gates"), (GeGLU, "forward"))

    def __init__(self, config: HawkConfig) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(HawkLayer(config, i) for i in range(config.n_layers))
        self.norm_f = RMSNorm(config.d_model, config.norm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        """Normal(0.02) embedding and projections, zero biases; residual-output projections scaled by
        ``1/sqrt(2 n_layers)``. Conv, gate and ``Λ`` keep their own initialisation."""
        nn.init.normal_(self.embedding.weight, std=0.02)
        out_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        for layer in self.layers:
            for lin in (layer.mixer.linear_x, layer.mixer.linear_y, layer.mlp.gate, layer.mlp.up):
                nn.init.normal_(lin.weight, std=0.02)
                nn.init.zeros_(lin.bias)
            for lin in (layer.mixer.linear_out, layer.mlp.down):
                nn.init.normal_(lin.weight, std=out_std)
                nn.init.zeros_(lin.bias)

    @property
    def hidden_size(self) -> int:
        return self.config.d_model

    def embed(self, input_ids: Tensor, runner: ScanRunner = run_whole) -> Tensor:
        x = self.embedding(input_ids)
        for layer in self.layers:
            x = layer(x, runner)
        return self.norm_f(x)

    def forward(self, input_ids: Tensor, runner: ScanRunner = run_whole) -> Tensor:
        return F.linear(self.embed(input_ids, runner), self.embedding.weight)


CONFIG_CLASS = HawkConfig
MODEL_CLASS = HawkModel

PRESETS: dict[str, HawkConfig] = {
    "hawk-50m": HawkConfig(d_model=512, n_layers=16, n_heads=8, mlp_expansion=3),
    "hawk-tiny": HawkConfig(d_model=32, n_layers=2, n_heads=4, mlp_expansion=2),
}

PRESET_DESCRIPTIONS: dict[str, str] = {
    "hawk-50m": "Bidirectional Hawk (RG-LRU), d_model 512, 16 layers, about 53M parameters (the paper's size class)",
    "hawk-tiny": "Bidirectional Hawk, d_model 32, 2 layers: for tests and smoke runs",
}
