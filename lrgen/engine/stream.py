"""Streamed evaluation of a whole model: ``stream`` (full pass) and ``restream_span`` (local restart)."""

from __future__ import annotations

from collections import Counter
from contextlib import nullcontext
from typing import Callable

import torch
from torch import Tensor

from lrgen.engine.chunks import check_positive, chunk_bounds, default_chunk_size, scan_chunks
from lrgen.engine.offload import HostActivations
from lrgen.engine.record import StateRecord
from lrgen.errors import LrgenError
from lrgen.models.conjoin import conjoin as conjoin_pass
from lrgen.models.scan import ScanFn, ScanRunner, State, run_whole

OUTPUTS = ("logits", "hidden")
_CPU = torch.device("cpu")
InitialState = Callable[[str, bool, int, torch.device], State]


class ChunkRunner:
    """Scan runner (see :mod:`lrgen.models.scan`) that cuts each direction into chunks and carries the state.

    ``record`` stores states at its boundaries (asked of the chunks as marks, so recording does not cut chunks);
    ``initial(key, reverse, batch, device)`` gives each scan's start state (zero when omitted).
    ``compute_device``/``out_device`` move chunks in and results out (offloading).
    """

    def __init__(
        self,
        chunk_size: int,
        *,
        record: StateRecord | None = None,
        initial: InitialState | None = None,
        compute_device: torch.device | None = None,
        out_device: torch.device | None = None,
    ) -> None:
        self.chunk_size = check_positive("chunk_size", chunk_size)
        self.record = record
        self.initial = initial
        self.compute_device = compute_device
        self.out_device = out_device

    def __call__(self, fn: ScanFn, x: Tensor, *, reverse: bool, key: str, out: Tensor | None = None) -> Tensor:
        record = self.record
        device = self.compute_device or x.device
        return scan_chunks(
            fn,
            x,
            chunk_bounds(x.shape[1], self.chunk_size),
            reverse=reverse,
            state=self.initial(key, reverse, x.shape[0], device) if self.initial is not None else None,
            grid=record.grid if record is not None else None,
            on_marks=record.hook(key, reverse) if record is not None else None,
            compute_device=self.compute_device,
            out_device=self.out_device,
            out=out,
        )


class PassRouter:
    """Scan runner for several passes of one model call (a conjoined pass: the sequence, then its reverse
    complement): the n-th use of a scan key goes to ``runners[n]``."""

    def __init__(self, runners: list[ScanRunner]) -> None:
        self.runners = runners
        self.uses: Counter[str] = Counter()

    def __call__(self, fn: ScanFn, x: Tensor, *, reverse: bool, key: str, out: Tensor | None = None) -> Tensor:
        n = self.uses[key]
        if n >= len(self.runners):
            raise LrgenError(f"scan key {key!r} used {n + 1} times in {len(self.runners)} pass(es): the model breaks "
                             "the scan-runner contract (one key per scan and pass)")
        self.uses[key] += 1
        return self.runners[n](fn, x, reverse=reverse, key=key, out=out)


def _check_model(model) -> None:
    if not getattr(model, "streamable", False):
        name = getattr(model, "family", type(model).__name__)
        raise LrgenError(
            f"model family {name!r} cannot stream (attention has no chunk state): evaluate it whole with model(ids)"
        )


def _check_ids(input_ids: Tensor) -> Tensor:
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.dtype not in (torch.long, torch.int):
        shape = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else type(input_ids).__name__
        raise LrgenError(f"input_ids must be an integer tensor of shape (batch, length), got {shape}")
    if input_ids.shape[1] == 0:
        raise LrgenError("input_ids has length 0: nothing to evaluate")
    return input_ids.long()


def run_pass(
    model, input_ids: Tensor, runner: ScanRunner, output: str, conjoin: bool, dtype: torch.dtype | None,
    offload: bool = False,
) -> Tensor:
    """One model call (two passes when conjoined) with ``runner``, under no_grad, autocast and offloading."""
    if output not in OUTPUTS:
        raise LrgenError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    device = model.device
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    host = HostActivations() if offload and device.type != "cpu" else nullcontext()
    with torch.no_grad(), autocast, host:
        ids = input_ids.to(_CPU if offload else device)
        if conjoin:
            return conjoin_pass(model, ids, runner=runner, output=output)
        return model(ids, runner=runner) if output == "logits" else model.embed(ids, runner=runner)


