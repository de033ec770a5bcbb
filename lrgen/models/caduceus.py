"""Caduceus: bidirectional Mamba (BiMamba) DNA language model, plain (Ph) or RC-equivariant (PS).

Architecture and parameter names are those of kuleshov-group's ``CaduceusForMaskedLM`` so that official checkpoints
load unchanged and lrgen's checkpoints are in the official layout (``docs/models.md`` lists what was checked):

- Mamba-1 mixer: ``in_proj`` → depthwise causal ``conv1d`` + SiLU → ``x_proj`` (dt, B, C) → ``dt_proj`` →
  selective scan with ``A = -exp(A_log)``, skip ``D``, gate ``silu(z)`` → ``out_proj``.
- BiMamba: ``mamba_fwd`` on x plus ``mamba_rev`` on x reversed (flipped back), added (or multiplied); the two
  directions share ``in_proj`` and ``out_proj`` when ``bidirectional_weight_tie``.
- Blocks: residual add → RMSNorm → BiMamba; final add + norm; LM head tied to the embedding.
- PS (``rcps``): hidden states have ``2·d_model`` channels, a forward half and a reverse-complement half in
  forward length order with channels flipped. Embedding ``[E(x), flip_LC(E(rc(x)))]``; every norm and mixer runs
  on the forward half and on the flip_LC of the RC half (same weights); LM head ``W·h_f + W[comp]·flip_C(h_rc)``.
  With ``fused_add_norm`` (the released checkpoints) each RCPS block normalises the *second* half of the
  residual sum as its forward half and the first half as its RC half, i.e. the halves swap at every block; this
  is reproduced because the released weights were trained with it. The result is still exactly RC-equivariant.

Every mixer direction goes through the scan runner (:mod:`lrgen.models.scan`); keys are
``layers.{i}.mamba_fwd`` / ``layers.{i}.mamba_rev`` and, for the RC half of PS, ``layers.{i}.rc.mamba_fwd`` /
``layers.{i}.rc.mamba_rev``. In the RC half, ``mamba_fwd`` walks the sequence right to left and ``mamba_rev``
left to right (that is what running them on the reverse complement means in forward coordinates).
"""

from __future__ import annotations

import math
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lrgen.errors import LrgenError
from lrgen.models.base import LanguageModel
from lrgen.models.config import ModelConfig
from lrgen.models.layers import RMSNorm, rms_norm
from lrgen.models.scan import ScanRunner, run_whole, sequence_order
from lrgen.ops import causal_conv1d, conv_states, selective_scan
from lrgen.ops.bimamba import Direction, bimamba
from lrgen.tokenizer import COMPLEMENT_IDS, VOCAB_SIZE

FAMILY = "caduceus"

SSM_DEFAULTS: dict[str, Any] = {
    "d_state": 16,
    "d_conv": 4,
    "expand": 2,
    "dt_rank": "auto",
    "dt_min": 0.001,
    "dt_max": 0.1,
    "dt_init": "random",
    "dt_scale": 1.0,
    "dt_init_floor": 1e-4,
    "conv_bias": True,
    "bias": False,
}


