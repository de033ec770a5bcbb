"""NTv2 baseline: a pre-LN transformer encoder over 6-mer tokens (Nucleotide Transformer v2, Dalla-Torre et al.).

Layer ``i``::

    x = x + Attention(LayerNorm(x))      # bidirectional, rotary positions on q and k, padding keys masked
    x = x + SwiGLU(LayerNorm(x))         # W_down(silu(W_gate x) * W_up x), no biases

then a final LayerNorm (``embed``'s output, one hidden state per 6-mer token) and an LM head over the k-mer
vocabulary: linear (lrgen's presets) or ESM's (``lm_head="esm"``: dense → exact GELU → LayerNorm → decoder + bias),
the head of the published checkpoints, which :mod:`lrgen.models.layouts` loads from the Hugging Face ESM layout.
Those were trained with ``<cls>`` first: with ``cls_token_id`` set, rows that lack it get it prepended and its
output dropped, so outputs line up with the tokens of :meth:`lrgen.tokenizer.KmerTokenizer.tokenize` (rows that
hold it, as ``model.tokenizer.encode`` gives them, are read as they are). Attention sees the whole window at once,
so the model cannot stream: it is the baseline that collapses when asked for contexts longer than it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lrgen.errors import LrgenError
from lrgen.models.base import LanguageModel
from lrgen.models.config import ModelConfig
from lrgen.models.scan import ScanRunner, run_whole
from lrgen.tokenizer import KmerTokenizer

FAMILY = "ntv2"


@dataclass
class NTv2Config(ModelConfig):
    """Architecture of an NTv2 model; serialised as ``config.json``."""

    model_type: ClassVar[str] = FAMILY
    d_model: int = 512
    n_layers: int = 12
    n_heads: int = 16
    mlp_hidden: int = 2048
    vocab_size: int = KmerTokenizer().vocab_size  # 4,107 (6-mers)
    pad_token_id: int = KmerTokenizer.PAD_ID
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    lm_head: str = "linear"  # "linear" or "esm"
    contact_head: bool = False  # ESM's contact regression: loaded and saved with the weights, never used
    cls_token_id: int | None = None  # prepended to rows that lack it (the published checkpoints)

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise LrgenError(
                f"ntv2 config: d_model {self.d_model} must split into n_heads {self.n_heads} heads of even width"
            )
        if self.lm_head not in ("linear", "esm"):
            raise LrgenError(f"ntv2 config: lm_head {self.lm_head!r} is not 'linear' or 'esm'")


def rotate(x: Tensor, positions: Tensor, base: float) -> Tensor:
    """Rotary position embedding of ``x (..., L, head_dim)`` at integer ``positions (L,)``.

    Channel ``j`` and ``j + head_dim/2`` form a pair rotated by ``positions * base^(-2j/head_dim)``, so the dot
    product of a rotated query at ``p`` and a rotated key at ``q`` depends on ``p - q`` only.
    """
    half = x.shape[-1] // 2
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None] * inv_freq  # (L, half)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x.float()[..., :half], x.float()[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, config: NTv2Config) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.rope_base = config.rope_base
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        """``x (B, L, D)``; ``keep (B, L)`` is True at tokens that may be attended to (None: all of them)."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.n_heads, -1)).permute(2, 0, 3, 1, 4)  # 3 × (B, H, L, hd)
        positions = torch.arange(x.shape[1], device=x.device)
        q, k = rotate(q, positions, self.rope_base), rotate(k, positions, self.rope_base)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None if keep is None else keep[:, None, None, :])
        return self.out(y.transpose(1, 2).flatten(-2))


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(d_model, hidden, bias=False)
        self.up = nn.Linear(d_model, hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class ESMLMHead(nn.Module):
    """ESM's masked-LM head: ``decoder(LayerNorm(gelu(dense(x)))) + bias`` (exact erf GELU, decoder without bias)."""

    def __init__(self, config: NTv2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.decoder = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(x)))) + self.bias


