"""Triton linear recurrence ``h_t = a_t * h_{t-1} + b_t`` (the RG-LRU scan) with state in and out.

a, b ``(batch, l, d)`` with any strides, state ``(batch, d)`` float32; see :func:`lrgen.ops.linear_scan`. Tiles of
``(T positions, BD channels)`` are scanned in registers (float32) with an associative scan; across tiles the state is
carried as in :mod:`lrgen.ops.triton_scan` (segment end states, one sequential pass over segments, segments recomputed).
The backward pass is the same scan run right to left on ``(a_{t+1}, dh_t)``: ``g_t = dh_t + a_{t+1} g_{t+1}``, then
``db = g``, ``da = g · h_{t-1}``, ``dstate = a_0 g_0``. ``reverse=True`` scans right to left in place.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from lrgen.ops.limits import check_addressable

BD = 64  # channels per program
T = 32  # positions per tile


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _load_ab(a_ptr, b_ptr, t, offs_d, L, D, s_al, s_ad, s_bl, s_bd, REVERSE: tl.constexpr, A_SHIFT: tl.constexpr):
    """a at logical positions t - A_SHIFT and b at t, as (T, BD) float32 tiles; a = 1 and b = 0 where t is outside
    [0, L) or t - A_SHIFT < 0."""
    md = offs_d[None, :] < D
    ta = t - A_SHIFT
    if REVERSE:
        pa = L - 1 - ta
        pb = L - 1 - t
    else:
        pa = ta
        pb = t
    ma = md & (ta[:, None] >= 0) & (t[:, None] < L)
    a = tl.load(a_ptr + pa[:, None] * s_al + offs_d[None, :] * s_ad, mask=ma, other=1.0).to(tl.float32)
    b = tl.load(b_ptr + pb[:, None] * s_bl + offs_d[None, :] * s_bd, mask=md & (t[:, None] < L), other=0.0)
    return a, b.to(tl.float32), pb


@triton.jit
def _segment_state_kernel(
    a_ptr, b_ptr, hloc_ptr, prod_ptr, L, D, s_ab, s_al, s_ad, s_bb, s_bl, s_bd,
    BD: tl.constexpr, T: tl.constexpr, TPC: tl.constexpr, REVERSE: tl.constexpr, A_SHIFT: tl.constexpr,
):
    """Each segment's end state from zero and the product of its a."""
    c = tl.program_id(0)
    bb = tl.program_id(1)
    offs_d = tl.program_id(2) * BD + tl.arange(0, BD)
    h = tl.zeros((BD,), dtype=tl.float32)
    p = tl.full((BD,), 1.0, dtype=tl.float32)
    last = (tl.arange(0, T) == T - 1)[:, None]
    for i in range(TPC):
        t = (c * TPC + i) * T + tl.arange(0, T)
        a, b, _ = _load_ab(a_ptr + bb * s_ab, b_ptr + bb * s_bb, t, offs_d, L, D, s_al, s_ad, s_bl, s_bd, REVERSE,
                           A_SHIFT)
        ca, cb = tl.associative_scan((a, b), 0, _combine)
        ta = tl.sum(tl.where(last, ca, 0.0), axis=0)
        h = ta * h + tl.sum(tl.where(last, cb, 0.0), axis=0)
        p = p * ta
    idx = (bb * tl.num_programs(0) + c) * D + offs_d
    tl.store(hloc_ptr + idx, h, mask=offs_d < D)
    tl.store(prod_ptr + idx, p, mask=offs_d < D)


@triton.jit
def _state_pass_kernel(hloc_ptr, prod_ptr, h0_ptr, NC, D, BD: tl.constexpr, HAS_H0: tl.constexpr):
    """Sequential over segments: overwrite each segment's local end state with the state entering it."""
    bb = tl.program_id(0)
    offs_d = tl.program_id(1) * BD + tl.arange(0, BD)
    mask = offs_d < D
    if HAS_H0:
        h = tl.load(h0_ptr + bb * D + offs_d, mask=mask, other=0.0)
    else:
        h = tl.zeros((BD,), dtype=tl.float32)
    for c in range(NC):
        idx = (bb * NC + c) * D + offs_d
        loc = tl.load(hloc_ptr + idx, mask=mask, other=0.0)
        p = tl.load(prod_ptr + idx, mask=mask, other=1.0)
        tl.store(hloc_ptr + idx, h, mask=mask)
        h = p * h + loc


