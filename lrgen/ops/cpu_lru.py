"""CPU fast path of the linear recurrence ``h_t = a_t h_{t-1} + b_t`` (RG-LRU; backend ``cpu``).

The reference takes one step per position, each a tiny op on ``(batch, d)`` that costs its dispatch more than its
arithmetic. Here the sequence is cut into ``P`` segments of ``K ≈ √(l/2)`` positions and every step advances all
segments at once: a first pass finds each segment's end state from zero, a hand-off walks those along the
segments (one step per segment, with the segment's decay product), and a second pass runs every segment from its
true start. About ``2√(2l)`` ops instead of ``l``, each on ``P × batch × d`` values; the arithmetic is the same
float32 multiply-add per position as the reference's. Gradients flow through a custom backward that is itself a
(reverse) linear scan.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lrgen.ops import one_thread


@one_thread()
def _scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """States of ``h_t = a_t h_{t-1} + b_t`` from ``h0`` over float32 ``(batch, l, d)``, l ≥ 1, left to right."""
    batch, length, dim = b.shape
    seg = max(1, math.isqrt(length // 2))
    count = length // seg  # whole segments; the last < seg positions follow one by one
    body = count * seg
    h = b.clone(memory_format=torch.contiguous_format)
    steps = h[:, :body].view(batch, count, seg, dim).permute(2, 1, 0, 3).unbind(0)  # step k of every segment
    decay = a[:, :body].reshape(batch, count, seg, dim).permute(2, 1, 0, 3)
    decays = decay.unbind(0)
    if count > 1:
        end, spare = steps[0].clone(), h.new_empty(count, batch, dim)
        for k in range(1, seg):
            end, spare = torch.addcmul(steps[k], decays[k], end, out=spare), end
        start = h.new_empty(count, batch, dim)
        start[0] = h0
        starts, ends, products = start.unbind(0), end.unbind(0), decay.prod(0).unbind(0)
        for p in range(1, count):
            torch.addcmul(ends[p - 1], products[p - 1], starts[p - 1], out=starts[p])
    else:
        start = h0[None]
    steps[0].addcmul_(decays[0], start)
    for k in range(1, seg):
        steps[k].addcmul_(decays[k], steps[k - 1])
    tail, tail_decays = h[:, body - 1 :].unbind(1), a[:, body:].unbind(1)
    for t, decay_t in enumerate(tail_decays):
        tail[t + 1].addcmul_(decay_t, tail[t])
    return h


def _forward(a: Tensor, b: Tensor, state: Tensor | None, reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(a, h, h0)`` in scan order, float32: the decays, the states and the initial state."""
    batch, length, dim = b.shape
    af, bf = a.float(), b.float()
    if reverse:
        af, bf = af.flip(1), bf.flip(1)
    h0 = bf.new_zeros(batch, dim) if state is None else state.float()
    h = _scan(af, bf, h0) if length else bf
    return af, h, h0


def _outputs(h: Tensor, h0: Tensor, dtype: torch.dtype, reverse: bool, copy: bool) -> tuple[Tensor, Tensor]:
    """``(h in sequence order and dtype, last state)``; ``copy`` keeps h itself private (autograd saved it)."""
    last = h[:, -1].clone() if h.shape[1] else h0.clone()
    return (h.flip(1) if reverse else h).to(dtype, copy=copy and not reverse), last


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, state: Tensor | None, reverse: bool) -> tuple[Tensor, Tensor]:
        af, h, h0 = _forward(a, b, state, reverse)
        ctx.save_for_backward(af, h, h0)
        ctx.reverse, ctx.dtypes = reverse, (a.dtype, b.dtype, None if state is None else state.dtype)
        return _outputs(h, h0, b.dtype, reverse, copy=True)

    @staticmethod
    def backward(ctx, grad_h: Tensor | None, grad_last: Tensor | None):
        """``g_t = ∂L/∂h_t`` summed over every path: ``g_t = grad_h_t + a_{t+1} g_{t+1}``, a linear scan right to
        left from ``grad_last``; then ``∂L/∂b_t = g_t``, ``∂L/∂a_t = g_t h_{t-1}``, ``∂L/∂h0 = a_0 g_0``."""
        af, h, h0 = ctx.saved_tensors
        batch, length, dim = h.shape
        gh = h.new_zeros(batch, length, dim) if grad_h is None else grad_h.float()
        if ctx.reverse:
            gh = gh.flip(1)
        gl = h0.new_zeros(batch, dim) if grad_last is None else grad_last.float()
        if length:
            shifted = torch.cat([af[:, 1:], af.new_ones(batch, 1, dim)], dim=1)
            g = _scan(shifted.flip(1), gh.flip(1), gl).flip(1)
            ga, g0 = g * torch.cat([h0[:, None], h[:, :-1]], dim=1), af[:, 0] * g[:, 0]
        else:
            g, ga, g0 = gh, gh, gl
        if ctx.reverse:
            ga, g = ga.flip(1), g.flip(1)
        a_dtype, b_dtype, s_dtype = ctx.dtypes
        return ga.to(a_dtype), g.to(b_dtype), None if s_dtype is None else g0.to(s_dtype), None


def linear_scan_cpu(a: Tensor, b: Tensor, state: Tensor | None = None,
                    reverse: bool = False) -> tuple[Tensor, Tensor]:
    """:func:`lrgen.ops.reference.linear_scan_ref` with ``reverse`` (differentiable)."""
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (a, b, state)):
        return _LinearScan.apply(a, b, state, reverse)
    with torch.no_grad():
        af, h, h0 = _forward(a, b, state, reverse)
        return _outputs(h, h0, b.dtype, reverse, copy=False)
