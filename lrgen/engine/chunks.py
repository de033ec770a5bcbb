"""Chunk boundaries and the chunked scan loop: the only code that walks a sequence chunk by chunk."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from lrgen.errors import LrgenError
from lrgen.models.scan import ScanFn, State

BoundaryHook = Callable[[int, State], None]


def check_positive(name: str, value: int) -> int:
    """``value`` as an int ≥ 1, or an LrgenError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LrgenError(f"{name} must be a whole number ≥ 1, got {value!r}")
    return value


def chunk_bounds(length: int, chunk_size: int, every: int | None = None, phase: int = 0) -> list[int]:
    """Sorted chunk boundaries ``[0, ..., length]``: multiples of ``chunk_size`` and, when given, the positions
    ``p`` with ``p % every == phase % every``.

    Boundaries sit at absolute positions, so both scan directions share them; the last (forward) or first
    (reverse) chunk is the short one when ``chunk_size`` does not divide ``length``.
    """
    cuts = set(range(0, length, chunk_size)) | {length}
    if every is not None:
        cuts |= set(range(phase % every, length, every))
    return sorted(cuts)


def map_state(state: State, fn: Callable[[Tensor], Tensor]) -> State:
    """Apply ``fn`` to every tensor of a (possibly nested tuple/list/dict) scan state."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(s, fn) for s in state)
    if isinstance(state, dict):
        return {k: map_state(v, fn) for k, v in state.items()}
    raise TypeError(f"unsupported scan state element {type(state).__name__}")


def scan_chunks(
    fn: ScanFn,
    x: Tensor,
    bounds: list[int],
    *,
    reverse: bool,
    state: State = None,
    on_boundary: BoundaryHook | None = None,
    compute_device: torch.device | None = None,
    out_device: torch.device | None = None,
) -> Tensor:
    """Run ``fn`` over ``x`` (B, L, D) chunk by chunk, carrying ``state``; return ``y`` (B, L, D_out) in sequence order.

    Forward walks ``bounds`` left to right; reverse walks them right to left and hands ``fn`` each chunk flipped.
    After each chunk ``on_boundary(position, state)`` is told the state at the boundary just reached (the chunk's
    right edge going forward, its left edge in reverse). Chunks move to ``compute_device`` and results to
    ``out_device`` (both default to ``x``'s device); ``y`` is allocated once, on the first chunk.
    """
    compute_device = compute_device or x.device
    out_device = out_device or x.device
    spans = list(zip(bounds[:-1], bounds[1:]))
    if reverse:
        spans.reverse()
    y: Tensor | None = None
    for start, end in spans:
        xc = x[:, start:end].to(compute_device, non_blocking=True)
        if reverse:
            xc = xc.flip(1)
        yc, state = fn(xc, state)
        if reverse:
            yc = yc.flip(1)
        if y is None:
            y = torch.empty((x.shape[0], x.shape[1], *yc.shape[2:]), dtype=yc.dtype, device=out_device)
        y[:, start:end].copy_(yc, non_blocking=True)
        if on_boundary is not None:
            on_boundary(start if reverse else end, state)
    if y is None:
        raise LrgenError("cannot scan an empty sequence (length 0)")
    return y
