"""Pure-PyTorch reference kernels (CPU or any device), with state in and out; see :mod:`lrgen.ops` for shapes.

The scans are computed in float32, block by block along length: within a block of ``BLOCK`` positions the
per-step factors are formed at once and the recurrence is one fused multiply-add per position on the
``(batch, d, n)`` state; only one block's ``(BLOCK, batch, d, n)`` tensor ever exists, never the whole
sequence's. Everything stays differentiable, so the reference also trains.
"""

from __future__ import annotations

from bisect import bisect_right

import torch
import torch.nn.functional as F
from torch import Tensor

from lrgen.ops import mark_counts

BLOCK = 64  # fastest of 32..512 on a 2-core CPU (2,000 x 384 x 16: 0.33 s); one block stays in cache


def selective_scan_ref(
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
) -> tuple[Tensor, ...]:
    """Mamba's selective scan: ``h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t``, ``y_t = C_t·h_t (+ D u_t)(· silu(z_t))``.

    u, delta, z ``(b, d, l)``; A ``(d, n)``; B, C ``(b, n, l)``; D, delta_bias ``(d,)``; state ``(b, d, n)``.
    Returns ``(y, last_state)``: y ``(b, d, l)`` in u's dtype, last_state float32 ``(b, d, n)``; with
    ``marks=(first, every)`` also ``marked`` float32 ``(b, m, d, n)``, the states after the p-th position for
    p = first, first + every, … ≤ l (taken from the states the scan forms anyway).
    """
    batch, dim, length = u.shape
    counts = mark_counts(marks, length) if marks is not None else range(0)
    marked: list[Tensor] = []
    A = A.float()
    dt = delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    h = u.new_zeros(batch, dim, A.shape[1], dtype=torch.float32) if state is None else state.float()
    tensors = (u, delta, A, B, C, D, z, delta_bias, state)
    differentiable = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    # length-major, contiguous copies: a block is then a contiguous slice and every op below is one vector op
    dt_t = dt.permute(2, 0, 1).contiguous()  # (l, b, d)
    du_t = (dt * u.float()).permute(2, 0, 1).contiguous()
    B_t = B.float().permute(2, 0, 1).contiguous()  # (l, b, n)
    C_t = C.float().permute(2, 0, 1).contiguous()
    ys = []
    for start in range(0, length, BLOCK):
        sl = slice(start, min(start + BLOCK, length))
        decay = torch.exp(dt_t[sl, :, :, None] * A)  # (T, b, d, n)
        inp = du_t[sl, :, :, None] * B_t[sl, :, None, :]
        if differentiable:
            hs = []
            for t in range(decay.shape[0]):
                h = torch.addcmul(inp[t], decay[t], h)
                hs.append(h)
            states = torch.stack(hs)
        else:  # accumulate in place: inp[t] becomes h_t
            for t in range(decay.shape[0]):
                h = inp[t].addcmul_(decay[t], h)
            states, h = inp, h.clone()
        wanted = [p - 1 - start for p in counts[bisect_right(counts, start) : bisect_right(counts, sl.stop)]]
        if wanted:
            marked.append(states[wanted].detach())  # advanced indexing: a copy, so inp may be reused
        ys.append((states * C_t[sl, :, None, :]).sum(-1))  # (T, b, d)
    y = torch.cat(ys).permute(1, 2, 0) if ys else u.new_zeros(batch, dim, 0, dtype=torch.float32)
    if D is not None:
        y = y + D.float()[:, None] * u.float()
    if z is not None:
        y = y * F.silu(z.float())
    if marks is None:
        return y.to(u.dtype), h
    stacked = torch.cat(marked) if marked else h.new_empty(0, batch, dim, A.shape[1])
    return y.to(u.dtype), h, stacked.transpose(0, 1).contiguous()


def causal_conv1d_ref(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    state: Tensor | None = None,
    activation: str | None = "silu",
) -> tuple[Tensor, Tensor]:
    """Depthwise causal convolution ``y_t = act(bias + Σ_k weight[:, k] x_{t-w+1+k})`` over x ``(b, d, l)``.

    ``state`` ``(b, d, w-1)`` holds the inputs before this chunk (zeros when None). Returns ``(y, new_state)``:
    y in x's dtype, new_state float32 = the last w-1 inputs seen (state included when the chunk is shorter).
    """
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"causal_conv1d: activation must be None or 'silu', got {activation!r}")
    batch, dim, _ = x.shape
    width = weight.shape[-1]
    if state is None:
        state = x.new_zeros(batch, dim, width - 1, dtype=torch.float32)
    xx = torch.cat([state.float(), x.float()], dim=-1)
    y = F.conv1d(xx, weight.float().reshape(dim, 1, width), None if bias is None else bias.float(), groups=dim)
    if activation is not None:
        y = F.silu(y)
    return y.to(x.dtype), xx[..., xx.shape[-1] - (width - 1) :]


def linear_scan_ref(a: Tensor, b: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``h_t = a_t * h_{t-1} + b_t`` over a, b ``(batch, l, d)`` from state ``(batch, d)`` (zeros when None).

    Returns ``(h, last_state)``: h in b's dtype, last_state float32 ``(batch, d)``.
    """
    batch, length, dim = b.shape
    h = b.new_zeros(batch, dim, dtype=torch.float32) if state is None else state.float()
    out = []
    for start in range(0, length, BLOCK):
        a_blk = a[:, start : start + BLOCK].float().transpose(0, 1)  # (T, batch, d)
        b_blk = b[:, start : start + BLOCK].float().transpose(0, 1)
        hs = []
        for t in range(a_blk.shape[0]):
            h = torch.addcmul(b_blk[t], a_blk[t], h)
            hs.append(h)
        out.append(torch.stack(hs, dim=1))
    hseq = torch.cat(out, dim=1) if out else b.new_zeros(batch, 0, dim, dtype=torch.float32)
    return hseq.to(b.dtype), h
