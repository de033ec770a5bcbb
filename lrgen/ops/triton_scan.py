"""Triton selective scan (Mamba-1) with state in and out, fused with the D skip and the SiLU(z) gate.

Shapes are those of :func:`lrgen.ops.selective_scan`; any strides are accepted (a ``(b, l, d)`` tensor passed as its
``transpose(1, 2)`` view is read in place and is the fast layout). The sequence is cut into tiles of ``T`` positions;
within a tile the recurrence ``h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t`` is an associative scan held in registers as a
``(channels, state, T)`` block in float32. Across tiles the state is carried in three steps, each parallel except the
second: (1) every chunk's end state from zero and its summed Δ (``exp(A ΣΔ)`` is the chunk's decay), (2) one
sequential pass over chunks that turns them into each chunk's incoming state, (3) every chunk recomputed from its
incoming state, writing y. With enough (batch × channel) blocks to fill the GPU there is a single chunk and only
step (3) runs. The backward pass recomputes states per tile the same way, runs the adjoint recurrence
``g_t = C_t dy'_t + exp(Δ_{t+1} A) g_{t+1}`` with the same three steps right to left, and forms every gradient per
tile. ``reverse=True`` scans right to left in place (position ``l-1`` first) without flipped copies.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

# Tile shape: channels per program for each layout (length-major = channels contiguous in memory), and the
# channels × padded state × positions held per program in the forward and in the backward kernel.
BLOCK_D = {"length_major": 32, "channels_first": 4}
TILE_ELEMENTS = {"forward": 2048, "backward": 1024}
NUM_WARPS = {"forward": 4, "backward": 4}
MIN_T = {"forward": 2, "backward": 16}  # the backward keeps one state per tile: long tiles keep that small
PASS_CHUNKS, PASS_ELEMENTS = 32, 2048  # chunks combined at once by the state pass, and its block size


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
    A2 = A2.to(tl.float32) * 1.4426950408889634
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
    hloc_ptr, sdt_ptr, A_ptr, h0_ptr, hlast_ptr, NC, D, N, NDB,
    BD: tl.constexpr, BN: tl.constexpr, CB: tl.constexpr, HAS_H0: tl.constexpr, BACKWARD: tl.constexpr,
):
    """Overwrite each chunk's local state with the state entering it (from the left, or from the right for the
    adjoint), starting from h0; write the state after the last chunk. Blocks of CB chunks are combined with one
    associative scan, the blocks in sequence."""
    pid = tl.program_id(0)
    b = pid // NDB
    offs_d = (pid % NDB) * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    mask = (offs_d < D)[:, None] & (offs_n < N)[None, :]
    A2 = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask, other=0.0).to(tl.float32)
    A2 = A2 * 1.4426950408889634
    sidx = (b * D + offs_d)[:, None] * N + offs_n[None, :]
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
        base = ((b * NC + c) * D)[:, None] + offs_d[None, :]  # (CB, BD)
        base_prev = ((b * NC + c_prev) * D)[:, None] + offs_d[None, :]
        loc = tl.load(hloc_ptr + base[:, :, None] * N + offs_n[None, None, :], mask=m3, other=0.0)
        loc_prev = tl.load(hloc_ptr + base_prev[:, :, None] * N + offs_n[None, None, :], mask=m3_prev, other=0.0)
        dmask = valid[:, None] & (offs_d < D)[None, :]
        s = tl.load(sdt_ptr + base, mask=dmask, other=0.0)
        s_prev = tl.load(sdt_ptr + base_prev, mask=valid_prev[:, None] & (offs_d < D)[None, :], other=0.0)
        ca, cb = tl.associative_scan((tl.exp2(A2[None, :, :] * s_prev[:, :, None]), loc_prev), 0, _combine)
        tl.store(hloc_ptr + base[:, :, None] * N + offs_n[None, None, :], ca * h[None, :, :] + cb, mask=m3)
        ta, tb = tl.reduce((tl.exp2(A2[None, :, :] * s[:, :, None]), loc), 0, _combine)
        h = ta * h + tb
    tl.store(hlast_ptr + sidx, h, mask=mask)


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, y_ptr, hin_ptr, hlast_ptr,
    L, D, N, NDB, s_hin_b, s_hin_c,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_Bb, s_Bn, s_Bl, s_Cb, s_Cn, s_Cl, s_zb, s_zd, s_zl, s_yb, s_yd, s_yl,
    BD: tl.constexpr, BN: tl.constexpr, T: tl.constexpr, TPC: tl.constexpr, HAS_HIN: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, REVERSE: tl.constexpr,
):
    c = tl.program_id(0)
    pid = tl.program_id(1)
    b = pid // NDB
    offs_d = (pid % NDB) * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    mask_d = offs_d < D
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    A2 = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
    A2 = A2 * 1.4426950408889634
    if HAS_HIN:
        h = tl.load(hin_ptr + b * s_hin_b + c * s_hin_c + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn,
                    other=0.0)
    else:
        h = tl.zeros((BD, BN), dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    last = (tl.arange(0, T) == T - 1)[None, None, :]
    for i in range(TPC):
        t = (c * TPC + i) * T + tl.arange(0, T)
        dt, _ = _load_dt(delta_ptr + b * s_db, bias_ptr, offs_d, mask_d, t, L, s_dd, s_dl, HAS_BIAS, SOFTPLUS,
                         REVERSE)
        uu = _load_dl(u_ptr + b * s_ub, offs_d, mask_d, t, L, s_ud, s_ul, REVERSE)
        Bt = _load_nl(B_ptr + b * s_Bb, offs_n, mask_n, t, L, s_Bn, s_Bl, REVERSE)
        Ct = _load_nl(C_ptr + b * s_Cb, offs_n, mask_n, t, L, s_Cn, s_Cl, REVERSE)
        dA = tl.exp2(A2[:, :, None] * dt[:, None, :])
        dBu = (dt * uu)[:, None, :] * Bt[None, :, :]
        cA, cB = tl.associative_scan((dA, dBu), 2, _combine)
        hs = cA * h[:, :, None] + cB
        y = tl.sum(hs * Ct[None, :, :], axis=1)
        h = tl.sum(tl.where(last, hs, 0.0), axis=2)
        if HAS_D:
            y += Dv[:, None] * uu
        if HAS_Z:
            zz = _load_dl(z_ptr + b * s_zb, offs_d, mask_d, t, L, s_zd, s_zl, REVERSE)
            y = y * zz * tl.sigmoid(zz)
        ymask = mask_d[:, None] & (t[None, :] < L)
        tl.store(y_ptr + b * s_yb + offs_d[:, None] * s_yd + _pos(t, L, REVERSE)[None, :] * s_yl,
                 y.to(y_ptr.dtype.element_ty), mask=ymask)
    if c == tl.num_programs(0) - 1:
        tl.store(hlast_ptr + (b * D + offs_d)[:, None] * N + offs_n[None, :], h, mask=mask_dn)


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, dy_ptr, hin_ptr, gnext_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr, dh0_ptr,
    L, D, N, NDB, NT,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_Bb, s_Bn, s_Bl, s_Cb, s_Cn, s_Cl, s_zb, s_zd, s_zl, s_yb, s_yd, s_yl,
    s_gb, s_gd, s_gl,
    BD: tl.constexpr, BN: tl.constexpr, T: tl.constexpr, TPC: tl.constexpr,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, REVERSE: tl.constexpr,
):
    """Gradients of TPC tiles; du, ddelta, dz share the strides s_g*; dB, dC are float32 (b, n, l) contiguous and
    accumulated with atomics over channel blocks, dA, dD, dbias with atomics over tiles."""
    c = tl.program_id(0)
    pid = tl.program_id(1)
    b = pid // NDB
    offs_d = (pid % NDB) * BD + tl.arange(0, BD)
    offs_n = tl.arange(0, BN)
    mask_d = offs_d < D
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
    A2 = A * 1.4426950408889634
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    dA_acc = tl.zeros((BD, BN), dtype=tl.float32)
    dD_acc = tl.zeros((BD,), dtype=tl.float32)
    dbias_acc = tl.zeros((BD,), dtype=tl.float32)
    last = (tl.arange(0, T) == T - 1)[None, None, :]
    first = (tl.arange(0, T) == 0)[None, None, :]
    for i in range(TPC):
        tile = c * TPC + i
        if tile < NT:
            t = tile * T + tl.arange(0, T)
            tmask = t < L
            m2 = mask_d[:, None] & tmask[None, :]
            sidx = ((b * NT + tile) * D + offs_d)[:, None] * N + offs_n[None, :]
            h0 = tl.load(hin_ptr + sidx, mask=mask_dn, other=0.0)
            gn = tl.load(gnext_ptr + sidx, mask=mask_dn, other=0.0)
            dt, raw = _load_dt(delta_ptr + b * s_db, bias_ptr, offs_d, mask_d, t, L, s_dd, s_dl, HAS_BIAS, SOFTPLUS,
                               REVERSE)
            dt_next, _ = _load_dt(delta_ptr + b * s_db, bias_ptr, offs_d, mask_d, t + 1, L, s_dd, s_dl, HAS_BIAS,
                                  SOFTPLUS, REVERSE)
            uu = _load_dl(u_ptr + b * s_ub, offs_d, mask_d, t, L, s_ud, s_ul, REVERSE)
            dy = _load_dl(dy_ptr + b * s_yb, offs_d, mask_d, t, L, s_yd, s_yl, REVERSE)
            Bt = _load_nl(B_ptr + b * s_Bb, offs_n, mask_n, t, L, s_Bn, s_Bl, REVERSE)
            Ct = _load_nl(C_ptr + b * s_Cb, offs_n, mask_n, t, L, s_Cn, s_Cl, REVERSE)
            dA = tl.exp2(A2[:, :, None] * dt[:, None, :])
            dBu = (dt * uu)[:, None, :] * Bt[None, :, :]
            cA, cB = tl.associative_scan((dA, dBu), 2, _combine)
            hs = cA * h0[:, :, None] + cB
            if HAS_Z:
                zz = _load_dl(z_ptr + b * s_zb, offs_d, mask_d, t, L, s_zd, s_zl, REVERSE)
                sig = tl.sigmoid(zz)
                dyp = dy * zz * sig
                ypre = tl.sum(hs * Ct[None, :, :], axis=1)
                if HAS_D:
                    ypre += Dv[:, None] * uu
                dz = dy * ypre * sig * (1.0 + zz * (1.0 - sig))
                tl.store(dz_ptr + b * s_gb + offs_d[:, None] * s_gd + _pos(t, L, REVERSE)[None, :] * s_gl,
                         dz.to(dz_ptr.dtype.element_ty), mask=m2)
            else:
                dyp = dy
            ga, gb = tl.associative_scan(
                (tl.exp2(A2[:, :, None] * dt_next[:, None, :]), dyp[:, None, :] * Ct[None, :, :]), 2, _combine,
                reverse=True)
            g = ga * gn[:, :, None] + gb
            dh = hs - dBu  # exp(Δ A) h_{t-1}
            gB = tl.sum(g * Bt[None, :, :], axis=1)
            du = gB * dt
            if HAS_D:
                du += Dv[:, None] * dyp
                dD_acc += tl.sum(tl.where(m2, dyp * uu, 0.0), axis=1)
            ddt = gB * uu + tl.sum(g * dh * A[:, :, None], axis=1)
            if SOFTPLUS:
                ddt = ddt * tl.sigmoid(raw)
            ddt = tl.where(m2, ddt, 0.0)
            dbias_acc += tl.sum(ddt, axis=1)
            dA_acc += tl.sum(g * dh * dt[:, None, :], axis=2)
            gptr = offs_d[:, None] * s_gd + _pos(t, L, REVERSE)[None, :] * s_gl + b * s_gb
            tl.store(du_ptr + gptr, du.to(du_ptr.dtype.element_ty), mask=m2)
            tl.store(ddelta_ptr + gptr, ddt.to(ddelta_ptr.dtype.element_ty), mask=m2)
            dBt = tl.sum(g * (dt * uu)[:, None, :], axis=0)
            dCt = tl.sum(hs * dyp[:, None, :], axis=0)
            nl = (b * N + offs_n)[:, None] * L + _pos(t, L, REVERSE)[None, :]
            m_nl = mask_n[:, None] & tmask[None, :]
            tl.atomic_add(dB_ptr + nl, dBt, mask=m_nl)
            tl.atomic_add(dC_ptr + nl, dCt, mask=m_nl)
            if tile == 0:
                dh0 = tl.sum(tl.where(first, dA * g, 0.0), axis=2)
                tl.store(dh0_ptr + (b * D + offs_d)[:, None] * N + offs_n[None, :], dh0, mask=mask_dn)
    tl.atomic_add(dA_ptr + offs_d[:, None] * N + offs_n[None, :], dA_acc, mask=mask_dn)
    if HAS_D:
        tl.atomic_add(dD_ptr + offs_d, dD_acc, mask=mask_d)
    if HAS_BIAS:
        tl.atomic_add(dbias_ptr + offs_d, dbias_acc, mask=mask_d)


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


def _chunks(n_tiles: int, programs: int, device: torch.device) -> tuple[int, int]:
    """(chunks, tiles per chunk): one chunk when the (batch × channel-block) programs already fill the GPU."""
    target = 4 * _multiprocessors(device)
    if programs >= target or n_tiles == 1:
        return 1, n_tiles
    nc = min(n_tiles, -(-target // programs))
    tpc = -(-n_tiles // nc)
    return -(-n_tiles // tpc), tpc


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
        HAS_Z=z is not None, REVERSE=reverse, num_warps=NUM_WARPS["forward"],
    )
    bd2 = max(1, min(triton.next_power_of_2(d), PASS_ELEMENTS // (PASS_CHUNKS * bn)))
    _state_pass_kernel[(batch * triton.cdiv(d, bd2),)](
        hloc, sdt, A, h0, hlast, nc, d, n, triton.cdiv(d, bd2), BD=bd2, BN=bn, CB=PASS_CHUNKS,
        HAS_H0=h0 is not None, BACKWARD=adjoint, num_warps=4,
    )
    return hloc


def _forward(u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse):
    batch, d, length = u.shape
    n = A.shape[1]
    cfg = bd, bn, t = _config(u, n, "forward")
    ndb = triton.cdiv(d, bd)
    n_tiles = triton.cdiv(length, t)
    nc, tpc = _chunks(n_tiles, batch * ndb, u.device)
    y = _empty_like(u, u.dtype)
    hlast = torch.empty(batch, d, n, device=u.device, dtype=torch.float32)
    if nc > 1:
        hin = _launch_states(u, delta, delta_bias, A, B, C, None, None, nc, tpc, cfg, softplus, reverse, False,
                             state, hlast)
        s_hin_b, s_hin_c = nc * d * n, d * n
    else:
        hin, s_hin_b, s_hin_c = state, d * n, 0
    _fwd_kernel[(nc, batch * ndb)](
        u, delta, delta_bias, A, B, C, D, z, y, hin, hlast, length, d, n, ndb, s_hin_b, s_hin_c,
        *_strides(u), *_strides(delta), *_strides(B), *_strides(C), *_strides(z), *_strides(y),
        BD=bd, BN=bn, T=t, TPC=tpc, HAS_HIN=hin is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
        HAS_D=D is not None, HAS_Z=z is not None, REVERSE=reverse, num_warps=NUM_WARPS["forward"],
    )
    return y, hlast


def _backward(u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse, dy, dlast):
    batch, d, length = u.shape
    n = A.shape[1]
    cfg = bd, bn, t = _config(u, n, "backward")
    ndb = triton.cdiv(d, bd)
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
    dB = torch.zeros(batch, n, length, **f32)
    dC = torch.zeros(batch, n, length, **f32)
    dA = torch.zeros(d, n, **f32)
    dD = torch.zeros(d, **f32)
    dbias = torch.zeros(d, **f32)
    dh0 = torch.empty(batch, d, n, **f32)
    tpc = 1 if batch * ndb * n_tiles <= 4096 else 4
    _bwd_kernel[(triton.cdiv(n_tiles, tpc), batch * ndb)](
        u, delta, delta_bias, A, B, C, D, z, dy, hin, gnext, du, ddelta, dz, dB, dC, dA, dD, dbias, dh0,
        length, d, n, ndb, n_tiles,
        *_strides(u), *_strides(delta), *_strides(B), *_strides(C), *_strides(z), *_strides(dy), *_strides(du),
        BD=bd, BN=bn, T=t, TPC=tpc, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus, HAS_D=D is not None,
        HAS_Z=z is not None, REVERSE=reverse, num_warps=NUM_WARPS["backward"],
    )
    return du, ddelta, dA, dB, dC, dD, dz, dbias, dh0


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse):
        y, hlast = _forward(u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, state)
        ctx.flags = (softplus, reverse)
        return y, hlast

    @staticmethod
    def backward(ctx, dy, dlast):
        u, delta, A, B, C, D, z, delta_bias, state = ctx.saved_tensors
        softplus, reverse = ctx.flags
        du, ddelta, dA, dB, dC, dD, dz, dbias, dh0 = _backward(
            u, delta, A, B, C, D, z, delta_bias, softplus, state, reverse, dy,
            None if dlast is None else dlast.float().contiguous())
        return (
            du, ddelta.to(delta.dtype), dA.to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
            None if D is None else dD.to(D.dtype), dz, None if delta_bias is None else dbias.to(delta_bias.dtype),
            None, None if state is None else dh0, None,
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
    *,
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """Selective scan on CUDA tensors; see :func:`lrgen.ops.selective_scan`. Differentiable in every tensor input.

    ``reverse=True`` runs the recurrence from position ``l-1`` down to 0 (as on the flipped sequence, with y in the
    original order) and returns the state after position 0.
    """
    A = A.contiguous()
    if state is not None:
        state = state.float().contiguous()
    if u.shape[-1] == 0:
        last = u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32) if state is None else state
        return torch.empty_like(u), last
    return _SelectiveScan.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), state, bool(reverse))

