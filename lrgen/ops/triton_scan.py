"""Triton selective scan (Mamba-1) with state in and out, fused with the D skip and the SiLU(z) gate.

Shapes are those of :func:`lrgen.ops.selective_scan`; any strides are accepted (a ``(b, l, d)`` tensor passed as its
``transpose(1, 2)`` view is read in place and is the fast layout; the forward copies other layouts into it first
and returns y in it). States are float32 whatever the input dtype.

Forward: each program owns a block of channels and walks its stretch of positions one by one with the
``(state, channels)`` block in registers. A and the states are kept channels-contiguous, ``(n, d)``, in memory, so
Triton gives each thread every state of its channels (threads along channels): ``C·h`` is a sum inside the thread,
with no shuffles (with ``(d, n)`` memory it spread the states over 16 threads: 12.8 instead of 9.2 ms per
1M × 512 × 16 on an H100). When (batch × channel blocks) is too few programs to fill the GPU, the sequence is cut
into chunks: (1) each chunk's end state from zero and its summed Δ (``exp(A ΣΔ)`` is its decay),
(2) a pass over chunks that turns them into each chunk's incoming state (blocks of chunks combined by an associative
scan), (3) every chunk recomputed from its incoming state, writing y.

Backward: tiles of T positions; the state entering every tile and the adjoint leaving it are found by the same
steps (1)–(2), run left to right and right to left (``g_t = C_t dy'_t + exp(Δ_{t+1} A) g_{t+1}``); then one program
per tile scans its state and adjoint in registers for all channels and writes every gradient (dB, dC summed over
channels in the program; dA, dD, dbias as per-tile partial sums). ``reverse=True`` scans right to left in place
(position ``l-1`` first) without flipped copies.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from lrgen.ops import mark_counts

# Tile shape: channels per program for each layout (length-major = channels contiguous in memory), and the
# channels × padded state × positions held per program in the forward and in the backward kernel.
# Settings from the sweep of benchmarks/bench_kernels.py on an H100 (docs/benchmarks.md).
BLOCK_D = {"length_major": 64, "channels_first": 32}
TILE_ELEMENTS = {"backward": 2048}
NUM_WARPS = {"forward": 1, "backward": 4}
MIN_T = {"backward": 16}  # the backward keeps one state per tile: long tiles keep that small
PROGRAMS_PER_SM = 64  # the forward splits the sequence into chunks until it has this many programs per SM
UNROLL = 2  # positions of the forward kernel whose loads are issued together
PASS_CHUNKS, PASS_ELEMENTS = 32, 2048  # chunks combined at once by the state pass, and its block size
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
def _load_dt(delta_ptr, bias_ptr, offs_d, mask_d, t, L, s_d, s_l, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
             REVERSE: tl.constexpr):
    """Δ (softplus(delta + bias)) at logical positions t as a (BD, T) float32 tile, 0 outside [0, L); and the raw."""
    mask = mask_d[:, None] & (t[None, :] < L) & (t[None, :] >= 0)
    raw = tl.load(delta_ptr + offs_d[:, None] * s_d + _pos(t, L, REVERSE)[None, :] * s_l, mask=mask, other=0.0)
    raw = raw.to(tl.float32)
    if HAS_BIAS:
        raw += tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    dt = raw
    if SOFTPLUS:
        dt = tl.where(raw <= 20.0, tl.log(1.0 + tl.exp(raw)), raw)
    return tl.where(mask, dt, 0.0), raw


@triton.jit
def _load_dl(ptr, offs_d, mask_d, t, L, s_d, s_l, REVERSE: tl.constexpr):
    mask = mask_d[:, None] & (t[None, :] < L)
    return tl.load(ptr + offs_d[:, None] * s_d + _pos(t, L, REVERSE)[None, :] * s_l, mask=mask, other=0.0).to(
        tl.float32)


@triton.jit
def _load_nl(ptr, offs_n, mask_n, t, L, s_n, s_l, REVERSE: tl.constexpr):
    mask = mask_n[:, None] & (t[None, :] < L)
    return tl.load(ptr + offs_n[:, None] * s_n + _pos(t, L, REVERSE)[None, :] * s_l, mask=mask, other=0.0).to(
        tl.float32)


@triton.jit
def _chunk_state_kernel(
    u_ptr, delta_ptr, bias_ptr, A_ptr, B_ptr, C_ptr, z_ptr, dy_ptr, hloc_ptr, sdt_ptr,
    L, D, N, NDB,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_Bb, s_Bn, s_Bl, s_Cb, s_Cn, s_Cl, s_zb, s_zd, s_zl, s_yb, s_yd, s_yl,
    BD: tl.constexpr, BN: tl.constexpr, T: tl.constexpr, TPC: tl.constexpr, ADJOINT: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_Z: tl.constexpr, REVERSE: tl.constexpr,
):
    """Each chunk's state from zero and its Δ sum. Forward: state after the chunk's last position. Adjoint: the
    adjoint at the chunk's first position with nothing coming from the right, and the Δ sum shifted by one."""
    c = tl.program_id(0)
    pid = tl.program_id(1)
    b = pid // NDB
    offs_d = (pid % NDB) * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    mask_d = offs_d < D
    mask_n = offs_n < N
    A2 = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_d[:, None] & mask_n[None, :], other=0.0)
    A2 = A2.to(tl.float32) * LOG2E
    h = tl.zeros((BD, BN), dtype=tl.float32)
    sdt = tl.zeros((BD,), dtype=tl.float32)
    delta_b = delta_ptr + b * s_db
    if ADJOINT:
        for i in range(TPC):
            tile = c * TPC + (TPC - 1 - i)
            t = tile * T + tl.arange(0, T)
            dt, _ = _load_dt(delta_b, bias_ptr, offs_d, mask_d, t, L, s_dd, s_dl, HAS_BIAS, SOFTPLUS, REVERSE)
            dt_next, _ = _load_dt(delta_b, bias_ptr, offs_d, mask_d, t + 1, L, s_dd, s_dl, HAS_BIAS, SOFTPLUS,
                                  REVERSE)
            dyp = _load_dl(dy_ptr + b * s_yb, offs_d, mask_d, t, L, s_yd, s_yl, REVERSE)
            if HAS_Z:
                zz = _load_dl(z_ptr + b * s_zb, offs_d, mask_d, t, L, s_zd, s_zl, REVERSE)
                dyp = dyp * zz * tl.sigmoid(zz)
            Ct = _load_nl(C_ptr + b * s_Cb, offs_n, mask_n, t, L, s_Cn, s_Cl, REVERSE)
            S = tl.cumsum(dt, axis=1)
            first = tl.sum(tl.where((tl.arange(0, T) == 0)[None, :], dt, 0.0), axis=1)
            w = tl.exp2(A2[:, :, None] * (S - first[:, None])[:, None, :])
            contrib = tl.sum(w * (dyp[:, None, :] * Ct[None, :, :]), axis=2)
            tsum = tl.sum(dt_next, axis=1)
            h = contrib + tl.exp2(A2 * tsum[:, None]) * h
            sdt += tsum
    else:
        for i in range(TPC):
            tile = c * TPC + i
            t = tile * T + tl.arange(0, T)
            dt, _ = _load_dt(delta_b, bias_ptr, offs_d, mask_d, t, L, s_dd, s_dl, HAS_BIAS, SOFTPLUS, REVERSE)
            uu = _load_dl(u_ptr + b * s_ub, offs_d, mask_d, t, L, s_ud, s_ul, REVERSE)
            Bt = _load_nl(B_ptr + b * s_Bb, offs_n, mask_n, t, L, s_Bn, s_Bl, REVERSE)
            S = tl.cumsum(dt, axis=1)
            tsum = tl.sum(dt, axis=1)
            w = tl.exp2(A2[:, :, None] * (tsum[:, None] - S)[:, None, :])
            contrib = tl.sum(w * ((dt * uu)[:, None, :] * Bt[None, :, :]), axis=2)
            h = tl.exp2(A2 * tsum[:, None]) * h + contrib
            sdt += tsum
    nc = tl.num_programs(0)
    base = (b * nc + c) * D
    tl.store(hloc_ptr + (base + offs_d)[:, None] * N + offs_n[None, :], h, mask=mask_d[:, None] & mask_n[None, :])
    tl.store(sdt_ptr + base + offs_d, sdt, mask=mask_d)