@dataclass
class CaduceusConfig(ModelConfig):
    """The fields of the official ``CaduceusConfig``; HF bookkeeping keys of ``config.json`` are kept in ``extra``."""

    model_type: ClassVar[str] = FAMILY
    d_model: int = 256
    n_layer: int = 16
    vocab_size: int = VOCAB_SIZE
    ssm_cfg: dict[str, Any] = field(default_factory=dict)
    rms_norm: bool = True
    residual_in_fp32: bool = False
    fused_add_norm: bool = True
    pad_vocab_size_multiple: int = 8
    norm_epsilon: float = 1e-5
    initializer_cfg: dict[str, Any] | None = None
    bidirectional: bool = True
    bidirectional_strategy: str | None = "add"
    bidirectional_weight_tie: bool = True
    rcps: bool = False
    complement_map: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.ssm_cfg) - set(SSM_DEFAULTS) - {"use_fast_path"}  # a CUDA switch, meaningless here
        if unknown:
            raise LrgenError(f"caduceus config: unknown ssm_cfg keys {sorted(unknown)}")
        if self.bidirectional and (self.bidirectional_strategy or "add") not in ("add", "ew_multiply"):
            raise LrgenError(f"caduceus config: bidirectional_strategy {self.bidirectional_strategy!r} is not supported")
        if self.rcps and self.complement_map is None:
            raise LrgenError("caduceus config: rcps=true needs a complement_map")

    @property
    def ssm(self) -> dict[str, Any]:
        """``ssm_cfg`` over the Mamba defaults, ``dt_rank`` resolved."""
        cfg = {**SSM_DEFAULTS, **self.ssm_cfg}
        if cfg["dt_rank"] == "auto":
            cfg["dt_rank"] = math.ceil(self.d_model / 16)
        return cfg

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return -(-self.vocab_size // m) * m

    @property
    def complement(self) -> list[int]:
        """Complement id of every padded-vocabulary id (identity where the map is silent, as officially)."""
        cmap = {int(k): int(v) for k, v in (self.complement_map or {}).items()}
        return [cmap.get(i, i) for i in range(self.padded_vocab_size)]


def default_complement_map() -> dict[str, int]:
    """The tokenizer's complement map in the official ``config.json`` form."""
    return {str(i): c for i, c in enumerate(COMPLEMENT_IDS)}


class Mamba(nn.Module):
    """One Mamba-1 direction; :meth:`scan` processes a chunk ``(B, T, d_model)`` from a state."""

    def __init__(self, d_model: int, ssm: dict[str, Any]) -> None:
        super().__init__()
        d_inner = ssm["expand"] * d_model
        self.d_inner, self.d_state, self.dt_rank = d_inner, ssm["d_state"], ssm["dt_rank"]
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=ssm["bias"])
        self.conv1d = nn.Conv1d(d_inner, d_inner, ssm["d_conv"], groups=d_inner, bias=ssm["conv_bias"])
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * self.d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=ssm["bias"])
        self._init_dt(ssm)

    @torch.no_grad()
    def _init_dt(self, ssm: dict[str, Any]) -> None:
        std = self.dt_rank**-0.5 * ssm["dt_scale"]
        if ssm["dt_init"] == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        else:
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        lo, hi = math.log(ssm["dt_min"]), math.log(ssm["dt_max"])
        dt = torch.exp(torch.rand(self.d_inner) * (hi - lo) + lo).clamp(min=ssm["dt_init_floor"])
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def scan(self, x: Tensor, state: tuple[Tensor, Tensor] | None, marks: tuple[int, int] | None = None, *,
             reverse: bool = False, out: Tensor | None = None, flip_channels: bool = False):
        """One chunk, in sequence order, from ``state = (conv_state, ssm_state)``, walked right to left when
        ``reverse``; with ``marks`` also the states there; the output added into ``out`` when given (the
        sequence-order contract of :mod:`lrgen.models.scan`). ``flip_channels`` computes
        ``flip_C(scan(flip_C(x)))`` by flipping the projection weights instead of the activations."""
        conv_in, ssm_state = (None, None) if state is None else state
        w_in, w_out, b_out = self.in_proj.weight, self.out_proj.weight, self.out_proj.bias
        if flip_channels:
            w_in, w_out, b_out = w_in.flip(1), w_out.flip(0), None if b_out is None else b_out.flip(0)
        xz = F.linear(x, w_in, self.in_proj.bias).transpose(1, 2)  # (B, 2·d_inner, T)
        u, z = xz.chunk(2, dim=1)
        conv_weight = self.conv1d.weight[:, 0]
        conv_marks = None if marks is None else conv_states(u, conv_in, conv_weight.shape[-1], marks, reverse)
        u, conv_state = causal_conv1d(u, conv_weight, self.conv1d.bias, conv_in, "silu", reverse)
        dt, B, C = self.x_proj(u.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)
        y, ssm_state, *ssm_marks = selective_scan(
            u,
            dt,
            -torch.exp(self.A_log.float()),
            B.transpose(1, 2),
            C.transpose(1, 2),
            self.D.float(),
            z,
            self.dt_proj.bias.float(),
            True,
            ssm_state,
            marks,
            reverse,
        )
        out = _project(y.transpose(1, 2), w_out, b_out, out)
        if marks is None:
            return out, (conv_state, ssm_state)
        return out, (conv_state, ssm_state), list(zip(conv_marks.unbind(1), ssm_marks[0].unbind(1)))


