"""Triton selective scan (Mamba-1) with state in and out, fused with the D skip and the SiLU(z) gate.

Shapes are those of :func:`lrgen.ops.selective_scan`; any strides are accepted (a ``(b, l, d)`` tensor passed as its
``transpose(1, 2)`` view is read in place and is the fast layout; the forward copies other layouts into it first
and returns y in it). States are float32 whatever the input dtype.

Forward: each program owns a block of channels and walks its stretch of positions one by one with the
``(state, channels)`` block in registers. A and the states are kept channels-contiguous, ``(n, d)``, in memory, so
Triton gives each thread every state of its channels (threads along channels): ``C·h`` is a sum inside the thread,
with no shuffles (with ``(d, n)`` memory it spread the states over 16 threads: 12.8 instead of 9.2 ms per
1M × 512 × 16 on an H100). When (batch × channel blocks) is too few programs to fill the GPU, the sequence is cut
into segments: (1) each segment's end state from zero and its summed Δ (``exp(A ΣΔ)`` is its decay), (2) a pass
over segments that turns them into each segment's incoming state (blocks of segments combined by an associative
scan), (3) every segment recomputed from its incoming state, writing y.

Backward: the same segments and the same walk, one position at a time. Step (1) walks each segment from zero and
also keeps every 16th local state with the Δ sum before it (float32 checkpoints, L/16 ``(n, d)`` tiles); with the
state entering the segment from step (2), the true state at a checkpoint is ``local + exp(A ΣΔ) h_in`` (the
recurrence is linear in its initial state), so no second walk is needed to find them. The adjoint arriving at every
segment from the right comes from the same two steps run right to left (``g_t = C_t dy'_t + exp(Δ_{t+1} A)
g_{t+1}``; the adjoint leaving position 0 is the initial state's gradient). Then each program, block by block from
the right, rebuilds the block's 16 states into a small buffer of its own and walks them right to left carrying the
adjoint: du, dΔ, dz per position, dB and dC summed over its channels, dA, dD, dbias as per-segment partial sums.
``reverse=True`` scans right to left in place (position ``l-1`` first) without flipped copies.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch
import triton
import triton.language as tl
from torch import Tensor

from lrgen.ops import mark_counts, needs_grad
from lrgen.ops.limits import check_addressable

# Tile shape: channels per program for each layout (length-major = channels contiguous in memory), and the
# channels × padded state × positions held per program in the forward and in the backward kernel.
# Settings from the sweep of benchmarks/bench_kernels.py on an H100 (docs/benchmarks.md).
BLOCK_D = {"length_major": 128, "channels_first": 32, "backward": 64}
NUM_WARPS = {"forward": 1, "backward": 1}
CHECKPOINT_EVERY = 16  # the backward keeps every 16th state of a segment and rebuilds the others block by block
# the sequence is split into segments until there are this many programs per SM: the forward's 8 are one wave (a
# program is one warp of 255 registers, so 8 fit on an SM), longer segments than the previous 32's four waves
PROGRAMS_PER_SM = {"forward": 8, "backward": 32}
UNROLL = 2  # positions of the forward kernel whose loads are issued together
NUM_STAGES = {"forward": 3, "backward": 3}  # software-pipelining stages of the position loops
PASS_SEGMENTS, PASS_ELEMENTS = 32, 2048  # segments combined at once by the state pass, and its block size
# the forward's exponentials, logarithms and reciprocals as single MUFU instructions (ex2/lg2/rcp.approx.ftz),
# except under the interpreter (no PTX)
FAST_MATH = os.environ.get("TRITON_INTERPRET") != "1"
LOG2E, LN2 = tl.constexpr(1.4426950408889634), tl.constexpr(0.6931471805599453)


@triton.jit
def _approx(x, OP: tl.constexpr, FAST: tl.constexpr):
    """``OP`` ∈ {ex2, lg2, rcp} of float32 x; FAST: one ``OP.approx.ftz.f32`` instruction (relative error
    ≤ 2^-21), else the exact function (the interpreter runs no PTX)."""
    if FAST:
        return tl.inline_asm_elementwise(OP + ".approx.ftz.f32 $0, $1;", "=f,f", [x], dtype=tl.float32,
                                         is_pure=True, pack=1)
    if OP == "ex2":
        return tl.exp2(x)
    if OP == "lg2":
        return tl.log2(x)
    return 1.0 / x


@triton.jit
def _softplus(x, FAST: tl.constexpr):
    """log(1 + e^x) (x itself above 20) as ln2 · log2(1 + 2^(x log2 e))."""
    return tl.where(x <= 20.0, LN2 * _approx(1.0 + _approx(x * LOG2E, "ex2", FAST), "lg2", FAST), x)


@triton.jit
def _silu(x, FAST: tl.constexpr):
    """x · sigmoid(x) as x / (1 + 2^(-x log2 e))."""
    return x * _approx(1.0 + _approx(-x * LOG2E, "ex2", FAST), "rcp", FAST)


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _pos(t, L, REVERSE: tl.constexpr):
    if REVERSE:
        return L - 1 - t
    return t


@triton.jit
def _state_pass_kernel(
    hloc_ptr, sdt_ptr, A_ptr, h0_ptr, hlast_ptr, NC, D, N, NDB, S_D, S_N,
    BD: tl.constexpr, BN: tl.constexpr, CB: tl.constexpr, HAS_H0: tl.constexpr, BACKWARD: tl.constexpr,
):
    """Overwrite each segment's local state with the state entering it (from the left, or from the right for the
    adjoint), starting from h0; write the state after the last segment. Blocks of CB segments are combined with one
    associative scan, the blocks in sequence. A (d, n) state and A have element strides S_D, S_N."""
    pid = tl.program_id(0)
    b = pid // NDB
    offs_d = (pid % NDB) * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    mask = (offs_d < D)[:, None] & (offs_n < N)[None, :]
    dn = offs_d[:, None] * S_D + offs_n[None, :] * S_N
    A2 = tl.load(A_ptr + dn, mask=mask, other=0.0).to(tl.float32) * LOG2E
    sidx = b * D * N + dn
    if HAS_H0:
        h = tl.load(h0_ptr + sidx, mask=mask, other=0.0)
    else:
        h = tl.zeros((BD, BN), dtype=tl.float32)
    k = tl.arange(0, CB)
    for blk in range(tl.cdiv(NC, CB)):
        p = blk * CB + k  # processing order
        if BACKWARD:
            c = NC - 1 - p
            c_prev = c + 1
        else:
            c = p
            c_prev = c - 1
        valid = p < NC
        valid_prev = valid & (k > 0)
        m3 = valid[:, None, None] & mask[None, :, :]
        m3_prev = valid_prev[:, None, None] & mask[None, :, :]
        base = ((b * NC + c) * D)[:, None] + offs_d[None, :]  # (CB, BD): Δ sums
        base_prev = ((b * NC + c_prev) * D)[:, None] + offs_d[None, :]
        state = ((b * NC + c) * D * N)[:, None, None] + dn[None, :, :]  # (CB, BD, BN): states
        state_prev = ((b * NC + c_prev) * D * N)[:, None, None] + dn[None, :, :]
        loc = tl.load(hloc_ptr + state, mask=m3, other=0.0)
        loc_prev = tl.load(hloc_ptr + state_prev, mask=m3_prev, other=0.0)
        dmask = valid[:, None] & (offs_d < D)[None, :]
        s = tl.load(sdt_ptr + base, mask=dmask, other=0.0)
        s_prev = tl.load(sdt_ptr + base_prev, mask=valid_prev[:, None] & (offs_d < D)[None, :], other=0.0)
        ca, cb = tl.associative_scan((tl.exp2(A2[None, :, :] * s_prev[:, :, None]), loc_prev), 0, _combine)
        # the block's total map: the last entry of a scan (tl.reduce may reorder a non-commutative combine)
        ta, tb = tl.associative_scan((tl.exp2(A2[None, :, :] * s[:, :, None]), loc), 0, _combine)
        last = (k == CB - 1)[:, None, None]
        ta = tl.sum(tl.where(last, ta, 0.0), axis=0)
        tb = tl.sum(tl.where(last, tb, 0.0), axis=0)
        tl.debug_barrier()  # every thread has read the block before any overwrites it (a scan prefix needs no later entry)
        tl.store(hloc_ptr + state, ca * h[None, :, :] + cb, mask=m3)
        h = ta * h + tb
    tl.store(hlast_ptr + sidx, h, mask=mask)


@triton.jit
def _program_tile(D, N, NDB, BD: tl.constexpr, BN: tl.constexpr):
    """For a program of the (segments, batch × channel blocks) grid: its batch row, its channels, its state indices,
    their masks and the (BN, BD) offsets of an (n, d) state (channels contiguous)."""
    pid = tl.program_id(1)
    offs_d = (pid % NDB) * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    mask_d = offs_d < D
    mask_nd = (offs_n < N)[:, None] & mask_d[None, :]
    return pid // NDB, offs_d, offs_n, mask_d, mask_nd, offs_n[:, None] * D + offs_d[None, :]


@triton.jit
def _fwd_position(
    t, h, sdt, A2, bias, Dv, u_b, d_b, B_b, C_b, z_b, y_b, marked_ptr, offs_d, offs_n, nd, mask_nd, b, L, D, N, M,
    MARK_FIRST, MARK_EVERY, s_ud, s_ul, s_dd, s_dl, s_Bn, s_Bl, s_Cn, s_Cl, s_zd, s_zl, s_yd, s_yl,
    MASKED: tl.constexpr, STATE_ONLY: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, REVERSE: tl.constexpr, HAS_MARKS: tl.constexpr, FAST_MATH: tl.constexpr,
):
    """One step of :func:`_fwd_kernel` at position t (scan order): the new (h, Δ sum); writes y and a marked state.
    Unless MASKED, every load is in bounds (t < L, whole channel block and state)."""
    p = _pos(t, L, REVERSE)
    if MASKED:
        md = offs_d < tl.where(t < L, D, 0)
        mn = offs_n < tl.where(t < L, N, 0)
        zero = 0.0
    else:
        md = None
        mn = None
        zero = None
    dt = tl.load(d_b + offs_d * s_dd + p * s_dl, mask=md, other=zero).to(tl.float32)
    if HAS_BIAS:
        dt += bias
    if SOFTPLUS:
        dt = _softplus(dt, FAST_MATH)
    if MASKED:
        dt = tl.where(md, dt, 0.0)
    uu = tl.load(u_b + offs_d * s_ud + p * s_ul, mask=md, other=zero).to(tl.float32)
    Bt = tl.load(B_b + offs_n * s_Bn + p * s_Bl, mask=mn, other=zero).to(tl.float32)
    h = _approx(A2 * dt[None, :], "ex2", FAST_MATH) * h + Bt[:, None] * (dt * uu)[None, :]
    if STATE_ONLY:
        sdt += dt
    else:
        Ct = tl.load(C_b + offs_n * s_Cn + p * s_Cl, mask=mn, other=zero).to(tl.float32)
        y = tl.sum(h * Ct[:, None], axis=0)
        if HAS_D:
            y += Dv * uu
        if HAS_Z:
            y = y * _silu(tl.load(z_b + offs_d * s_zd + p * s_zl, mask=md, other=zero).to(tl.float32), FAST_MATH)
        tl.store(y_b + offs_d * s_yd + p * s_yl, y.to(y_b.dtype.element_ty), mask=md)
        if HAS_MARKS:
            k = t + 1 - MARK_FIRST
            if (k >= 0) & (k % MARK_EVERY == 0) & (t < L):
                tl.store(marked_ptr + (b * M + k // MARK_EVERY) * D * N + nd, h, mask=mask_nd)
    return h, sdt


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, y_ptr, hin_ptr, hout_ptr, sdt_ptr, marked_ptr,
    L, D, N, NDB, CL, s_hin_b, s_hin_c, M, MARK_FIRST, MARK_EVERY,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_Bb, s_Bn, s_Bl, s_Cb, s_Cn, s_Cl, s_zb, s_zd, s_zl, s_yb, s_yd, s_yl,
    BD: tl.constexpr, BN: tl.constexpr, U: tl.constexpr, HAS_HIN: tl.constexpr, STATE_ONLY: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, REVERSE: tl.constexpr,
    HAS_MARKS: tl.constexpr, FAST_MATH: tl.constexpr, EVEN: tl.constexpr, STAGES: tl.constexpr,
):
    """One segment of CL positions (a multiple of U) for BD channels, position by position with the (BN, BD) state
    in registers: A and every state in memory are stored (n, d), channels contiguous, so the state index is the
    tile's slow axis, each thread holds whole columns (every state of its channels) and ``C·h`` sums inside the
    thread. U positions are unrolled so their loads are in flight together. STATE_ONLY: write the segment's end
    state from h_in (zero) and its Δ sum to hout (b, nc, n, d) / sdt (b, nc, d) instead of y; else write y, the
    final state to hout (b, n, d) from the last segment, and with HAS_MARKS the state after the p-th position (scan
    order) to marked (b, M, n, d) for p = MARK_FIRST + k·MARK_EVERY. EVEN: D is a multiple of BD and N is BN,
    so only positions past L need masks."""
    c = tl.program_id(0)
    b, offs_d, offs_n, mask_d, mask_nd, nd = _program_tile(D, N, NDB, BD, BN)
    A2 = tl.load(A_ptr + nd, mask=mask_nd, other=0.0).to(tl.float32) * LOG2E
    if HAS_HIN:
        h = tl.load(hin_ptr + b * s_hin_b + c * s_hin_c + nd, mask=mask_nd, other=0.0)
    else:
        h = tl.zeros((BN, BD), dtype=tl.float32)
    bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32) if HAS_BIAS else None
    Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32) if HAS_D else None
    sdt = tl.zeros((BD,), dtype=tl.float32)
    u_b, d_b, B_b, C_b = u_ptr + b * s_ub, delta_ptr + b * s_db, B_ptr + b * s_Bb, C_ptr + b * s_Cb
    z_b = z_ptr + b * s_zb if HAS_Z else z_ptr
    y_b = y_ptr + b * s_yb
    # positions a whole channel block and state has: unmasked (the last segment's tail and ragged blocks: masked)
    full = tl.maximum(tl.minimum(CL, L - c * CL), 0) // U * U if EVEN else 0
    for i in tl.range(0, full, U, num_stages=STAGES):
        for j in tl.static_range(U):
            h, sdt = _fwd_position(
                c * CL + i + j, h, sdt, A2, bias, Dv, u_b, d_b, B_b, C_b, z_b, y_b, marked_ptr, offs_d, offs_n, nd,
                mask_nd, b, L, D, N, M, MARK_FIRST, MARK_EVERY, s_ud, s_ul, s_dd, s_dl, s_Bn, s_Bl, s_Cn, s_Cl, s_zd,
                s_zl, s_yd, s_yl, False, STATE_ONLY, HAS_BIAS, SOFTPLUS, HAS_D, HAS_Z, REVERSE, HAS_MARKS, FAST_MATH)
    for i in range(full, CL, U):
        for j in tl.static_range(U):
            h, sdt = _fwd_position(
                c * CL + i + j, h, sdt, A2, bias, Dv, u_b, d_b, B_b, C_b, z_b, y_b, marked_ptr, offs_d, offs_n, nd,
                mask_nd, b, L, D, N, M, MARK_FIRST, MARK_EVERY, s_ud, s_ul, s_dd, s_dl, s_Bn, s_Bl, s_Cn, s_Cl, s_zd,
                s_zl, s_yd, s_yl, True, STATE_ONLY, HAS_BIAS, SOFTPLUS, HAS_D, HAS_Z, REVERSE, HAS_MARKS, FAST_MATH)
    if STATE_ONLY:
        base = (b * tl.num_programs(0) + c) * D * N
        tl.store(hout_ptr + base + nd, h, mask=mask_nd)
        tl.store(sdt_ptr + (b * tl.num_programs(0) + c) * D + offs_d, sdt, mask=mask_d)
    elif c == tl.num_programs(0) - 1:
        tl.store(hout_ptr + b * D * N + nd, h, mask=mask_nd)


@triton.jit
def _masked_delta(d_b, offs_d, p, md, bias, s_dd, s_dl, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                  FAST_MATH: tl.constexpr):
    """Δ at position p for the channels in md: (raw = Δ + bias, softplus(raw) or raw), both zero elsewhere."""
    raw = tl.load(d_b + offs_d * s_dd + p * s_dl, mask=md, other=0.0).to(tl.float32)
    if HAS_BIAS:
        raw += bias
    dt = _softplus(raw, FAST_MATH) if SOFTPLUS else raw
    return raw, tl.where(md, dt, 0.0)


@triton.jit
def _adjoint_segment_kernel(
    delta_ptr, bias_ptr, A_ptr, C_ptr, z_ptr, dy_ptr, gloc_ptr,
    L, D, N, NDB, CL,
    s_db, s_dd, s_dl, s_Cb, s_Cn, s_Cl, s_zb, s_zd, s_zl, s_yb, s_yd, s_yl,
    BD: tl.constexpr, BN: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_Z: tl.constexpr,
    REVERSE: tl.constexpr, FAST_MATH: tl.constexpr, STAGES: tl.constexpr,
):
    """Each segment's adjoint from zero, walked right to left (``g_t = C_t dy'_t + exp(Δ_{t+1} A) g_{t+1}``): the
    adjoint it passes to the position before it, ``exp(Δ_s A) g_s``, to gloc (b, nc, n, d)."""
    c = tl.program_id(0)
    b, offs_d, offs_n, mask_d, mask_nd, nd = _program_tile(D, N, NDB, BD, BN)
    A2 = tl.load(A_ptr + nd, mask=mask_nd, other=0.0).to(tl.float32) * LOG2E
    bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32) if HAS_BIAS else None
    g = tl.zeros((BN, BD), dtype=tl.float32)
    for i in tl.range(CL, num_stages=STAGES):
        t = c * CL + CL - 1 - i
        p = _pos(t, L, REVERSE)
        md = offs_d < tl.where(t < L, D, 0)
        mn = offs_n < tl.where(t < L, N, 0)
        _, dt = _masked_delta(delta_ptr + b * s_db, offs_d, p, md, bias, s_dd, s_dl, HAS_BIAS, SOFTPLUS, FAST_MATH)
        dyp = tl.load(dy_ptr + b * s_yb + offs_d * s_yd + p * s_yl, mask=md, other=0.0).to(tl.float32)
        if HAS_Z:
            dyp = dyp * _silu(tl.load(z_ptr + b * s_zb + offs_d * s_zd + p * s_zl, mask=md, other=0.0).to(
                tl.float32), FAST_MATH)
        Ct = tl.load(C_ptr + b * s_Cb + offs_n * s_Cn + p * s_Cl, mask=mn, other=0.0).to(tl.float32)
        g = _approx(A2 * dt[None, :], "ex2", FAST_MATH) * (g + Ct[:, None] * dyp[None, :])
    tl.store(gloc_ptr + (b * tl.num_programs(0) + c) * N * D + nd, g, mask=mask_nd)


@triton.jit
def _advance(h, t, A2, bias, u_b, d_b, B_b, offs_d, offs_n, L, D, N, s_ud, s_ul, s_dd, s_dl, s_Bn, s_Bl,
             HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr, FAST_MATH: tl.constexpr):
    """The state after position t (scan order) from the state before it (unchanged past L), and Δ_t."""
    p = _pos(t, L, REVERSE)
    md = offs_d < tl.where(t < L, D, 0)
    mn = offs_n < tl.where(t < L, N, 0)
    _, dt = _masked_delta(d_b, offs_d, p, md, bias, s_dd, s_dl, HAS_BIAS, SOFTPLUS, FAST_MATH)
    uu = tl.load(u_b + offs_d * s_ud + p * s_ul, mask=md, other=0.0).to(tl.float32)
    Bt = tl.load(B_b + offs_n * s_Bn + p * s_Bl, mask=mn, other=0.0).to(tl.float32)
    return _approx(A2 * dt[None, :], "ex2", FAST_MATH) * h + Bt[:, None] * (dt * uu)[None, :], dt


@triton.jit
def _local_checkpoints_kernel(
    u_ptr, delta_ptr, bias_ptr, A_ptr, B_ptr, ckpt_ptr, csdt_ptr, hloc_ptr, sdt_ptr,
    L, D, N, NDB, CL,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_Bb, s_Bn, s_Bl,
    BD: tl.constexpr, BN: tl.constexpr, K: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, FAST_MATH: tl.constexpr, STAGES: tl.constexpr,
):
    """Each segment of CL positions (a multiple of K) walked from a zero state: the local state before every K-th
    position and the Δ sum before it to ckpt (b, nc, CL / K, n, d) and csdt (b, nc, CL / K, d), the segment's end
    state and Δ sum to hloc (b, nc, n, d) and sdt (b, nc, d). The true state before position c·CL + kb·K is then
    ``ckpt + exp(A · csdt) h_in`` (the recurrence is linear in its initial state): the backward kernel needs no
    walk of its own to find its checkpoints."""
    c = tl.program_id(0)
    nc = tl.num_programs(0)
    b, offs_d, offs_n, mask_d, mask_nd, nd = _program_tile(D, N, NDB, BD, BN)
    A2 = tl.load(A_ptr + nd, mask=mask_nd, other=0.0).to(tl.float32) * LOG2E
    bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32) if HAS_BIAS else None
    u_b, d_b, B_b = u_ptr + b * s_ub, delta_ptr + b * s_db, B_ptr + b * s_Bb
    segment = b * nc + c
    ck = ckpt_ptr + segment * (CL // K) * N * D
    cs = csdt_ptr + segment * (CL // K) * D
    h = tl.zeros((BN, BD), dtype=tl.float32)
    sdt = tl.zeros((BD,), dtype=tl.float32)
    for kb in range(CL // K):
        tl.store(ck + kb * N * D + nd, h, mask=mask_nd)
        tl.store(cs + kb * D + offs_d, sdt, mask=mask_d)
        for j in tl.range(K, num_stages=STAGES):
            h, dt = _advance(h, c * CL + kb * K + j, A2, bias, u_b, d_b, B_b, offs_d, offs_n, L, D, N, s_ud, s_ul,
                             s_dd, s_dl, s_Bn, s_Bl, HAS_BIAS, SOFTPLUS, REVERSE, FAST_MATH)
            sdt += dt
    tl.store(hloc_ptr + segment * N * D + nd, h, mask=mask_nd)
    tl.store(sdt_ptr + segment * D + offs_d, sdt, mask=mask_d)


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, dy_ptr, hin_ptr, gin_ptr, ckpt_ptr, csdt_ptr,
    buf_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr,
    L, D, N, NDB, CL,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_Bb, s_Bn, s_Bl, s_Cb, s_Cn, s_Cl, s_zb, s_zd, s_zl, s_yb, s_yd, s_yl,
    s_gb, s_gd, s_gl,
    BD: tl.constexpr, BN: tl.constexpr, K: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, REVERSE: tl.constexpr, FAST_MATH: tl.constexpr, STAGES: tl.constexpr,
):
    """Gradients of one segment of CL positions (a multiple of K) for BD channels, with (n, d) tiles in registers as
    in the forward. Block by block from the right: the state before the block is its local checkpoint plus
    ``exp(A · csdt)`` times the state entering the segment (hin, (b, nc, n, d); see
    :func:`_local_checkpoints_kernel`); rebuild the K states before its positions into this program's buffer
    (K, BN, BD) in buf, then walk them right to left with the adjoint arriving from the right (gin), writing du,
    ddelta, dz (strides s_g*), dB and dC summed over this program's channels to (b, NDB, n, l), and per-segment
    partial sums of dA (b, nc, n, d), dD and dbias (b, nc, d)."""
    c = tl.program_id(0)
    pid = tl.program_id(1)  # b · NDB + channel block
    nc = tl.num_programs(0)
    b, offs_d, offs_n, mask_d, mask_nd, nd = _program_tile(D, N, NDB, BD, BN)
    A2 = tl.load(A_ptr + nd, mask=mask_nd, other=0.0).to(tl.float32) * LOG2E
    bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32) if HAS_BIAS else None
    Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32) if HAS_D else None
    u_b, d_b, B_b, C_b = u_ptr + b * s_ub, delta_ptr + b * s_db, B_ptr + b * s_Bb, C_ptr + b * s_Cb
    segment = b * nc + c
    ck = ckpt_ptr + segment * (CL // K) * N * D
    cs = csdt_ptr + segment * (CL // K) * D
    local = offs_n[:, None] * BD + tl.arange(0, BD)[None, :]
    buf = buf_ptr + (c * tl.num_programs(1) + pid) * K * BN * BD
    g = tl.load(gin_ptr + segment * N * D + nd, mask=mask_nd, other=0.0)  # exp(Δ_{t+1} A) g_{t+1}
    dA = tl.zeros((BN, BD), dtype=tl.float32)
    dD = tl.zeros((BD,), dtype=tl.float32)
    dbias = tl.zeros((BD,), dtype=tl.float32)
    for kb_r in range(CL // K):
        kb = CL // K - 1 - kb_r
        decay = _approx(A2 * tl.load(cs + kb * D + offs_d, mask=mask_d, other=0.0)[None, :], "ex2", FAST_MATH)
        # (the entering state is read again for each block: kept in registers it would spill)
        h = (tl.load(ck + kb * N * D + nd, mask=mask_nd, other=0.0)
             + decay * tl.load(hin_ptr + segment * N * D + nd, mask=mask_nd, other=0.0))
        for j in tl.range(K, num_stages=STAGES):
            tl.store(buf + j * BN * BD + local, h)
            h, _ = _advance(h, c * CL + kb * K + j, A2, bias, u_b, d_b, B_b, offs_d, offs_n, L, D, N, s_ud, s_ul,
                            s_dd, s_dl, s_Bn, s_Bl, HAS_BIAS, SOFTPLUS, REVERSE, FAST_MATH)
        tl.debug_barrier()  # the block's states are in the buffer
        for j_r in tl.range(K, num_stages=STAGES):
            j = K - 1 - j_r
            t = c * CL + kb * K + j
            p = _pos(t, L, REVERSE)
            md = offs_d < tl.where(t < L, D, 0)
            mn = offs_n < tl.where(t < L, N, 0)
            raw, dt = _masked_delta(d_b, offs_d, p, md, bias, s_dd, s_dl, HAS_BIAS, SOFTPLUS, FAST_MATH)
            uu = tl.load(u_b + offs_d * s_ud + p * s_ul, mask=md, other=0.0).to(tl.float32)
            dout = tl.load(dy_ptr + b * s_yb + offs_d * s_yd + p * s_yl, mask=md, other=0.0).to(tl.float32)
            Bt = tl.load(B_b + offs_n * s_Bn + p * s_Bl, mask=mn, other=0.0).to(tl.float32)
            Ct = tl.load(C_b + offs_n * s_Cn + p * s_Cl, mask=mn, other=0.0).to(tl.float32)
            a = _approx(A2 * dt[None, :], "ex2", FAST_MATH)
            ah = a * tl.load(buf + j * BN * BD + local)  # exp(Δ_t A) h_{t-1}
            dtu = dt * uu
            h = ah + Bt[:, None] * dtu[None, :]
            gout = b * s_gb + offs_d * s_gd + p * s_gl
            if HAS_Z:
                zz = tl.load(z_ptr + b * s_zb + offs_d * s_zd + p * s_zl, mask=md, other=0.0).to(tl.float32)
                sig = _approx(1.0 + _approx(-zz * LOG2E, "ex2", FAST_MATH), "rcp", FAST_MATH)
                y = tl.sum(h * Ct[:, None], axis=0)
                if HAS_D:
                    y += Dv * uu
                tl.store(dz_ptr + gout, (dout * y * sig * (1.0 + zz * (1.0 - sig))).to(dz_ptr.dtype.element_ty),
                         mask=md)
                dyp = dout * zz * sig
            else:
                dyp = dout
            g += Ct[:, None] * dyp[None, :]
            dbc = pid * N * L + offs_n * L + p
            tl.store(dC_ptr + dbc, tl.sum(h * dyp[None, :], axis=1), mask=mn)
            tl.store(dB_ptr + dbc, tl.sum(g * dtu[None, :], axis=1), mask=mn)
            gB = tl.sum(g * Bt[:, None], axis=0)
            gah = g * ah
            dA += gah * dt[None, :]
            ddt = gB * uu + LN2 * tl.sum(gah * A2, axis=0)
            if SOFTPLUS:
                ddt *= 1.0 - _approx(-dt * LOG2E, "ex2", FAST_MATH)  # softplus'(raw) = sigmoid(raw) = 1 - exp(-Δ)
            ddt = tl.where(md, ddt, 0.0)
            du = gB * dt
            if HAS_D:
                du += Dv * dyp
                dD += dyp * uu
            dbias += ddt
            tl.store(du_ptr + gout, du.to(du_ptr.dtype.element_ty), mask=md)
            tl.store(ddelta_ptr + gout, ddt.to(ddelta_ptr.dtype.element_ty), mask=md)
            g = a * g
        tl.debug_barrier()  # the block is read before the next one overwrites the buffer
    tl.store(dA_ptr + segment * N * D + nd, dA, mask=mask_nd)
    tl.store(dD_ptr + segment * D + offs_d, dD, mask=mask_d)
    tl.store(dbias_ptr + segment * D + offs_d, dbias, mask=mask_d)


def _layout(u: Tensor) -> str:
    return "length_major" if u.stride(1) < u.stride(2) else "channels_first"


def _empty_like(u: Tensor, dtype: torch.dtype) -> Tensor:
    """A (b, d, l) tensor in u's layout (length-major stays length-major, so the next linear layer reads it as is)."""
    b, d, length = u.shape
    if _layout(u) == "length_major":
        return torch.empty(b, length, d, device=u.device, dtype=dtype).transpose(1, 2)
    return torch.empty(b, d, length, device=u.device, dtype=dtype)