@triton.jit
def _state_pass_kernel(
    hloc_ptr, sdt_ptr, A_ptr, h0_ptr, hlast_ptr, NC, D, N, NDB, S_D, S_N,
    BD: tl.constexpr, BN: tl.constexpr, CB: tl.constexpr, HAS_H0: tl.constexpr, BACKWARD: tl.constexpr,
):
    """Overwrite each chunk's local state with the state entering it (from the left, or from the right for the
    adjoint), starting from h0; write the state after the last chunk. Blocks of CB chunks are combined with one
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
    HAS_MARKS: tl.constexpr, FAST_MATH: tl.constexpr, EVEN: tl.constexpr,
):
    """One chunk of CL positions (a multiple of U) for BD channels, position by position with the (BN, BD) state
    in registers: A and every state in memory are stored (n, d), channels contiguous, so the state index is the
    tile's slow axis, each thread holds whole columns (every state of its channels) and ``C·h`` sums inside the
    thread. U positions are unrolled so their loads are in flight together. STATE_ONLY: write the chunk's end
    state from h_in (zero) and its Δ sum to hout (b, nc, n, d) / sdt (b, nc, d) instead of y; else write y, the
    final state to hout (b, n, d) from the last chunk, and with HAS_MARKS the state after the p-th position (scan
    order) to marked (b, M, n, d) for p = MARK_FIRST + k·MARK_EVERY. EVEN: D is a multiple of BD and N is BN,
    so only positions past L need masks."""
    c = tl.program_id(0)
    pid = tl.program_id(1)
    b = pid // NDB
    offs_d = (pid % NDB) * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    mask_d = offs_d < D
    mask_nd = (offs_n < N)[:, None] & mask_d[None, :]
    nd = offs_n[:, None] * D + offs_d[None, :]  # (BN, BD) offsets of a state stored (n, d): channels contiguous
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
    # positions a whole channel block and state has: unmasked (the last chunk's tail and ragged blocks: masked)
    full = tl.maximum(tl.minimum(CL, L - c * CL), 0) // U * U if EVEN else 0
    for i in range(0, full, U):
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
def _bwd_kernel(
    u_ptr, delta_ptr, bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, dy_ptr, hin_ptr, gnext_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, dh0_ptr,
    L, D, N, NDB,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_Bb, s_Bn, s_Bl, s_Cb, s_Cn, s_Cl, s_zb, s_zd, s_zl, s_yb, s_yd, s_yl,
    s_gb, s_gd, s_gl,
    BD: tl.constexpr, BN: tl.constexpr, T: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, REVERSE: tl.constexpr,
):
    """Gradients of one tile of T positions, all channels (a loop over blocks of BD), so dB and dC are summed
    over channels here. The adjoint scan runs on inputs loaded back to front (``_r``: index r is position
    T-1-r of the tile), so every term with g is formed in that order; the forward state is flipped into it.
    du, ddelta, dz share the strides s_g*; dB, dC are float32 (b, n, l); per-tile partial sums: dA over the
    tile's entries of hin (b, tiles, d, n), dD and dbias (b, tiles, d)."""
    tile = tl.program_id(0)
    b = tl.program_id(1)
    nt = tl.num_programs(0)
    offs_n = tl.arange(0, BN)
    mask_n = offs_n < N
    t = tile * T + tl.arange(0, T)
    t_r = tile * T + (T - 1 - tl.arange(0, T))
    B_b, C_b = B_ptr + b * s_Bb, C_ptr + b * s_Cb
    Bt = _load_nl(B_b, offs_n, mask_n, t, L, s_Bn, s_Bl, REVERSE)
    Ct = _load_nl(C_b, offs_n, mask_n, t, L, s_Cn, s_Cl, REVERSE)
    Bt_r = _load_nl(B_b, offs_n, mask_n, t_r, L, s_Bn, s_Bl, REVERSE)
    Ct_r = _load_nl(C_b, offs_n, mask_n, t_r, L, s_Cn, s_Cl, REVERSE)
    dB_acc = tl.zeros((BN, T), dtype=tl.float32)
    dC_acc = tl.zeros((BN, T), dtype=tl.float32)
    is_last_r = (tl.arange(0, T) == T - 1)[None, None, :]
    for db in range(NDB):
        offs_d = db * BD + tl.arange(0, BD)
        mask_d = offs_d < D
        mask_dn = mask_d[:, None] & mask_n[None, :]
        A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
        A2 = A * LOG2E
        sidx = ((b * nt + tile) * D + offs_d)[:, None] * N + offs_n[None, :]
        h0 = tl.load(hin_ptr + sidx, mask=mask_dn, other=0.0)
        gn = tl.load(gnext_ptr + sidx, mask=mask_dn, other=0.0)
        d_b = delta_ptr + b * s_db
        dt, _ = _load_dt(d_b, bias_ptr, offs_d, mask_d, t, L, s_dd, s_dl, HAS_BIAS, SOFTPLUS, REVERSE)
        dt_r, raw_r = _load_dt(d_b, bias_ptr, offs_d, mask_d, t_r, L, s_dd, s_dl, HAS_BIAS, SOFTPLUS, REVERSE)
        dtn_r, _ = _load_dt(d_b, bias_ptr, offs_d, mask_d, t_r + 1, L, s_dd, s_dl, HAS_BIAS, SOFTPLUS, REVERSE)
        u_b, y_b = u_ptr + b * s_ub, dy_ptr + b * s_yb
        uu = _load_dl(u_b, offs_d, mask_d, t, L, s_ud, s_ul, REVERSE)
        uu_r = _load_dl(u_b, offs_d, mask_d, t_r, L, s_ud, s_ul, REVERSE)
        dy = _load_dl(y_b, offs_d, mask_d, t, L, s_yd, s_yl, REVERSE)
        dy_r = _load_dl(y_b, offs_d, mask_d, t_r, L, s_yd, s_yl, REVERSE)
        # forward state over the tile, in position order
        dBu = (dt * uu)[:, None, :] * Bt[None, :, :]
        ca, cb = tl.associative_scan((tl.exp2(A2[:, :, None] * dt[:, None, :]), dBu), 2, _combine)
        hs = ca * h0[:, :, None] + cb
        dh_r = tl.flip(hs - dBu, 2)  # exp(Δ_t A) h_{t-1}, back to front
        m2 = mask_d[:, None] & (t < L)[None, :]
        m2_r = mask_d[:, None] & (t_r < L)[None, :]
        gptr = b * s_gb + offs_d[:, None] * s_gd + _pos(t, L, REVERSE)[None, :] * s_gl
        gptr_r = b * s_gb + offs_d[:, None] * s_gd + _pos(t_r, L, REVERSE)[None, :] * s_gl
        if HAS_Z:
            zz = _load_dl(z_ptr + b * s_zb, offs_d, mask_d, t, L, s_zd, s_zl, REVERSE)
            zz_r = _load_dl(z_ptr + b * s_zb, offs_d, mask_d, t_r, L, s_zd, s_zl, REVERSE)
            sig = tl.sigmoid(zz)
            ypre = tl.sum(hs * Ct[None, :, :], axis=1)
            if HAS_D:
                Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
                ypre += Dv[:, None] * uu
            tl.store(dz_ptr + gptr, (dy * ypre * sig * (1.0 + zz * (1.0 - sig))).to(dz_ptr.dtype.element_ty), mask=m2)
            dyp = dy * zz * sig
            dyp_r = dy_r * zz_r * tl.sigmoid(zz_r)
        else:
            dyp = dy
            dyp_r = dy_r
        dC_acc += tl.sum(hs * dyp[:, None, :], axis=0)
        # adjoint g_t = C_t dy'_t + exp(Δ_{t+1} A) g_{t+1}, back to front
        ga, gb = tl.associative_scan(
            (tl.exp2(A2[:, :, None] * dtn_r[:, None, :]), dyp_r[:, None, :] * Ct_r[None, :, :]), 2, _combine)
        g = ga * gn[:, :, None] + gb
        gB = tl.sum(g * Bt_r[None, :, :], axis=1)
        du = gB * dt_r
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
            du += Dv[:, None] * dyp_r
            tl.store(dD_ptr + (b * nt + tile) * D + offs_d, tl.sum(tl.where(m2_r, dyp_r * uu_r, 0.0), axis=1),
                     mask=mask_d)
        g_dh = g * dh_r
        ddt = gB * uu_r + tl.sum(g_dh * A[:, :, None], axis=1)
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(raw_r)
        ddt = tl.where(m2_r, ddt, 0.0)
        if HAS_BIAS:
            tl.store(dbias_ptr + (b * nt + tile) * D + offs_d, tl.sum(ddt, axis=1), mask=mask_d)
        tl.store(hin_ptr + sidx, tl.sum(g_dh * dt_r[:, None, :], axis=2), mask=mask_dn)  # dA partial
        tl.store(du_ptr + gptr_r, du.to(du_ptr.dtype.element_ty), mask=m2_r)
        tl.store(ddelta_ptr + gptr_r, ddt.to(ddelta_ptr.dtype.element_ty), mask=m2_r)
        dB_acc += tl.sum(g * (dt_r * uu_r)[:, None, :], axis=0)
        if tile == 0:
            dh0 = tl.sum(tl.where(is_last_r, tl.exp2(A2[:, :, None] * dt_r[:, None, :]) * g, 0.0), axis=2)
            tl.store(dh0_ptr + (b * D + offs_d)[:, None] * N + offs_n[None, :], dh0, mask=mask_dn)
    nl = (b * N + offs_n)[:, None] * L
    tl.store(dB_ptr + nl + _pos(t_r, L, REVERSE)[None, :], dB_acc, mask=mask_n[:, None] & (t_r < L)[None, :])
    tl.store(dC_ptr + nl + _pos(t, L, REVERSE)[None, :], dC_acc, mask=mask_n[:, None] & (t < L)[None, :])


