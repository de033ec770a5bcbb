"""Sequence-mixing kernels with explicit state in and out, dispatched to the best available backend.

Shapes follow mamba-ssm's channels-first convention for the Mamba ops and ``(batch, length, dim)`` for the linear
recurrence used by RG-LRU. States are always float32.

- ``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, state=None,
  marks=None)`` -> ``(y, last_state)``; u, delta, z ``(b, d, l)``; A ``(d, n)``; B, C ``(b, n, l)``; D, delta_bias
  ``(d,)``; state / last_state ``(b, d, n)`` float32; y in u's dtype, ``y = (C·h + D·u) * silu(z)`` when z is
  given. With ``marks=(first, every)`` (both ≥ 1) it returns ``(y, last_state, marked)``: ``marked`` float32
  ``(b, m, d, n)`` holds the state after the p-th position for p = first, first + every, … ≤ l (m may be 0); it
  is a fresh tensor, not differentiable.
- ``causal_conv1d(x, weight, bias=None, state=None, activation="silu")`` -> ``(y, new_state)``; x ``(b, d, l)``;
  weight ``(d, w)``; state ``(b, d, w-1)`` = the w-1 inputs before this chunk (zeros when None); new_state = the last
  w-1 inputs seen, so chunked calls equal one call. ``conv_states(x, state, width, marks)`` gives the conv states
  at the marks (the last w-1 inputs before each p) as float32 ``(b, m, d, w-1)``.
- ``reverse=True`` on these three and on ``linear_scan`` runs them right to left, as on the flipped sequence with
  the output flipped back (states and marks in scan order); the Triton kernels do it in place, the ``cpu``
  selective scan flips one block's rows at a time and its conv reads the taps mirrored, the others flip copies.
- ``linear_scan(a, b, state=None)`` -> ``(h, last_state)``: ``h_t = a_t * h_{t-1} + b_t``; a, b ``(batch, l, d)``;
  state ``(batch, d)`` float32; h in b's dtype. It needs no marks: its output is its state sequence.

Outputs have these shapes, not necessarily contiguous ones: the ``cpu`` backend returns the conv's and the selective
scan's y as ``(b, d, l)`` views of channels-last tensors. Its selective scan has no backward: calls that need
gradients run the reference.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

from lrgen.ops.backend import select_backend

Marks = tuple[int, int]


def mark_counts(marks: Marks, length: int) -> range:
    """The counts p = first, first + every, … ≤ ``length`` that ``marks=(first, every)`` names."""
    first, every = marks
    if first < 1 or every < 1:
        raise ValueError(f"marks must be (first, every) with both ≥ 1, got {marks}")
    return range(first, length + 1, every)


def needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd must record an op on these inputs (kernels skip their autograd node otherwise: a node's
    CPU cost adds up over the thousands of chunk calls of a streamed pass)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch's intra-op threads set to one inside (restored after): the ``cpu`` scans run thousands of small ops per
    chunk, and each parallel op waits for every thread to wake and meet; with another process on the cores that
    costs more than the op (3-4× slower scans on the 2-core dev machine, docs/benchmarks.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _flip(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.flip(-1)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, state=None,
                   marks: Marks | None = None, reverse: bool = False):
    backend = select_backend(u.device, ("reference", "cpu", "triton", "mamba"))
    if backend == "cpu" and needs_grad(u, delta, A, B, C, D, z, delta_bias, state):
        backend = "reference"
    if backend == "cpu":
        from lrgen.ops.cpu_scan import selective_scan_cpu

        return selective_scan_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus, state, marks, reverse=reverse)
    if backend == "triton":
        from lrgen.ops.triton_scan import selective_scan_triton

        return selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus, state, marks,
                                     reverse=reverse)
    if backend == "mamba":
        from lrgen.ops.mamba_backend import selective_scan_mamba as impl
    else:
        from lrgen.ops.reference import selective_scan_ref as impl
    if not reverse:
        return impl(u, delta, A, B, C, D, z, delta_bias, delta_softplus, state, marks)
    y, *rest = impl(*map(_flip, (u, delta)), A, *map(_flip, (B, C)), D, _flip(z), delta_bias, delta_softplus, state,
                    marks)
    return (y.flip(-1), *rest)


def causal_conv1d(x, weight, bias=None, state=None, activation="silu", reverse: bool = False):
    backend = select_backend(x.device, ("reference", "cpu", "triton"))
    if backend == "triton":
        from lrgen.ops.triton_conv import causal_conv1d_triton

        return causal_conv1d_triton(x, weight, bias, state, activation, reverse=reverse)
    if backend == "cpu":
        from lrgen.ops.cpu_conv import causal_conv1d_cpu

        return causal_conv1d_cpu(x, weight, bias, state, activation, reverse=reverse)
    from lrgen.ops.reference import causal_conv1d_ref

    if not reverse:
        return causal_conv1d_ref(x, weight, bias, state, activation)
    y, last = causal_conv1d_ref(x.flip(-1), weight, bias, state, activation)
    return y.flip(-1), last


def conv_states(x: Tensor, state: Tensor | None, width: int, marks: Marks, reverse: bool = False) -> Tensor:
    """States of a width-``width`` causal conv over x ``(b, d, l)`` from ``state`` after the p-th position for each
    p of ``marks``: the inputs ``p-w+1 … p-1`` (earlier ones from ``state``), float32 ``(b, m, d, w-1)``; positions
    count in scan order (from the right end when ``reverse``)."""
    batch, dim, length = x.shape
    if state is None:
        state = x.new_zeros(batch, dim, width - 1, dtype=torch.float32)
    counts = mark_counts(marks, length)
    counts = counts.start + counts.step * torch.arange(len(counts), device=x.device)
    pos = counts[:, None] + torch.arange(1 - width, 0, device=x.device)  # (m, w-1): positions p-w+1 … p-1
    index = pos.clamp(min=0)
    from_x = x[:, :, length - 1 - index if reverse else index].float()  # (b, d, m, w-1)
    from_state = state.float()[:, :, (pos + width - 1).clamp(max=width - 2)]  # positions < 0 are in the state
    return torch.where(pos < 0, from_state, from_x).transpose(1, 2).contiguous()


def linear_scan(a, b, state=None, reverse: bool = False):
    backend = select_backend(b.device, ("reference", "cpu", "triton"))
    if backend == "triton":
        from lrgen.ops.triton_lru import linear_scan_triton

        return linear_scan_triton(a, b, state, reverse=reverse)
    if backend == "cpu":
        from lrgen.ops.cpu_lru import linear_scan_cpu

        return linear_scan_cpu(a, b, state, reverse=reverse)
    from lrgen.ops.reference import linear_scan_ref

    if not reverse:
        return linear_scan_ref(a, b, state)
    h, last = linear_scan_ref(a.flip(1), b.flip(1), state)
    return h.flip(1), last