def stream(
    model,
    input_ids: Tensor,
    chunk_size: int | None = None,
    output: str = "logits",
    conjoin: bool = False,
    offload: bool = False,
    record_every: int | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor | tuple[Tensor, StateRecord]:
    """Evaluate ``model`` on ``input_ids`` (B, L) chunk by chunk; equal to ``model(ids)`` / ``model.embed(ids)``.

    Each scan direction of each layer runs over chunks of ``chunk_size`` positions (default
    :func:`~lrgen.engine.chunks.default_chunk_size` of the model's device) carrying its state, so peak
    memory is one layer's activations for the whole sequence plus one chunk's working set. ``output`` is
    ``"logits"`` (B, L, V) or ``"hidden"`` (B, L, H). ``conjoin`` averages with the reverse-complement pass
    (:func:`lrgen.models.conjoin.conjoin`). ``dtype`` (e.g. ``torch.bfloat16``) runs under autocast; kernels keep
    their states in float32. ``offload`` keeps every whole-sequence activation in CPU memory (position-wise layers
    compute there) and moves one scan chunk at a time to the model's device; the result is then on the CPU. With
    ``record_every=K`` the states at every K-th position are recorded and ``(output, record)`` is returned (see
    :func:`restream_span`).
    """
    _check_model(model)
    input_ids = _check_ids(input_ids)
    chunk_size = check_positive("chunk_size", default_chunk_size(model.device) if chunk_size is None else chunk_size)
    records: list[StateRecord] = []
    if record_every is not None:
        every = check_positive("record_every", record_every)
        ids_cpu, length = input_ids.cpu(), input_ids.shape[1]
        store = _CPU if offload else None
        records.append(StateRecord(every, ids_cpu, output, store_device=store))
        if conjoin:
            rc_ids = model.tokenizer.reverse_complement_ids(ids_cpu)  # the model's own complement map
            records.append(StateRecord(every, rc_ids, output, store_device=store, phase=length % every))
    runners = [
        ChunkRunner(
            chunk_size,
            record=record,
            compute_device=model.device if offload else None,
            out_device=_CPU if offload else None,
        )
        for record in (records or [None] * (1 + conjoin))
    ]
    result = run_pass(model, input_ids, PassRouter(runners), output, conjoin, dtype, offload)
    if not records:
        return result
    if conjoin:
        records[0].rc = records[1]
    return result, records[0]


def forward(
    model,
    input_ids: Tensor,
    output: str = "logits",
    *,
    chunk_size: int | None = None,
    conjoin: bool = False,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """One inference pass of any model under the engine's chunk policy: a streamable model streams (``chunk_size``
    positions per chunk, default :func:`~lrgen.engine.chunks.default_chunk_size` of its device), any other model
    runs whole. Equal to ``model(ids)`` / ``model.embed(ids)`` (conjoined when asked) to float tolerance."""
    if getattr(model, "streamable", False):
        return stream(model, input_ids, chunk_size=chunk_size, output=output, conjoin=conjoin, dtype=dtype)
    return run_pass(model, _check_ids(input_ids), run_whole, output, conjoin, dtype)


def restream_span(
    model,
    record: StateRecord,
    input_ids: Tensor,
    span: tuple[int, int],
    chunk_size: int | None = None,
    output: str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Outputs of a pass in which the recorded sequence's ``[start, end)`` is replaced by ``input_ids`` (n, m).

    Only the window between the recorded boundaries around the span is recomputed: every layer's forward scan
    restarts from its recorded state at the nearest boundary ≤ start and its reverse scan from the nearest
    boundary ≥ end; the window is the recorded tokens there plus ``input_ids`` (``m`` may differ from
    ``end - start``, for indels). Outside the window the new pass is taken to equal the recorded one — an
    approximation that is exact when the window is the whole sequence and improves as it grows (docs/engine.md).
    Returns the outputs (``output``, default the recorded pass's) at the ``m`` positions of ``input_ids``
    (n, m, V or H), conjoined when the record is.
    ``n`` must equal the recorded batch, or the record has batch 1 and is broadcast.
    """
    _check_model(model)
    input_ids = _check_ids(input_ids)
    chunk_size = check_positive("chunk_size", default_chunk_size(model.device) if chunk_size is None else chunk_size)
    start, end = span
    first, last = record.window(start, end)
    n, length = input_ids.shape[0], record.length
    if record.batch not in (1, n):
        raise LrgenError(f"restart batch {n} does not match the recorded batch {record.batch}: use 1 or {record.batch}")
    ref = record.input_ids.expand(n, -1)
    ids = torch.cat([ref[:, first:start], input_ids.cpu(), ref[:, end:last]], dim=1)

    def restart(strand: StateRecord, left: int, right: int) -> ChunkRunner:
        def initial(key: str, reverse: bool, batch: int, device: torch.device) -> State:
            return strand.start_state(key, reverse, right if reverse else left, batch, device)

        return ChunkRunner(chunk_size, initial=initial)

    runners = [restart(record, first, last)]
    if record.rc is not None:  # the reverse complement of the window spans [L - last, L - first) on that strand
        runners.append(restart(record.rc, length - last, length - first))
    out = run_pass(model, ids, PassRouter(runners), output or record.output, record.rc is not None, dtype)
    offset = start - first
    return out[:, offset : offset + input_ids.shape[1]]