def _layout(u: Tensor) -> str:
    return "length_major" if u.stride(1) < u.stride(2) else "channels_first"


def _config(u: Tensor, n: int, kind: str) -> tuple[int, int, int]:
    """(BD, BN, T): channels per program, padded state size, tile length."""
    bn = triton.next_power_of_2(n)
    te, min_t = TILE_ELEMENTS[kind], MIN_T[kind]
    bd = max(1, min(triton.next_power_of_2(u.shape[1]), BLOCK_D[_layout(u)], te // (min_t * bn)))
    t = max(min_t, te // (bd * bn))
    return bd, bn, t


def _empty_like(u: Tensor, dtype: torch.dtype) -> Tensor:
    """A (b, d, l) tensor in u's layout (length-major stays length-major, so the next linear layer reads it as is)."""
    b, d, length = u.shape
    if _layout(u) == "length_major":
        return torch.empty(b, length, d, device=u.device, dtype=dtype).transpose(1, 2)
    return torch.empty(b, d, length, device=u.device, dtype=dtype)


def _strides(x: Tensor | None) -> tuple[int, int, int]:
    return (0, 0, 0) if x is None else tuple(x.stride())


def _multiprocessors(device: torch.device) -> int:
    """Streaming multiprocessors of the GPU (4 under the Triton interpreter, so its tests exercise chunking)."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4


def _chunks(units: int, programs: int, device: torch.device) -> tuple[int, int]:
    """(chunks, units per chunk): one chunk when the (batch × channel-block) programs already fill the GPU."""
    target = PROGRAMS_PER_SM * _multiprocessors(device)
    if programs >= target or units <= 1:
        return 1, max(units, 1)
    nc = min(units, -(-target // programs))
    per = -(-units // nc)
    return -(-units // per), per


def _launch_states(u, delta, delta_bias, A, B, C, z, dy, nc, tpc, cfg, softplus, reverse, adjoint, h0, hlast):
    """Steps (1) and (2): the state entering every chunk, (b, nc, d, n) float32; hlast gets the final state."""
    batch, d, length = u.shape
    n = A.shape[1]
    bd, bn, t = cfg
    ndb = triton.cdiv(d, bd)
    hloc = torch.empty(batch, nc, d, n, device=u.device, dtype=torch.float32)
    sdt = torch.empty(batch, nc, d, device=u.device, dtype=torch.float32)
    _chunk_state_kernel[(nc, batch * ndb)](
        u, delta, delta_bias, A, B, C, z, dy, hloc, sdt, length, d, n, ndb,
        *_strides(u), *_strides(delta), *_strides(B), *_strides(C), *_strides(z), *_strides(dy),
        BD=bd, BN=bn, T=t, TPC=tpc, ADJOINT=adjoint, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
        HAS_Z=z is not None, REVERSE=reverse, num_warps=NUM_WARPS["backward"],
    )
    _state_pass(hloc, sdt, A, h0, hlast, adjoint)
    return hloc


def _state_pass(hloc: Tensor, sdt: Tensor, A: Tensor, h0: Tensor | None, hlast: Tensor, backward: bool,
                state_major: bool = False) -> None:
    """Turn chunk-local states (b, nc, d, n) in place into the states entering each chunk; with ``state_major``
    the states, h0, hlast and A are stored (n, d) instead (``hloc`` then (b, nc, n, d))."""
    batch, nc = hloc.shape[:2]
    d, n = hloc.shape[2:] if not state_major else hloc.shape[2:][::-1]
    bn = triton.next_power_of_2(n)
    bd = max(1, min(triton.next_power_of_2(d), PASS_ELEMENTS // (PASS_CHUNKS * bn)))
    ndb = triton.cdiv(d, bd)
    s_d, s_n = (1, d) if state_major else (n, 1)
    _state_pass_kernel[(batch * ndb,)](
        hloc, sdt, A, h0, hlast, nc, d, n, ndb, s_d, s_n, BD=bd, BN=bn, CB=PASS_CHUNKS, HAS_H0=h0 is not None,
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
    nc, per_chunk = _chunks(steps, batch * ndb, u.device)
    chunk_len = per_chunk * UNROLL
    y = _empty_like(u, u.dtype)
    hlast = torch.empty(batch, n, d, device=u.device, dtype=torch.float32)
    m = 0 if marks is None else len(mark_counts(marks, length))
    marked = torch.empty(batch, m, n, d, device=u.device, dtype=torch.float32)
    first, every = marks if m else (1, 1)
    args = (length, d, n, ndb, chunk_len)
    strides = (*_strides(u), *_strides(delta), *_strides(B), *_strides(C), *_strides(z), *_strides(y))
    flags = dict(BD=bd, BN=bn, U=UNROLL, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus, HAS_D=D is not None,
                 HAS_Z=z is not None, REVERSE=reverse, FAST_MATH=FAST_MATH, EVEN=d % bd == 0 and n == bn,
                 num_warps=NUM_WARPS["forward"])
    if nc > 1:
        hin = torch.empty(batch, nc, n, d, device=u.device, dtype=torch.float32)
        sdt = torch.empty(batch, nc, d, device=u.device, dtype=torch.float32)
        _fwd_kernel[(nc, batch * ndb)](
            u, delta, delta_bias, A, B, C, D, z, y, None, hin, sdt, None, *args, 0, 0, 0, 1, 1, *strides,
            HAS_HIN=False, STATE_ONLY=True, HAS_MARKS=False, **flags,
        )
        _state_pass(hin, sdt, A, state, hlast, False, state_major=True)
        s_hin = (nc * d * n, d * n)
    else:
        hin, s_hin = state, (d * n, 0)
    _fwd_kernel[(nc, batch * ndb)](
        u, delta, delta_bias, A, B, C, D, z, y, hin, hlast, None, marked, *args, *s_hin, m, first, every, *strides,
        HAS_HIN=hin is not None, STATE_ONLY=False, HAS_MARKS=m > 0, **flags,
    )
    return y, hlast.transpose(1, 2).contiguous(), marked.transpose(2, 3).contiguous()


def _backward(u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse, dy, dlast):
    batch, d, length = u.shape
    n = A.shape[1]
    cfg = bd, bn, t = _config(u, n, "backward")
    n_tiles = triton.cdiv(length, t)
    scratch = torch.empty(batch, d, n, device=u.device, dtype=torch.float32)
    hin = _launch_states(u, delta, delta_bias, A, B, C, None, None, n_tiles, 1, cfg, softplus, reverse, False,
                         state, scratch)
    gnext = _launch_states(u, delta, delta_bias, A, B, C, z, dy, n_tiles, 1, cfg, softplus, reverse, True,
                           dlast, scratch)
    du = _empty_like(u, u.dtype)
    ddelta = _empty_like(u, delta.dtype)
    dz = None if z is None else _empty_like(u, z.dtype)
    f32 = dict(device=u.device, dtype=torch.float32)
    dB = torch.empty(batch, n, length, **f32)
    dC = torch.empty(batch, n, length, **f32)
    dD = torch.empty(batch, n_tiles, d, **f32)
    dbias = torch.empty(batch, n_tiles, d, **f32)
    dh0 = torch.empty(batch, d, n, **f32)
    _bwd_kernel[(n_tiles, batch)](
        u, delta, delta_bias, A, B, C, D, z, dy, hin, gnext, du, ddelta, dz, dB, dC, dD, dbias, dh0,
        length, d, n, triton.cdiv(d, bd),
        *_strides(u), *_strides(delta), *_strides(B), *_strides(C), *_strides(z), *_strides(dy), *_strides(du),
        BD=bd, BN=bn, T=t, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus, HAS_D=D is not None,
        HAS_Z=z is not None, REVERSE=reverse, num_warps=NUM_WARPS["backward"],
    )
    dA = hin.sum(dim=(0, 1))
    return du, ddelta, dA, dB, dC, dD.sum(dim=(0, 1)), dz, dbias.sum(dim=(0, 1)), dh0


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse, marks):
        y, hlast, marked = _forward(u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse, marks)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, state)
        ctx.flags = (softplus, reverse)
        ctx.mark_non_differentiable(marked)
        return y, hlast, marked

    @staticmethod
    def backward(ctx, dy, dlast, dmarked):
        u, delta, A, B, C, D, z, delta_bias, state = ctx.saved_tensors
        softplus, reverse = ctx.flags
        du, ddelta, dA, dB, dC, dD, dz, dbias, dh0 = _backward(
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
    A = A.contiguous()
    if state is not None:
        state = state.float().contiguous()
    if u.shape[-1] == 0:
        last = u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32) if state is None else state
        marked = last.new_empty(u.shape[0], 0, *last.shape[1:])
        return (torch.empty_like(u), last) + ((marked,) if marks is not None else ())
    y, last, marked = _SelectiveScan.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), state,
                                           bool(reverse), None if marks is None else tuple(marks))
    return (y, last) if marks is None else (y, last, marked)
