"""Triton causal depthwise conv1d with its tail state in and out; see :func:`lrgen.ops.causal_conv1d`.

Forward: one program per (batch, channel block, tile of positions), the ``w`` taps unrolled, positions before the
chunk read from ``state``; bias and SiLU fused; tiles wholly inside the sequence and the channels load without masks.
Backward: the PyTorch reference recomputed under autograd (the conv is a small share of a block's time), and for
the fused BiMamba function :func:`conv_silu_backward_triton`, the gradients of ``silu(conv(x) + bias)`` in one pass
that recomputes the conv (nothing saved) and adds dx into a buffer in place. ``reverse=True`` convolves right to
left in place (as on the flipped sequence).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from lrgen.ops import needs_grad
from lrgen.ops.limits import CONV_SILU_BACKWARD_MAX_WIDTH, check_addressable
from lrgen.ops.reference import causal_conv1d_ref

# (channels, positions) per program for each layout (length-major = channels contiguous in memory) and for the fused
# conv + SiLU backward, and warps; the backward's from an H100 sweep (docs/benchmarks.md)
BLOCK = {"length_major": (128, 32), "channels_first": (16, 128), "backward": (64, 16)}
NUM_WARPS = {"length_major": 2, "channels_first": 4, "backward": 1}
TILES_PER_PROGRAM = 16  # position tiles one backward program walks (fewer partial weight gradients to sum)


@triton.jit
def _conv_tile(x_ptr, w_ptr, bias_ptr, state_ptr, b, offs_d, t, L, D, s_xb, s_xd, s_xl, W: tl.constexpr,
               BD: tl.constexpr, T: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_STATE: tl.constexpr,
               REVERSE: tl.constexpr, MASKED: tl.constexpr):
    """The (BD, T) tile of the convolution before the activation. Unless MASKED, every tap lies inside x and the
    channel block is whole: no masks and no state reads."""
    md = offs_d < D
    if HAS_BIAS:
        acc = tl.load(bias_ptr + offs_d, mask=md, other=0.0).to(tl.float32)[:, None] + tl.zeros((BD, T), tl.float32)
    else:
        acc = tl.zeros((BD, T), dtype=tl.float32)
    for k in tl.static_range(W):
        src = t - (W - 1) + k
        if REVERSE:
            pos = L - 1 - src
        else:
            pos = src
        ptrs = x_ptr + b * s_xb + offs_d[:, None] * s_xd + pos[None, :] * s_xl
        if MASKED:
            inside = md[:, None] & (src[None, :] >= 0) & (src[None, :] < L)
            xv = tl.load(ptrs, mask=inside, other=0.0).to(tl.float32)
            if HAS_STATE:
                before = md[:, None] & (src[None, :] < 0)
                xv += tl.load(state_ptr + (b * D + offs_d)[:, None] * (W - 1) + (W - 1 + src)[None, :], mask=before,
                              other=0.0)
            wk = tl.load(w_ptr + offs_d * W + k, mask=md, other=0.0).to(tl.float32)
        else:
            xv = tl.load(ptrs).to(tl.float32)
            wk = tl.load(w_ptr + offs_d * W + k).to(tl.float32)
        acc += wk[:, None] * xv
    return acc


@triton.jit
def _conv_kernel(
    x_ptr, w_ptr, bias_ptr, state_ptr, y_ptr, L, D, s_xb, s_xd, s_xl, s_yb, s_yd, s_yl,
    W: tl.constexpr, BD: tl.constexpr, T: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_STATE: tl.constexpr,
    SILU: tl.constexpr, REVERSE: tl.constexpr,
):
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BD + tl.arange(0, BD)
    t0 = tl.program_id(2) * T
    t = t0 + tl.arange(0, T)
    interior = (t0 >= W - 1) & (t0 + T <= L) & ((tl.program_id(1) + 1) * BD <= D)
    if interior:
        acc = _conv_tile(x_ptr, w_ptr, bias_ptr, state_ptr, b, offs_d, t, L, D, s_xb, s_xd, s_xl, W, BD, T,
                         HAS_BIAS, HAS_STATE, REVERSE, False)
    else:
        acc = _conv_tile(x_ptr, w_ptr, bias_ptr, state_ptr, b, offs_d, t, L, D, s_xb, s_xd, s_xl, W, BD, T,
                         HAS_BIAS, HAS_STATE, REVERSE, True)
    if SILU:
        acc = acc * tl.sigmoid(acc)
    if REVERSE:
        out = L - 1 - t
    else:
        out = t
    tl.store(y_ptr + b * s_yb + offs_d[:, None] * s_yd + out[None, :] * s_yl, acc.to(y_ptr.dtype.element_ty),
             mask=(offs_d < D)[:, None] & (t[None, :] < L))


@triton.jit
def _conv_silu_bwd_kernel(
    x_ptr, w_ptr, bias_ptr, du_ptr, dx_ptr, dw_ptr, dbias_ptr, L, D, TILES,
    s_xb, s_xd, s_xl, s_gb, s_gd, s_gl, s_ob, s_od, s_ol,
    W: tl.constexpr, BD: tl.constexpr, T: tl.constexpr, HAS_BIAS: tl.constexpr, REVERSE: tl.constexpr,
    ACCUMULATE: tl.constexpr,
):
    """Gradients of ``u = silu(pre)``, ``pre_t = bias + Σ_k w_k x_{t-W+1+k}`` (scan order t, zero before 0) from du,
    for BD channels over TILES tiles of T positions: ``g_t = du_t σ(pre_t)(1 + pre_t(1 - σ(pre_t)))``,
    ``dx_s = Σ_k w_k g_{s+W-1-k}`` written (or with ACCUMULATE added) to dx, and this program's partial sums
    ``Σ_t g_t x_{t-W+1+k}`` and ``Σ_t g_t`` to row (batch, position program) of dw (rows, d, W) and dbias
    (rows, d). The g of the W-1 positions past a tile are recomputed, not exchanged."""
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BD + tl.arange(0, BD)
    md = offs_d < D
    row = b * tl.num_programs(2) + tl.program_id(2)  # of the partial sums; each channel block fills its own
    dbias = tl.zeros((BD,), dtype=tl.float32)
    dw0 = tl.zeros((BD,), dtype=tl.float32)
    dw1 = tl.zeros((BD,), dtype=tl.float32)
    dw2 = tl.zeros((BD,), dtype=tl.float32)
    dw3 = tl.zeros((BD,), dtype=tl.float32)
    for i in range(TILES):
        t = (tl.program_id(2) * TILES + i) * T + tl.arange(0, T)
        dx = tl.zeros((BD, T), dtype=tl.float32)
        for m in tl.static_range(W):
            tm = t + m
            pre = _conv_tile(x_ptr, w_ptr, bias_ptr, None, b, offs_d, tm, L, D, s_xb, s_xd, s_xl, W, BD, T, HAS_BIAS,
                             False, REVERSE, True)
            pm = L - 1 - tm if REVERSE else tm
            du = tl.load(du_ptr + b * s_gb + offs_d[:, None] * s_gd + pm[None, :] * s_gl,
                         mask=md[:, None] & (tm < L)[None, :], other=0.0).to(tl.float32)
            sig = tl.sigmoid(pre)
            g = du * sig * (1.0 + pre * (1.0 - sig))
            dx += tl.load(w_ptr + offs_d * W + (W - 1 - m), mask=md, other=0.0).to(tl.float32)[:, None] * g
            if m == 0:  # the tile's own positions: the parameter gradients
                dbias += tl.sum(g, axis=1)
                for k in tl.static_range(W):
                    src = t - (W - 1) + k
                    ps = L - 1 - src if REVERSE else src
                    xv = tl.load(x_ptr + b * s_xb + offs_d[:, None] * s_xd + ps[None, :] * s_xl,
                                 mask=md[:, None] & ((src >= 0) & (src < L))[None, :], other=0.0).to(tl.float32)
                    part = tl.sum(g * xv, axis=1)
                    if k == 0:
                        dw0 += part
                    elif k == 1:
                        dw1 += part
                    elif k == 2:
                        dw2 += part
                    else:
                        dw3 += part
        p = L - 1 - t if REVERSE else t
        out = dx_ptr + b * s_ob + offs_d[:, None] * s_od + p[None, :] * s_ol
        inside = md[:, None] & (t < L)[None, :]
        if ACCUMULATE:
            dx += tl.load(out, mask=inside, other=0.0).to(tl.float32)
        tl.store(out, dx.to(dx_ptr.dtype.element_ty), mask=inside)
    base = dw_ptr + row * D * W + offs_d * W
    tl.store(base, dw0, mask=md)
    if W > 1:
        tl.store(base + 1, dw1, mask=md)
    if W > 2:
        tl.store(base + 2, dw2, mask=md)
    if W > 3:
        tl.store(base + 3, dw3, mask=md)
    tl.store(dbias_ptr + row * D + offs_d, dbias, mask=md)


def conv_silu_backward_triton(x: Tensor, weight: Tensor, bias: Tensor | None, du: Tensor, dx: Tensor,
                              accumulate: bool, reverse: bool) -> tuple[Tensor, Tensor | None]:
    """Backward of ``u = silu(causal_conv1d(x, weight, bias))`` (zero state) from ``du``: dx written into ``dx``
    (added to it when ``accumulate``), returns (dweight, dbias) in float32. x, du, dx ``(b, d, l)`` of any strides
    (length-major is the fast layout); weight ``(d, w)`` with w ≤ :data:`CONV_SILU_BACKWARD_MAX_WIDTH`."""
    batch, d, length = x.shape
    weight = weight.reshape(d, -1).contiguous()
    width = weight.shape[-1]
    if width > CONV_SILU_BACKWARD_MAX_WIDTH:
        raise ValueError(f"conv_silu_backward_triton: conv width {width} > {CONV_SILU_BACKWARD_MAX_WIDTH}")
    check_addressable("causal conv1d backward", x, du, dx)
    bd, t = BLOCK["backward"]
    tiles = triton.cdiv(length, t)
    per_program = max(1, min(tiles, TILES_PER_PROGRAM))
    grid = (batch, triton.cdiv(d, bd), triton.cdiv(tiles, per_program))
    dw = torch.empty(batch * grid[2], d, width, device=x.device, dtype=torch.float32)
    db = torch.empty(batch * grid[2], d, device=x.device, dtype=torch.float32)
    if length:
        _conv_silu_bwd_kernel[grid](
            x, weight, bias, du, dx, dw, db, length, d, per_program, *x.stride(), *du.stride(), *dx.stride(),
            W=width, BD=bd, T=t, HAS_BIAS=bias is not None, REVERSE=reverse, ACCUMULATE=accumulate,
            num_warps=NUM_WARPS["backward"],
        )
    else:
        dw.zero_()
        db.zero_()
        if not accumulate:
            dx.zero_()
    return dw.sum(0), None if bias is None else db.sum(0)


def _forward(x: Tensor, weight: Tensor, bias: Tensor | None, state: Tensor | None, silu: bool, reverse: bool):
    batch, d, length = x.shape
    width = weight.shape[-1]
    length_major = x.stride(1) < x.stride(2)
    layout = "length_major" if length_major else "channels_first"
    bd, t = BLOCK[layout]
    if length_major:  # keep the layout, so the next linear layer reads y as is
        y = torch.empty(batch, length, d, device=x.device, dtype=x.dtype).transpose(1, 2)
    else:
        y = torch.empty(batch, d, length, device=x.device, dtype=x.dtype)
    if length:
        grid = (batch, triton.cdiv(d, bd), triton.cdiv(length, t))
        _conv_kernel[grid](
            x, weight, bias, state, y, length, d, *x.stride(), *y.stride(), W=width, BD=bd, T=t,
            HAS_BIAS=bias is not None, HAS_STATE=state is not None, SILU=silu, REVERSE=reverse,
            num_warps=NUM_WARPS[layout],
        )
    keep = min(length, width - 1)
    tail = x[..., :keep].flip(-1) if reverse else x[..., length - keep :]
    before = state if state is not None else x.new_zeros(batch, d, width - 1, dtype=torch.float32)
    seen = torch.cat([before, tail.float()], dim=-1)
    return y, seen[..., seen.shape[-1] - (width - 1) :]


class _CausalConv1d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, state, silu, reverse):
        ctx.save_for_backward(x, weight, bias, state)
        ctx.flags = (silu, reverse)
        return _forward(x, weight, bias, state, silu, reverse)

    @staticmethod
    def backward(ctx, dy, dstate):
        x, weight, bias, state = ctx.saved_tensors
        silu, reverse = ctx.flags
        inputs = [t.detach().requires_grad_(t.requires_grad) if t is not None else None for t in (x, weight, bias,
                                                                                                  state)]
        with torch.enable_grad():
            xx = inputs[0].flip(-1) if reverse else inputs[0]
            y, new_state = causal_conv1d_ref(xx, inputs[1], inputs[2], inputs[3], "silu" if silu else None)
            if reverse:
                y = y.flip(-1)
            wanted = [t for t in inputs if t is not None and t.requires_grad]
            outs = [(o, g) for o, g in ((y, dy), (new_state, dstate)) if o.requires_grad and g is not None]
            grads = torch.autograd.grad([o for o, _ in outs], wanted, [g for _, g in outs], allow_unused=True)
        found = iter(grads)
        return (*[next(found) if t is not None and t.requires_grad else None for t in inputs], None, None)


def causal_conv1d_triton(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    state: Tensor | None = None,
    activation: str | None = "silu",
    *,
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """Causal depthwise conv1d on CUDA tensors; see :func:`lrgen.ops.causal_conv1d`. Differentiable.

    ``reverse=True`` convolves from position ``l-1`` down to 0 (y in the original order); the state then holds the
    inputs at positions ``w-2 … 0``, in scan order.
    """
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"causal_conv1d: activation must be None or 'silu', got {activation!r}")
    check_addressable("causal conv1d", x)
    weight = weight.reshape(weight.shape[0], -1).contiguous()
    if state is not None:
        state = state.float().contiguous()
    args = (x, weight, bias, state, activation is not None, bool(reverse))
    if needs_grad(x, weight, bias, state):
        return _CausalConv1d.apply(*args)
    return _forward(*args)
