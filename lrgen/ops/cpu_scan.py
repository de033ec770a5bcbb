"""CPU fast path of the selective scan (backend ``cpu``): the reference's recurrence, laid out for a CPU.

The same float32 recurrence as :func:`lrgen.ops.reference.selective_scan_ref`, position by position within blocks,
2.3–3.8× faster on one core of the 2-core dev machine (docs/benchmarks.md, "CPU fast path") by three things:

- the decay is ``exp2(Δ · A log2 e)``: ATen's ``exp2`` costs 0.3 ns a value where ``exp`` costs 1 ns, and 13 ns
  where the result underflows (long decays: large Δ, strongly negative A), which ``exp2`` takes in its stride;
- states are ``(n, d)`` with channels contiguous (the reference's ``(d, n)`` puts 16 states innermost), so the
  block-wide products broadcast along rows and the contraction with C is one batched matrix product per block;
- buffers are allocated once per call and the steps run in place on views unbound once per block (an indexing op
  per step costs as much as the step's arithmetic).

It runs on one thread (:func:`lrgen.ops.one_thread`). No autograd: :func:`lrgen.ops.selective_scan` sends calls
that need gradients to the reference.
"""

from __future__ import annotations

from bisect import bisect_right

import torch
import torch.nn.functional as F
from torch import Tensor

from lrgen.ops import mark_counts, one_thread

LOG2E = 1.4426950408889634
BLOCK_ELEMENTS = 1 << 19  # state values per block buffer (2 MiB): one block's two buffers stay in the caches
MAX_BLOCK = 64  # positions per block at most


def block_length(batch: int, d_state: int, dim: int) -> int:
    """Positions per block for ``(batch, d_state, dim)`` states."""
    return max(1, min(MAX_BLOCK, BLOCK_ELEMENTS // (batch * d_state * dim)))


def channels_last(t: Tensor) -> Tensor:
    """``(b, c, l)`` as float32 ``(b, l, c)`` with unit channel stride (a view when it already is)."""
    t = t.transpose(1, 2).float()
    return t if t.stride(2) == 1 else t.contiguous()


def scan_rows(t: Tensor, start: int, stop: int, reverse: bool) -> Tensor:
    """Scan positions ``start:stop`` of ``(b, l, c)`` as ``(stop - start, b, c)``, in scan order: a view, or for
    ``reverse`` a flipped copy of the block's rows (small, where flipping whole inputs would copy them all)."""
    if reverse:
        length = t.shape[1]
        return t[:, length - stop : length - start].flip(1).transpose(0, 1)
    return t[:, start:stop].transpose(0, 1)


@torch.no_grad()
@one_thread()
def selective_scan_cpu(
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
    reverse: bool = False,
) -> tuple[Tensor, ...]:
    """:func:`lrgen.ops.reference.selective_scan_ref` with ``reverse``; y is returned as a ``(b, d, l)`` view of a
    channels-last tensor (what the model's projections read)."""
    batch, dim, length = u.shape
    d_state = A.shape[1]
    counts = mark_counts(marks, length) if marks is not None else range(0)
    ut, dt, Bt, Ct = channels_last(u), channels_last(delta), channels_last(B), channels_last(C)  # sequence order
    if delta_bias is not None:
        dt = dt + delta_bias.float()
    if delta_softplus:
        dt = F.softplus(dt)
    du = dt * ut
    A2 = (A.float() * LOG2E).t().contiguous()  # (n, d)
    h = u.new_zeros(batch, d_state, dim, dtype=torch.float32) if state is None else state.float().transpose(1, 2)
    y = dt.new_empty(batch, length, dim)
    block = block_length(batch, d_state, dim)
    a_buf = dt.new_empty(min(block, length), batch, d_state, dim)
    x_buf = torch.empty_like(a_buf)
    y_buf = dt.new_empty(min(block, length) * batch, 1, dim)
    marked: list[Tensor] = []
    for start in range(0, length, block):  # scan order
        stop = min(start + block, length)
        size = stop - start
        a = torch.mul(scan_rows(dt, start, stop, reverse)[:, :, None], A2, out=a_buf[:size]).exp2_()
        x = torch.mul(scan_rows(du, start, stop, reverse)[:, :, None], scan_rows(Bt, start, stop, reverse)[..., None],
                      out=x_buf[:size])
        steps, decays = x.unbind(0), a.unbind(0)  # x[t] becomes h_t
        steps[0].addcmul_(decays[0], h)
        for previous, step, decay in zip(steps, steps[1:], decays[1:]):
            step.addcmul_(decay, previous)
        wanted = [p - 1 - start for p in counts[bisect_right(counts, start) : bisect_right(counts, stop)]]
        if wanted:
            marked.append(x[wanted])  # advanced indexing: a copy
        h = steps[-1].clone()
        contracted = torch.bmm(scan_rows(Ct, start, stop, reverse).reshape(size * batch, 1, d_state),
                               x.view(size * batch, d_state, dim), out=y_buf[: size * batch])  # C_t · h_t
        contracted = contracted.view(size, batch, dim).transpose(0, 1)
        if reverse:
            y[:, length - stop : length - start] = contracted.flip(1)
        else:
            y[:, start:stop] = contracted
    if D is not None:
        y.addcmul_(ut, D.float())
    if z is not None:
        y.mul_(F.silu(channels_last(z)))
    y = y.transpose(1, 2).to(u.dtype)
    last = h.transpose(1, 2).contiguous()
    if marks is None:
        return y, last
    stacked = torch.cat(marked) if marked else h.new_empty(0, batch, d_state, dim)
    return y, last, stacked.permute(1, 0, 3, 2).contiguous()