def _project(y: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor | None) -> Tensor:
    """``F.linear(y, weight, bias)``, or added into ``out`` by the matrix multiply itself (no temporary)."""
    if out is None:
        return F.linear(y, weight, bias)
    out.baddbmm_(y.to(out.dtype), weight.to(out.dtype).t().expand(y.shape[0], -1, -1))
    return out if bias is None else out.add_(bias.to(out.dtype))


class BiMamba(nn.Module):
    """``mamba_fwd`` left to right plus ``mamba_rev`` right to left, combined by ``strategy``.

    ``fused`` (default on) lets training run the fused function; off, every direction runs through the scan runner
    under autograd (the reference the fused path is tested against)."""

    fused: bool = True

    def __init__(self, config: CaduceusConfig) -> None:
        super().__init__()
        ssm = config.ssm
        self.strategy = config.bidirectional_strategy or "add"
        self.mamba_fwd = Mamba(config.d_model, ssm)
        self.mamba_rev = Mamba(config.d_model, ssm) if config.bidirectional else None
        if self.mamba_rev is not None and config.bidirectional_weight_tie:
            self.mamba_rev.in_proj.weight = self.mamba_fwd.in_proj.weight
            self.mamba_rev.in_proj.bias = self.mamba_fwd.in_proj.bias
            self.mamba_rev.out_proj.weight = self.mamba_fwd.out_proj.weight
            self.mamba_rev.out_proj.bias = self.mamba_fwd.out_proj.bias

    def forward(self, x: Tensor, runner: ScanRunner, key: str, rc: bool = False,
                prenorm: Callable[[Tensor], Tensor] | None = None, out: Tensor | None = None) -> Tensor:
        """``rc=True`` computes ``flip_LC(BiMamba(flip_LC(x)))`` for the RC half: the directions swap their
        walking order and the channels are flipped through the weights. ``prenorm`` (position-wise) is applied
        to each chunk inside the scans, so its output never exists for the whole sequence. ``out`` (strategy
        ``add``, outside autograd): both directions are added into it. Under autograd over whole sequences a
        weight-tied ``add`` layer runs both directions as one fused function (:mod:`lrgen.ops.bimamba`) unless
        :attr:`fused` is off."""
        if self.fused and self._fusable(runner) and prenorm is None and out is None:
            return self._fused(x, rc)
        scans = [m.scan for m in (self.mamba_fwd, self.mamba_rev) if m is not None]
        if rc:
            scans = [partial(scan, flip_channels=True) for scan in scans]
        if prenorm is not None:
            scans = [_after(prenorm, scan) for scan in scans]
        scans = [sequence_order(scan) for scan in scans]
        if out is not None:
            for scan, reverse, name in zip(scans, (rc, not rc), ("mamba_fwd", "mamba_rev")):
                runner(scan, x, reverse=reverse, key=f"{key}.{name}", out=out)
            return out
        out = runner(scans[0], x, reverse=rc, key=f"{key}.mamba_fwd")
        if len(scans) == 1:
            return out
        out_rev = runner(scans[1], x, reverse=not rc, key=f"{key}.mamba_rev")
        return out + out_rev if self.strategy == "add" else out * out_rev

    def _fusable(self, runner: ScanRunner) -> bool:
        """Under autograd over a whole sequence, with both directions sharing ``in_proj`` and ``out_proj`` (weights
        and biases) and added: what :func:`lrgen.ops.bimamba.bimamba` computes."""
        fwd, rev = self.mamba_fwd, self.mamba_rev
        shared = rev is not None and all(getattr(getattr(rev, layer), p) is getattr(getattr(fwd, layer), p)
                                         for layer in ("in_proj", "out_proj") for p in ("weight", "bias"))
        return torch.is_grad_enabled() and runner is run_whole and self.strategy == "add" and shared

    def _fused(self, x: Tensor, rc: bool) -> Tensor:
        """Both directions through :func:`lrgen.ops.bimamba.bimamba`, matrices in x's (the compute) dtype."""
        fwd, rev = self.mamba_fwd, self.mamba_rev
        w_in, w_out, b_out = fwd.in_proj.weight, fwd.out_proj.weight, fwd.out_proj.bias
        if rc:
            w_in, w_out, b_out = w_in.flip(1), w_out.flip(0), None if b_out is None else b_out.flip(0)

        def cast(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(x.dtype)

        directions = tuple(
            Direction(m.conv1d.weight[:, 0], m.conv1d.bias, cast(m.x_proj.weight), cast(m.dt_proj.weight),
                      m.dt_proj.bias.float(), -torch.exp(m.A_log.float()), m.D.float())
            for m in (fwd, rev)
        )
        return bimamba(x, cast(w_in), cast(fwd.in_proj.bias), cast(w_out), cast(b_out), directions, (rc, not rc))


def _after(prenorm: Callable[[Tensor], Tensor], scan: Callable) -> Callable:
    """``scan`` on ``prenorm(x)``: a scan fn of the runner contract (:mod:`lrgen.models.scan`)."""

    def fn(x: Tensor, state, marks=None, **kwargs):
        return scan(prenorm(x), state, marks, **kwargs)

    return fn


class Wrapper(nn.Module):
    """A module under the name ``submodule`` (the official RCPS wrappers' parameter naming)."""

    def __init__(self, submodule: nn.Module) -> None:
        super().__init__()
        self.submodule = submodule


def _norm_layer(config: CaduceusConfig) -> nn.Module:
    if config.rms_norm:
        return RMSNorm(config.d_model, eps=config.norm_epsilon)
    return nn.LayerNorm(config.d_model, eps=config.norm_epsilon)


class CaduceusBlock(nn.Module):
    """Norm → BiMamba of the residual stream; per half for PS (see the module docstring for the fused half swap).

    :meth:`forward` takes the residual sum and returns the mixer output in the same channel layout. With
    ``swapped`` the layout holds the halves in the other order than this block's (forward, RC) order: the fused
    half swap is then a relabelling, never a copy.
    """

    def __init__(self, config: CaduceusConfig) -> None:
        super().__init__()
        self.rcps = config.rcps
        self.mixer: nn.Module = Wrapper(BiMamba(config)) if config.rcps else BiMamba(config)
        norm = _norm_layer(config)
        self.norm: nn.Module = Wrapper(norm) if config.rcps and not config.fused_add_norm else norm

    def forward(self, s: Tensor, runner: ScanRunner, key: str, swapped: bool = False) -> Tensor:
        norm = self.norm.submodule if isinstance(self.norm, Wrapper) else self.norm
        dtype = torch.get_autocast_dtype(s.device.type) if torch.is_autocast_enabled(s.device.type) else s.dtype
        bimamba = self.mixer.submodule if self.rcps else self.mixer
        fwd_norm = partial(_norm, norm, dtype=dtype)
        rc_norm = partial(_norm, norm, dtype=dtype, flip_channels=True)
        # outside autograd both directions (and both halves) add into one output buffer and the norms run per
        # chunk inside the scans; under autograd each half is normalised once (one saved copy for both directions)
        out = None
        if not torch.is_grad_enabled() and bimamba.strategy == "add":
            out = torch.zeros(s.shape, dtype=dtype, device=s.device)
        if not self.rcps:
            if torch.is_grad_enabled():
                return bimamba(fwd_norm(s), runner, key)
            return bimamba(s, runner, key, prenorm=fwd_norm, out=out)
        first, second = s.chunk(2, dim=-1)
        fwd, rc = (second, first) if swapped else (first, second)
        if torch.is_grad_enabled():
            fwd, rc, fwd_norm, rc_norm = fwd_norm(fwd), rc_norm(rc), None, None
        out_first, out_second = (None, None) if out is None else out.chunk(2, dim=-1)
        out_fwd, out_rc = (out_second, out_first) if swapped else (out_first, out_second)
        out_fwd = bimamba(fwd, runner, key, prenorm=fwd_norm, out=out_fwd)
        out_rc = bimamba(rc, runner, f"{key}.rc", rc=True, prenorm=rc_norm, out=out_rc)
        if out is not None:
            return out
        return torch.cat([out_rc, out_fwd] if swapped else [out_fwd, out_rc], dim=-1)


NORM_CHUNK = 65536  # positions normalised at once outside autograd: bounds the float32 temporaries


def _norm(norm: nn.Module, x: Tensor, dtype: torch.dtype, flip_channels: bool = False,
          out: Tensor | None = None) -> Tensor:
    """``norm(x)`` in ``dtype``; ``flip_channels`` gives ``flip_C(norm(flip_C(x)))`` (the norm's weights flipped).

    Outside autograd long inputs are normalised :data:`NORM_CHUNK` positions at a time into one output (``out``
    when given, of x's shape and ``dtype``).
    """
    weight = norm.weight.flip(0) if flip_channels else norm.weight
    bias = getattr(norm, "bias", None)
    bias = bias.flip(0) if flip_channels and bias is not None else bias

    def apply(part: Tensor, dest: Tensor | None = None) -> Tensor:
        if isinstance(norm, RMSNorm):
            return rms_norm(part, weight, norm.eps, dtype, out=dest)
        y = F.layer_norm(part, part.shape[-1:], weight, bias, norm.eps).to(dtype)
        return y if dest is None else dest.copy_(y)

    if out is None and (torch.is_grad_enabled() or x.shape[1] <= NORM_CHUNK):
        return apply(x)
    if out is None:
        out = torch.empty(x.shape, dtype=dtype, device=x.device)
    for start in range(0, x.shape[1], NORM_CHUNK):
        apply(x[:, start : start + NORM_CHUNK], out[:, start : start + NORM_CHUNK])
    return out


def _add_residual(residual: Tensor | None, hidden: Tensor, in_fp32: bool) -> Tensor:
    """The residual stream after adding a block's output (in place outside autograd, where dtypes allow)."""
    if residual is None:
        return hidden.float() if in_fp32 else hidden
    if not torch.is_grad_enabled() and residual.dtype == torch.promote_types(residual.dtype, hidden.dtype):
        return residual.add_(hidden)
    total = residual + hidden
    return total.float() if in_fp32 else total


class RCEmbedding(nn.Module):
    """PS embedding ``[E(x), flip_LC(E(rc(x)))]``; ``complement_map`` is a (saved) buffer as officially."""

    def __init__(self, vocab: int, d_model: int, complement: list[int]) -> None:
        super().__init__()
        self.register_buffer("complement_map", torch.tensor(complement, dtype=torch.long))
        self.embedding = nn.Embedding(vocab, d_model)

    def forward(self, input_ids: Tensor) -> Tensor:
        # flip_LC(E(rc(x))) at position l is E(complement(x_l)) with channels flipped: one lookup in a
        # (vocab, 2·d_model) table gives both halves without whole-sequence temporaries
        weight = self.embedding.weight
        return F.embedding(input_ids, torch.cat([weight, weight[self.complement_map].flip(1)], dim=1))


class RCLMHead(nn.Module):
    """PS LM head ``W·h_f + W[comp]·flip_C(h_rc)``."""

    def __init__(self, vocab: int, d_model: int, complement: list[int]) -> None:
        super().__init__()
        self.register_buffer("complement_map", torch.tensor(complement, dtype=torch.long))
        self.lm_head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        fwd, rc = x.chunk(2, dim=-1)
        weight = self.lm_head.weight
        return F.linear(fwd, weight) + F.linear(rc, weight[self.complement_map].flip(1))


class Backbone(nn.Module):
    def __init__(self, config: CaduceusConfig) -> None:
        super().__init__()
        vocab, comp = config.padded_vocab_size, config.complement
        words = RCEmbedding(vocab, config.d_model, comp) if config.rcps else nn.Embedding(vocab, config.d_model)
        self.embeddings = nn.ModuleDict({"word_embeddings": words})
        self.layers = nn.ModuleList(CaduceusBlock(config) for _ in range(config.n_layer))
        norm_f = _norm_layer(config)
        self.norm_f = Wrapper(norm_f) if config.rcps and not config.fused_add_norm else norm_f


class Caduceus(LanguageModel):
    """Caduceus masked LM (Ph or PS); parameter names are the official ``CaduceusForMaskedLM``'s."""

    family = FAMILY

    def __init__(self, config: CaduceusConfig) -> None:
        super().__init__(config)
        self.rc_equivariant = config.rcps
        backbone = Backbone(config)
        self.caduceus = nn.ModuleDict({"backbone": backbone})
        vocab, comp = config.padded_vocab_size, config.complement
        if config.rcps:
            self.lm_head: nn.Module = RCLMHead(vocab, config.d_model, comp)
            self.lm_head.lm_head.weight = backbone.embeddings["word_embeddings"].embedding.weight
        else:
            self.lm_head = nn.Linear(config.d_model, vocab, bias=False)
            self.lm_head.weight = backbone.embeddings["word_embeddings"].weight
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """The official recipe: zero linear biases (not dt), N(0, 0.02) embedding, out_proj scaled by 1/√n_layer."""
        cfg = self.config.initializer_cfg or {}
        std = cfg.get("initializer_range", 0.02)
        scale = math.sqrt(cfg.get("n_residuals_per_layer", 1) * self.config.n_layer)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and module.bias is not None and not name.endswith("dt_proj"):
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
            if isinstance(module, Mamba) and cfg.get("rescale_prenorm_residual", True):
                nn.init.kaiming_uniform_(module.out_proj.weight, a=math.sqrt(5))
                module.out_proj.weight /= scale

    @property
    def backbone(self) -> Backbone:
        return self.caduceus["backbone"]

    @property
    def hidden_size(self) -> int:
        return 2 * self.config.d_model if self.config.rcps else self.config.d_model

    def embed(self, input_ids: Tensor, runner: ScanRunner = run_whole) -> Tensor:
        backbone, config = self.backbone, self.config
        swap = config.rcps and config.fused_add_norm
        hidden, residual = backbone.embeddings["word_embeddings"](input_ids), None
        for i, layer in enumerate(backbone.layers):
            residual = _add_residual(residual, hidden, config.residual_in_fp32)
            del hidden  # the block's output is the next hidden: never hold two
            # the fused blocks swap the halves at every block: in layer 0's order the stored layout is swapped
            hidden = layer(residual, runner, f"layers.{i}", swapped=swap and i % 2 == 0)
        s = _add_residual(residual, hidden, config.residual_in_fp32)
        norm = backbone.norm_f.submodule if isinstance(backbone.norm_f, Wrapper) else backbone.norm_f
        # outside autograd the last block's output buffer, now added into s, receives the normalised result
        out = hidden if not torch.is_grad_enabled() and hidden is not s else None
        if not config.rcps:
            return _norm(norm, s, hidden.dtype, out=out)
        first, second = s.chunk(2, dim=-1)
        fwd, rc = (second, first) if swap and (config.n_layer - 1) % 2 == 0 else (first, second)
        if out is None:
            return torch.cat([_norm(norm, fwd, hidden.dtype), _norm(norm, rc, hidden.dtype, flip_channels=True)], -1)
        out_fwd, out_rc = out.chunk(2, dim=-1)
        _norm(norm, fwd, hidden.dtype, out=out_fwd)
        _norm(norm, rc, hidden.dtype, flip_channels=True, out=out_rc)
        return out

    def forward(self, input_ids: Tensor, runner: ScanRunner = run_whole) -> Tensor:
        """Float32 logits, one column per token of ``model.tokenizer`` (the padded-vocabulary columns dropped)."""
        return self.lm_head(self.embed(input_ids, runner)).float()[..., : self.tokenizer.vocab_size]


def _preset(d_model: int, n_layer: int, rcps: bool, **ssm: Any) -> CaduceusConfig:
    return CaduceusConfig(
        d_model=d_model,
        n_layer=n_layer,
        ssm_cfg={"d_state": 16, "d_conv": 4, "expand": 2, **ssm},
        rcps=rcps,
        complement_map=default_complement_map(),
    )


CONFIG_CLASS = CaduceusConfig
MODEL_CLASS = Caduceus

PRESETS: dict[str, CaduceusConfig] = {
    "caduceus-ps-131k": _preset(256, 16, True),
    "caduceus-ps-50m": _preset(512, 28, True),
    "caduceus-ph-50m": _preset(512, 28, False),
    "caduceus-ps-tiny": _preset(32, 2, True, d_state=8),
    "caduceus-ph-tiny": _preset(32, 2, False, d_state=8),
}

PRESET_DESCRIPTIONS: dict[str, str] = {
    "caduceus-ps-131k": "Caduceus-PS as released (d_model 256, 16 layers, d_state 16), RC-equivariant",
    "caduceus-ps-50m": "Caduceus-PS in the paper's 50M size class (d_model 512, 28 layers), RC-equivariant",
    "caduceus-ph-50m": "Caduceus-Ph in the paper's 50M size class (d_model 512, 28 layers); conjoin at inference",
    "caduceus-ps-tiny": "Caduceus-PS, d_model 32, 2 layers: for tests and smoke runs",
    "caduceus-ph-tiny": "Caduceus-Ph, d_model 32, 2 layers: for tests and smoke runs",
}