class NTv2Layer(nn.Module):
    def __init__(self, config: NTv2Config) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.attn = Attention(config)
        self.norm_mlp = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.mlp = SwiGLU(config.d_model, config.mlp_hidden)

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        x = x + self.attn(self.norm_attn(x), keep)
        return x + self.mlp(self.norm_mlp(x))


class NTv2Model(LanguageModel):
    """NTv2-style masked language model over 6-mer tokens; whole windows only (``streamable = False``)."""

    family = FAMILY
    tokenizer_kind = "kmer"
    streamable = False
    position_wise = ((NTv2Layer, "forward"),)  # whole windows of one length: attention included

    def __init__(self, config: NTv2Config) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(NTv2Layer(config) for _ in range(config.n_layers))
        self.norm_f = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        esm = config.lm_head == "esm"
        self.lm_head: nn.Module = ESMLMHead(config) if esm else nn.Linear(config.d_model, config.vocab_size)
        if config.contact_head:  # ESM's esm.contact_head.regression (attention maps → contacts): carried, unused
            self.contact_head = nn.Linear(config.n_layers * config.n_heads, 1)
        nn.init.normal_(self.embedding.weight, std=0.02)

    @classmethod
    def default_tokenizer(cls, config: NTv2Config) -> KmerTokenizer:
        """The NTv2 6-mer tokenizer; ``<cls>`` first when the model was trained with it."""
        return KmerTokenizer(prepend_cls=config.cls_token_id is not None)

    @property
    def hidden_size(self) -> int:
        return self.config.d_model

    def _with_cls(self, input_ids: Tensor) -> tuple[Tensor, bool]:
        """``input_ids`` with ``<cls>`` prepended where the model needs it, and whether it was."""
        cls = self.config.cls_token_id
        if cls is None:
            return input_ids, False
        has = (input_ids == cls).any(dim=1)
        if bool(has.all()):
            return input_ids, False
        if bool(has.any()):
            raise LrgenError("ntv2: some rows hold <cls> and some do not; give it in every row or in none")
        return torch.cat([input_ids.new_full((input_ids.shape[0], 1), cls), input_ids], dim=1), True

    def embed(self, input_ids: Tensor, runner: ScanRunner = run_whole) -> Tensor:
        if runner is not run_whole:
            raise LrgenError(
                "ntv2 is a transformer and cannot stream; run it on whole windows (no chunk_size), "
                "or use a caduceus or hawk model for chunked long-context inference"
            )
        input_ids, added = self._with_cls(input_ids)
        keep = input_ids != self.config.pad_token_id
        keep = keep | ~keep.any(dim=1, keepdim=True)  # an all-padding row attends to itself rather than to nothing
        keep = None if bool(keep.all()) else keep  # no mask lets attention take its flash kernel
        x = self.embedding(input_ids)
        for layer in self.layers:
            x = layer(x, keep)
        x = self.norm_f(x)
        return x[:, 1:] if added else x

    def forward(self, input_ids: Tensor, runner: ScanRunner = run_whole) -> Tensor:
        return self.lm_head(self.embed(input_ids, runner))


CONFIG_CLASS = NTv2Config
MODEL_CLASS = NTv2Model

PRESETS: dict[str, NTv2Config] = {
    "ntv2-50m": NTv2Config(d_model=512, n_layers=12, n_heads=16, mlp_hidden=2048),
    "ntv2-tiny": NTv2Config(d_model=32, n_layers=2, n_heads=4, mlp_hidden=64),
}

PRESET_DESCRIPTIONS: dict[str, str] = {
    "ntv2-50m": "NTv2-style transformer baseline over 6-mers, d_model 512, 12 layers, about 55M parameters",
    "ntv2-tiny": "NTv2-style transformer, d_model 32, 2 layers: for tests and smoke runs",
}