def _strides(x: Tensor | None) -> tuple[int, int, int]:
    return (0, 0, 0) if x is None else tuple(x.stride())


def _multiprocessors(device: torch.device) -> int:
    """Streaming multiprocessors of the GPU (4 under the Triton interpreter, so its tests exercise segmenting)."""
    if device.type != "cuda":
        return 4
    return _sm_count(torch.cuda.current_device() if device.index is None else device.index)


@lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _segments(units: int, programs: int, device: torch.device, kernel: str) -> tuple[int, int]:
    """(segments, units per segment): one segment when the (batch × channel-block) programs already fill the GPU
    (``PROGRAMS_PER_SM[kernel]``)."""
    target = PROGRAMS_PER_SM[kernel] * _multiprocessors(device)
    if programs >= target or units <= 1:
        return 1, max(units, 1)
    nc = min(units, -(-target // programs))
    per = -(-units // nc)
    return -(-units // per), per


def _state_pass(hloc: Tensor, sdt: Tensor, A: Tensor, h0: Tensor | None, hlast: Tensor, backward: bool) -> None:
    """Turn segment-local states (b, nc, n, d) in place into the states entering each segment (from the right when
    ``backward``), starting from h0 (b, n, d); hlast gets the state after the last segment. A is (n, d)."""
    batch, nc, n, d = hloc.shape
    bn = triton.next_power_of_2(n)
    bd = max(1, min(triton.next_power_of_2(d), PASS_ELEMENTS // (PASS_SEGMENTS * bn)))
    ndb = triton.cdiv(d, bd)
    _state_pass_kernel[(batch * ndb,)](
        hloc, sdt, A, h0, hlast, nc, d, n, ndb, 1, d, BD=bd, BN=bn, CB=PASS_SEGMENTS, HAS_H0=h0 is not None,
        BACKWARD=backward, num_warps=4,
    )


def _length_major(x: Tensor | None) -> Tensor | None:
    """x (b, c, l) with its channels contiguous (a copy when they are not)."""
    return x if x is None or x.stride(1) == 1 else x.transpose(1, 2).contiguous().transpose(1, 2)


def _forward(u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse, marks=None):
    # each program reads the channels (and states) of one position together: they must be contiguous
    u, delta, B, C, z = (_length_major(t) for t in (u, delta, B, C, z))
    A = A.t().contiguous()  # (n, d): the kernels keep A and every state channels-contiguous
    state = None if state is None else state.transpose(1, 2).contiguous()
    batch, d, length = u.shape
    n = A.shape[0]
    bn = triton.next_power_of_2(n)
    bd = max(1, min(triton.next_power_of_2(d), BLOCK_D[_layout(u)]))
    ndb = triton.cdiv(d, bd)
    steps = triton.cdiv(length, UNROLL)
    nc, per_segment = _segments(steps, batch * ndb, u.device, "forward")
    segment_len = per_segment * UNROLL
    y = _empty_like(u, u.dtype)
    hlast = torch.empty(batch, n, d, device=u.device, dtype=torch.float32)
    m = 0 if marks is None else len(mark_counts(marks, length))
    marked = None if marks is None else torch.empty(batch, m, n, d, device=u.device, dtype=torch.float32)
    first, every = marks if m else (1, 1)
    args = (length, d, n, ndb, segment_len)
    strides = (*_strides(u), *_strides(delta), *_strides(B), *_strides(C), *_strides(z), *_strides(y))
    flags = dict(BD=bd, BN=bn, U=UNROLL, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus, HAS_D=D is not None,
                 HAS_Z=z is not None, REVERSE=reverse, FAST_MATH=FAST_MATH, EVEN=d % bd == 0 and n == bn,
                 STAGES=NUM_STAGES["forward"], num_warps=NUM_WARPS["forward"])
    if nc > 1:
        hin = torch.empty(batch, nc, n, d, device=u.device, dtype=torch.float32)
        sdt = torch.empty(batch, nc, d, device=u.device, dtype=torch.float32)
        _fwd_kernel[(nc, batch * ndb)](
            u, delta, delta_bias, A, B, C, D, z, y, None, hin, sdt, None, *args, 0, 0, 0, 1, 1, *strides,
            HAS_HIN=False, STATE_ONLY=True, HAS_MARKS=False, **flags,
        )
        _state_pass(hin, sdt, A, state, hlast, False)
        s_hin = (nc * d * n, d * n)
    else:
        hin, s_hin = state, (d * n, 0)
    _fwd_kernel[(nc, batch * ndb)](
        u, delta, delta_bias, A, B, C, D, z, y, hin, hlast, None, marked, *args, *s_hin, m, first, every, *strides,
        HAS_HIN=hin is not None, STATE_ONLY=False, HAS_MARKS=m > 0, **flags,
    )
    return y, hlast.transpose(1, 2).contiguous(), None if marked is None else marked.transpose(2, 3).contiguous()


def selective_scan_backward(u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse, dy, dlast):
    u, delta, B, C, z, dy = (_length_major(t) for t in (u, delta, B, C, z, dy))
    A_nd = A.t().contiguous()
    batch, d, length = u.shape
    n = A.shape[1]
    bn = triton.next_power_of_2(n)
    bd = max(1, min(triton.next_power_of_2(d), BLOCK_D["backward"]))
    ndb = triton.cdiv(d, bd)
    nc, blocks = _segments(triton.cdiv(length, CHECKPOINT_EVERY), batch * ndb, u.device, "backward")
    segment_len = blocks * CHECKPOINT_EVERY
    f32 = dict(device=u.device, dtype=torch.float32)
    grid = (nc, batch * ndb)
    common = dict(BD=bd, BN=bn, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus, HAS_Z=z is not None,
                  REVERSE=reverse, FAST_MATH=FAST_MATH, num_warps=NUM_WARPS["backward"])
    stages = dict(STAGES=NUM_STAGES["backward"])
    # each segment walked from zero: its local checkpoints, then the state entering it, as in the forward
    ckpt = torch.empty(batch, nc, blocks, n, d, **f32)
    csdt = torch.empty(batch, nc, blocks, d, **f32)
    hin = torch.empty(batch, nc, n, d, **f32)
    sdt = torch.empty(batch, nc, d, **f32)
    scratch = torch.empty(batch, n, d, **f32)
    _local_checkpoints_kernel[grid](
        u, delta, delta_bias, A_nd, B, ckpt, csdt, hin, sdt, length, d, n, ndb, segment_len,
        *_strides(u), *_strides(delta), *_strides(B), K=CHECKPOINT_EVERY,
        **{k: v for k, v in common.items() if k != "HAS_Z"}, **stages,
    )
    _state_pass(hin, sdt, A_nd, None if state is None else state.transpose(1, 2).contiguous(), scratch, False)
    # the adjoint arriving at each segment's last position from the right; the one leaving position 0 is dh0
    gin = torch.empty(batch, nc, n, d, **f32)
    dh0 = torch.empty(batch, n, d, **f32)
    _adjoint_segment_kernel[grid](
        delta, delta_bias, A_nd, C, z, dy, gin, length, d, n, ndb, segment_len,
        *_strides(delta), *_strides(C), *_strides(z), *_strides(dy), **common, **stages,
    )
    _state_pass(gin, sdt, A_nd, None if dlast is None else dlast.transpose(1, 2).contiguous(), dh0, True)
    du = _empty_like(u, u.dtype)
    buf = torch.empty(nc, batch * ndb, CHECKPOINT_EVERY, bn, bd, **f32)
    ddelta = _empty_like(u, delta.dtype)
    dz = None if z is None else _empty_like(u, z.dtype)
    dB = torch.empty(batch, ndb, n, length, **f32)
    dC = torch.empty(batch, ndb, n, length, **f32)
    dA = torch.empty(batch, nc, n, d, **f32)
    dD = torch.empty(batch, nc, d, **f32)
    dbias = torch.empty(batch, nc, d, **f32)
    _bwd_kernel[grid](
        u, delta, delta_bias, A_nd, B, C, D, z, dy, hin, gin, ckpt, csdt, buf, du, ddelta, dz, dB, dC, dA, dD, dbias,
        length, d, n, ndb, segment_len,
        *_strides(u), *_strides(delta), *_strides(B), *_strides(C), *_strides(z), *_strides(dy), *_strides(du),
        K=CHECKPOINT_EVERY, HAS_D=D is not None, **common, **stages,
    )
    return (du, ddelta, dA.sum(dim=(0, 1)).t(), dB.sum(dim=1), dC.sum(dim=1), dD.sum(dim=(0, 1)), dz,
            dbias.sum(dim=(0, 1)), dh0.transpose(1, 2))


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse, marks):
        y, hlast, marked = _forward(u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse, marks)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, state)
        ctx.flags = (softplus, reverse)
        if marked is not None:
            ctx.mark_non_differentiable(marked)
        return y, hlast, marked

    @staticmethod
    def backward(ctx, dy, dlast, dmarked):
        u, delta, A, B, C, D, z, delta_bias, state = ctx.saved_tensors
        softplus, reverse = ctx.flags
        du, ddelta, dA, dB, dC, dD, dz, dbias, dh0 = selective_scan_backward(
            u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse, dy,
            None if dlast is None else dlast.float().contiguous())
        return (
            du, ddelta.to(delta.dtype), dA.to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
            None if D is None else dD.to(D.dtype), dz, None if delta_bias is None else dbias.to(delta_bias.dtype),
            None, None if state is None else dh0, None, None,
        )


def selective_scan_triton(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    state: Tensor | None = None,
    marks: tuple[int, int] | None = None,
    *,
    reverse: bool = False,
) -> tuple[Tensor, ...]:
    """Selective scan on CUDA tensors; see :func:`lrgen.ops.selective_scan`. Differentiable in every tensor input.

    ``reverse=True`` runs the recurrence from position ``l-1`` down to 0 (as on the flipped sequence, with y in the
    original order) and returns the state after position 0. ``marks=(first, every)`` also returns the states after
    the p-th position in scan order, p = first, first + every, … ≤ l, as float32 ``(b, m, d, n)`` (not
    differentiable).
    """
    check_addressable("selective scan", u, delta, B, C, z)
    A = A.contiguous()
    if state is not None:
        state = state.float().contiguous()
    if u.shape[-1] == 0:
        last = u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32) if state is None else state
        marked = last.new_empty(u.shape[0], 0, *last.shape[1:])
        return (torch.empty_like(u), last) + ((marked,) if marks is not None else ())
    args = (u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), state, bool(reverse),
            None if marks is None else tuple(marks))
    if needs_grad(u, delta, A, B, C, D, z, delta_bias, state):
        y, last, marked = _SelectiveScan.apply(*args)
    else:
        y, last, marked = _forward(*args)
    return (y, last) if marks is None else (y, last, marked)
