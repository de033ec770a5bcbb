"""Chunk boundaries and the chunked scan loop: the only code that walks a sequence chunk by chunk."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from lrgen.errors import LrgenError
from lrgen.models.scan import Marks, ScanFn, State, takes_sequence_order

MarkHook = Callable[[list[int], list[State]], None]


def default_chunk_size(device: torch.device | str) -> int:
    """Positions per chunk when none is given: 65,536 on a GPU, where every chunk costs a fixed kernel-launch
    overhead per scan (docs/benchmarks.md), and 4,096 on a CPU, where long chunks allocate fresh memory on every
    call (docs/score-vcf.md)."""
    return 65536 if torch.device(device).type == "cuda" else 4096


def check_positive(name: str, value: int) -> int:
    """``value`` as an int ≥ 1, or an LrgenError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LrgenError(f"{name} must be a whole number ≥ 1, got {value!r}")
    return value


def chunk_bounds(length: int, chunk_size: int) -> list[int]:
    """Sorted chunk boundaries ``[0, c, 2c, ..., length]`` (``c = chunk_size``).

    Boundaries sit at absolute positions, so both scan directions share them; the last (forward) or first
    (reverse) chunk is the short one when ``chunk_size`` does not divide ``length``.
    """
    return sorted(set(range(0, length, chunk_size)) | {length})


def chunk_marks(start: int, end: int, every: int, phase: int, reverse: bool) -> tuple[Marks | None, list[int]]:
    """The ``marks`` argument (:mod:`lrgen.models.scan`) that asks chunk ``[start, end)`` for the states at the
    positions ``p ≡ phase (mod every)`` it reaches, and those positions in the order ``fn`` returns them.

    Going forward the chunk reaches the positions in ``(start, end]`` (the state at p is after ``[0, p)``, i.e.
    after ``p - start`` of the chunk's positions); in reverse it is walked from ``end`` down to ``start`` and reaches
    ``[start, end)`` (the state at p is after ``[p, L)``, i.e. after ``end - p`` positions). ``(None, [])`` when
    the chunk reaches none.
    """
    length = end - start
    if reverse:
        first = (end - phase) % every or every  # count of the largest p < end with p ≡ phase
    else:
        first = (phase - start) % every or every  # count of the smallest p > start with p ≡ phase
    if first > length:
        return None, []
    counts = range(first, length + 1, every)
    return (first, every), [end - c if reverse else start + c for c in counts]


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


def merge_states(states: list[State], fn: Callable[[list[Tensor]], Tensor]) -> State:
    """One state of the structure of ``states[0]`` whose every tensor is ``fn`` of the matching tensors of all."""
    first = states[0]
    if isinstance(first, Tensor):
        return fn(states)
    if isinstance(first, (tuple, list)):
        return type(first)(merge_states([s[i] for s in states], fn) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: merge_states([s[k] for s in states], fn) for k in first}
    raise TypeError(f"unsupported scan state element {type(first).__name__}")


def scan_chunks(
    fn: ScanFn,
    x: Tensor,
    bounds: list[int],
    *,
    reverse: bool,
    state: State = None,
    grid: tuple[int, int] | None = None,
    on_marks: MarkHook | None = None,
    compute_device: torch.device | None = None,
    out_device: torch.device | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """Run ``fn`` over ``x`` (B, L, D) chunk by chunk, carrying ``state``; return ``y`` (B, L, D_out) in sequence order
    (added into ``out`` when given, which is returned).

    Forward walks ``bounds`` left to right; reverse walks them right to left and hands ``fn`` each chunk flipped
    (unflipped, with ``reverse=`` and ``out=``, when ``fn`` takes sequence order: :mod:`lrgen.models.scan`).
    With ``grid=(every, phase)`` each chunk is asked (``marks``) for the states at the positions ``p ≡ phase
    (mod every)`` it reaches (:func:`chunk_marks`), and ``on_marks(positions, states)`` is told them after the
    chunk. Chunks move to ``compute_device`` and results to ``out_device`` (both default to ``x``'s device); ``y`` is
    allocated once, on the first chunk.
    """
    compute_device = compute_device or x.device
    out_device = out_device or x.device
    spans = list(zip(bounds[:-1], bounds[1:]))
    if reverse:
        spans.reverse()
    in_order = takes_sequence_order(fn)
    flip = reverse and not in_order
    accumulate = in_order and out is not None and out.device == compute_device
    y = out
    for start, end in spans:
        xc = x[:, start:end].to(compute_device, non_blocking=True)
        if flip:
            xc = xc.flip(1)
        marks, positions = chunk_marks(start, end, *grid, reverse) if grid is not None else (None, [])
        kwargs = dict(reverse=reverse, out=out[:, start:end] if accumulate else None) if in_order else {}
        if marks is None:
            yc, state = fn(xc, state, **kwargs)
        else:
            yc, state, marked = fn(xc, state, marks, **kwargs)
            if len(marked) != len(positions):
                raise LrgenError(f"a scan returned {len(marked)} states for {len(positions)} marks: the model "
                                 "breaks the scan-runner contract")
            if on_marks is not None:
                on_marks(positions, marked)
        if flip:
            yc = yc.flip(1)
        if accumulate:
            continue
        if out is not None:
            out[:, start:end].add_(yc.to(out.device))
            continue
        if y is None:
            y = torch.empty((x.shape[0], x.shape[1], *yc.shape[2:]), dtype=yc.dtype, device=out_device)
        y[:, start:end].copy_(yc, non_blocking=True)
    if y is None:
        raise LrgenError("cannot scan an empty sequence (length 0)")
    return y