@triton.jit
def _scan_kernel(
    a_ptr, b_ptr, h_ptr, hin_ptr, hlast_ptr, L, D, s_hin_b, s_hin_c,
    s_ab, s_al, s_ad, s_bb, s_bl, s_bd, s_hb, s_hl, s_hd,
    BD: tl.constexpr, T: tl.constexpr, TPC: tl.constexpr, HAS_HIN: tl.constexpr, REVERSE: tl.constexpr,
    A_SHIFT: tl.constexpr,
):
    c = tl.program_id(0)
    bb = tl.program_id(1)
    offs_d = tl.program_id(2) * BD + tl.arange(0, BD)
    md = offs_d < D
    if HAS_HIN:
        h = tl.load(hin_ptr + bb * s_hin_b + c * s_hin_c + offs_d, mask=md, other=0.0)
    else:
        h = tl.zeros((BD,), dtype=tl.float32)
    last = (tl.arange(0, T) == T - 1)[:, None]
    for i in range(TPC):
        t = (c * TPC + i) * T + tl.arange(0, T)
        a, b, pb = _load_ab(a_ptr + bb * s_ab, b_ptr + bb * s_bb, t, offs_d, L, D, s_al, s_ad, s_bl, s_bd, REVERSE,
                            A_SHIFT)
        ca, cb = tl.associative_scan((a, b), 0, _combine)
        hs = ca * h[None, :] + cb
        tl.store(h_ptr + bb * s_hb + pb[:, None] * s_hl + offs_d[None, :] * s_hd, hs.to(h_ptr.dtype.element_ty),
                 mask=md[None, :] & (t[:, None] < L))
        h = tl.sum(tl.where(last, hs, 0.0), axis=0)
    if c == tl.num_programs(0) - 1:
        tl.store(hlast_ptr + bb * D + offs_d, h, mask=md)


def _scan(a: Tensor, b: Tensor, state: Tensor | None, reverse: bool, a_shift: int, out_dtype: torch.dtype):
    batch, length, d = b.shape
    h = torch.empty(batch, length, d, device=b.device, dtype=out_dtype)
    hlast = torch.empty(batch, d, device=b.device, dtype=torch.float32)
    ndb = triton.cdiv(d, BD)
    n_tiles = max(1, triton.cdiv(length, T))
    sms = torch.cuda.get_device_properties(b.device).multi_processor_count if b.device.type == "cuda" else 2
    programs = batch * ndb
    nc = 1 if programs >= 4 * sms else min(n_tiles, -(-4 * sms // programs))
    tpc = -(-n_tiles // nc)
    nc = -(-n_tiles // tpc)
    flags = dict(BD=BD, T=T, TPC=tpc, REVERSE=reverse, A_SHIFT=a_shift)
    if nc > 1:
        hin = torch.empty(batch, nc, d, device=b.device, dtype=torch.float32)
        prod = torch.empty_like(hin)
        _segment_state_kernel[(nc, batch, ndb)](a, b, hin, prod, length, d, *a.stride(), *b.stride(), **flags)
        _state_pass_kernel[(batch, ndb)](hin, prod, state, nc, d, BD=BD, HAS_H0=state is not None)
        s_hin = (nc * d, d)
    else:
        hin, s_hin = state, (d, 0)
    _scan_kernel[(nc, batch, ndb)](
        a, b, h, hin, hlast, length, d, *s_hin, *a.stride(), *b.stride(), *h.stride(), HAS_HIN=hin is not None,
        **flags,
    )
    return h, hlast


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, state, reverse):
        h, hlast = _scan(a, b, state, reverse, 0, b.dtype)
        ctx.save_for_backward(a, h, state)
        ctx.reverse = reverse
        return h, hlast

    @staticmethod
    def backward(ctx, dh, dlast):
        a, h, state = ctx.saved_tensors
        reverse = ctx.reverse
        g, g0 = _scan(a, dh, dlast.float().contiguous(), not reverse, 1, torch.float32)
        zero = h.new_zeros(h.shape[0], 1, h.shape[2]) if state is None else state[:, None].to(h.dtype)
        if reverse:
            h_prev = torch.cat([h[:, 1:], zero], dim=1)
            a_first = a[:, -1]
        else:
            h_prev = torch.cat([zero, h[:, :-1]], dim=1)
            a_first = a[:, 0]
        da = (g * h_prev).to(a.dtype)
        dstate = None if state is None else a_first.float() * g0
        return da, g.to(dh.dtype), dstate, None


def linear_scan_triton(a: Tensor, b: Tensor, state: Tensor | None = None, *, reverse: bool = False):
    """Linear recurrence on CUDA tensors; see :func:`lrgen.ops.linear_scan`. Differentiable in a, b and state.

    ``reverse=True`` runs from position ``l-1`` down to 0 (h in the original order) and returns the state after
    position 0.
    """
    check_addressable("linear scan", a, b)
    if state is not None:
        state = state.float().contiguous()
    return _LinearScan.apply(a, b, state, bool(reverse))
