"""mamba-ssm's CUDA selective scan behind lrgen's interface, with the initial state it lacks added outside the kernel.

The scan is linear in its state, so from a state ``h0``: ``y_t = y_t|h0=0 + C_t · (Π_{s≤t} exp(Δ_s A)) h0`` before
the z-gate, and ``h_T = h_T|h0=0 + (Π exp(Δ A)) h0``; the product is ``exp(A · cumsum Δ)``, formed block by block
along length so only one block's ``(b, d, n, block)`` tensor exists. Differentiable (mamba-ssm's kernel has its own
backward; the correction is PyTorch). mamba-ssm has no marks either: a call with ``marks`` is split at them, the
state carried from piece to piece the same way.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from lrgen.ops import mark_counts

CORRECTION_ELEMENTS = 1 << 26  # float32 elements of one block of the state-correction product

Kernel = Callable[..., tuple[Tensor, Tensor]]


def _state_correction(delta, A, C, delta_bias, delta_softplus, state):
    """``(C_t · exp(A cumsum Δ)_t h0)`` as (b, d, l) float32, and ``exp(A ΣΔ) h0`` as (b, d, n)."""
    batch, dim, length = delta.shape
    dt = delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    cum = torch.cumsum(dt, dim=-1)
    A = A.float()
    block = max(1, CORRECTION_ELEMENTS // max(1, batch * dim * A.shape[1]))
    parts = []
    for start in range(0, length, block):
        sl = slice(start, min(start + block, length))
        decay = torch.exp(A[None, :, :, None] * cum[:, :, None, sl])  # (b, d, n, blk)
        parts.append(torch.einsum("bdnt,bdn,bnt->bdt", decay, state, C[:, :, sl].float()))
    corr = torch.cat(parts, dim=-1)
    carried = torch.exp(A[None] * cum[:, :, -1:]) * state
    return corr, carried


def selective_scan_with_state(
    kernel: Kernel, u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, state=None, marks=None
) -> tuple[Tensor, ...]:
    """Run a zero-state selective-scan ``kernel`` (mamba-ssm's ``selective_scan_fn`` signature, called with
    ``return_last_state=True``) from ``state``, split at ``marks``; see :func:`lrgen.ops.selective_scan`."""
    if marks is None:
        return _from_state(kernel, u, delta, A, B, C, D, z, delta_bias, delta_softplus, state)
    length = u.shape[-1]
    cuts = list(mark_counts(marks, length))
    bounds = [0, *cuts]
    if bounds[-1] < length:
        bounds.append(length)
    ys, marked = [], []
    for i, (start, end) in enumerate(zip(bounds, bounds[1:])):  # piece i < len(cuts) ends at cuts[i]
        sl = slice(start, end)
        y, state = _from_state(kernel, u[..., sl], delta[..., sl], A, B[..., sl], C[..., sl], D,
                               None if z is None else z[..., sl], delta_bias, delta_softplus, state)
        ys.append(y)
        if i < len(cuts):
            marked.append(state.detach())
    y = torch.cat(ys, dim=-1) if ys else torch.empty_like(u)
    if state is None:
        state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32)
    stacked = torch.stack(marked, dim=1) if marked else state.new_empty(u.shape[0], 0, *state.shape[1:])
    return y, state, stacked


def _from_state(kernel: Kernel, u, delta, A, B, C, D, z, delta_bias, delta_softplus, state) -> tuple[Tensor, Tensor]:
    """One kernel call from ``state``: the zero-state result plus the correction of the module docstring."""
    if u.shape[-1] == 0:
        last = u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32) if state is None else state
        return torch.empty_like(u), last.float()
    if state is None:
        y, last = kernel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state=True)
        return y, last.float()
    y, last = kernel(u, delta, A, B, C, D, None, delta_bias, delta_softplus, return_last_state=True)
    corr, carried = _state_correction(delta, A, C, delta_bias, delta_softplus, state.float())
    y = y.float() + corr
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(u.dtype), last.float() + carried


def selective_scan_mamba(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, state=None,
                         marks=None):
    """mamba-ssm's CUDA selective scan with an initial state; see :func:`lrgen.ops.selective_scan`."""
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    return selective_scan_with_state(
        selective_scan_fn, u.contiguous(), delta.contiguous(), A, B.contiguous(), C.contiguous(), D,
        None if z is None else z.contiguous(), delta_bias, delta_softplus, state, marks,
    )
