"""The chunk-state contract between models and the streaming engine.

Every sequence mixer of a streamable model runs each of its directions through a *scan runner*::

    y = runner(fn, x, reverse=False, key="layers.3.fwd")

``x`` is the direction's whole input ``(B, L, D_in)`` in sequence order; ``y`` is ``(B, L, D_out)`` in sequence
order. With ``out=`` (a ``(B, L, D_out)`` tensor, used outside autograd) the output is added into ``out`` chunk by
chunk and ``out`` is returned, so two directions can sum into one buffer without a whole-sequence temporary.
``fn(x_chunk, state, marks=None)`` processes one chunk ``(B, T, D_in)`` *in scan order* starting from ``state``
(``None`` is the zero state) and returns ``(y_chunk, state)``: the chunk's output and the state after its last
position. With ``marks=(first, every)`` (ints, ``first ≥ 1``, ``every ≥ 1``) it returns
``(y_chunk, state, marked)``, where ``marked`` is a list with one state (same structure as ``state``) for each
count p = first, first + every, … ≤ T, in that order: the state after the chunk's first p positions in scan order
(the list is empty when first > T). ``y_chunk`` and ``state`` equal those of the call without marks (to float
tolerance). For ``reverse=True`` the runner walks the sequence right to left and hands ``fn`` each chunk flipped
along length, so ``fn`` is always a left-to-right scan. ``key`` names the scan uniquely within one forward pass (the
engine uses it to record and restart states).

A scan fn marked with :func:`sequence_order` takes its chunks as they lie instead: the runner hands it every chunk
unflipped and calls ``fn(x_chunk, state, marks, reverse=reverse, out=out_chunk)``; for ``reverse=True`` fn walks the
chunk right to left itself (marks still count positions in scan order) and returns ``y_chunk`` in sequence order.
``out_chunk`` is the chunk's rows of the runner's ``out`` (``None`` when there is none or it lies on another device);
fn adds its output into it and returns it. Kernels that scan in place spare the flipped copies and the separate add.

Models call their runner for every mixer direction and do everything position-wise themselves; the default runner,
:func:`run_whole`, is the one-chunk case without marks. The streaming engine (:mod:`lrgen.engine`) supplies a
runner that cuts the sequence into chunks and carries the state, so a streamed pass runs exactly the same
arithmetic as ``model(x)``; it asks for marks to record states inside chunks.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Protocol

from torch import Tensor

State = Any
Marks = tuple[int, int]
ScanFn = Callable[..., "tuple[Tensor, State] | tuple[Tensor, State, list[State]]"]


class ScanRunner(Protocol):
    def __call__(self, fn: ScanFn, x: Tensor, *, reverse: bool, key: str, out: Tensor | None = None) -> Tensor: ...


def sequence_order(fn: ScanFn) -> ScanFn:
    """``fn`` marked as taking chunks in sequence order, with ``reverse=`` and ``out=`` (see the module docstring)."""
    marked = partial(fn)
    marked.sequence_order = True
    return marked


def takes_sequence_order(fn: ScanFn) -> bool:
    return getattr(fn, "sequence_order", False)


def run_whole(fn: ScanFn, x: Tensor, *, reverse: bool, key: str, out: Tensor | None = None) -> Tensor:
    """Run one scan direction over the whole sequence from the zero state."""
    if takes_sequence_order(fn):
        return fn(x, None, reverse=reverse, out=out)[0]
    y = fn(x.flip(1), None)[0].flip(1) if reverse else fn(x, None)[0]
    return y if out is None else out.add_(y)
