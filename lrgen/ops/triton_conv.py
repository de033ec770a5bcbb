"""Triton causal depthwise conv1d with its tail state in and out; see :func:`lrgen.ops.causal_conv1d`.

Forward: one program per (batch, channel block, tile of positions), the ``w`` taps unrolled, positions before the
chunk read from ``state``; bias and SiLU fused; tiles wholly inside the sequence and the channels load without masks.
Backward: the PyTorch reference recomputed under autograd (the conv is a small share of a block's time).
``reverse=True`` convolves right to left in place (as on the flipped sequence).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from lrgen.ops import needs_grad
from lrgen.ops.limits import check_addressable
from lrgen.ops.reference import causal_conv1d_ref

# (channels, positions) per program for each layout (length-major = channels contiguous in memory), and warps
BLOCK = {"length_major": (128, 32), "channels_first": (16, 128)}
NUM_WARPS = {"length_major": 2, "channels_first": 4}


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
