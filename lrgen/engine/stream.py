"""Streamed evaluation of a whole model: ``stream`` (full pass) and ``restream_span`` (local restart)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
from torch import Tensor

from lrgen.engine.chunks import check_positive, chunk_bounds, scan_chunks
from lrgen.engine.record import StateRecord
from lrgen.errors import LrgenError
from lrgen.models.scan import ScanFn, State

OUTPUTS = ("logits", "hidden")
InitialState = Callable[[str, bool, int, torch.device], State]


class ChunkRunner:
    """Scan runner (see :mod:`lrgen.models.scan`) that cuts each direction into chunks and carries the state.

    ``record`` stores states at its boundaries; ``initial(key, reverse, batch, device)`` gives each scan's start
    state (zero when omitted). ``compute_device``/``out_device`` move chunks in and results out (offloading).
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

    def __call__(self, fn: ScanFn, x: Tensor, *, reverse: bool, key: str) -> Tensor:
        every = self.record.every if self.record is not None else None
        device = self.compute_device or x.device
        state = self.initial(key, reverse, x.shape[0], device) if self.initial is not None else None
        return scan_chunks(
            fn,
            x,
            chunk_bounds(x.shape[1], self.chunk_size, every),
            reverse=reverse,
            state=state,
            on_boundary=self.record.hook(key, reverse) if self.record is not None else None,
            compute_device=self.compute_device,
            out_device=self.out_device,
        )


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


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise LrgenError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    return output


def _run(model, input_ids: Tensor, runner: ChunkRunner, output: str, dtype: torch.dtype | None) -> Tensor:
    device = model.device
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    with torch.no_grad(), autocast:
        ids = input_ids.to(device)
        return model(ids, runner=runner) if output == "logits" else model.embed(ids, runner=runner)


def conjoin_outputs(forward: Tensor, rc: Tensor, output: str) -> Tensor:
    """Post-hoc conjoining: the mean of the outputs on a sequence and (flipped back) on its reverse complement.

    For logits the reverse-complement pass's vocabulary columns are complemented, so column ``j`` at position ``p``
    is averaged with column ``complement(j)`` at the mirrored position.
    """
    back = rc.flip(1)
    if output == "logits":
        from lrgen.tokenizer import COMPLEMENT_IDS

        back = back.index_select(-1, torch.as_tensor(COMPLEMENT_IDS, device=back.device, dtype=torch.long))
    return (forward + back) / 2


def _rc_ids(input_ids: Tensor) -> Tensor:
    from lrgen.tokenizer import reverse_complement_ids

    return reverse_complement_ids(input_ids)


def stream(
    model,
    input_ids: Tensor,
    chunk_size: int = 4096,
    output: str = "logits",
    conjoin: bool = False,
    offload: bool = False,
    record_every: int | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor | tuple[Tensor, StateRecord]:
    """Evaluate ``model`` on ``input_ids`` (B, L) chunk by chunk; equal to ``model(ids)`` / ``model.embed(ids)``.

    Each scan direction of each layer runs over chunks of ``chunk_size`` positions carrying its state, so peak
    memory is one layer's activations for the whole sequence plus one chunk's working set. ``output`` is
    ``"logits"`` (B, L, V) or ``"hidden"`` (B, L, H). ``conjoin`` averages with the reverse-complement pass.
    ``dtype`` (e.g. ``torch.bfloat16``) runs under autocast; kernels keep their states in float32. ``offload``
    keeps scan outputs in CPU memory and moves one chunk at a time to the model's device. With ``record_every=K``
    the states at every multiple of K are recorded and ``(output, record)`` is returned (see :func:`restream_span`).
    """
    _check_model(model)
    input_ids = _check_ids(input_ids)
    output = _check_output(output)
    every = check_positive("record_every", record_every) if record_every is not None else None
    check_positive("chunk_size", chunk_size)

    def one_pass(ids: Tensor) -> tuple[Tensor, StateRecord | None]:
        record = None
        if every is not None:
            store = torch.device("cpu") if offload else None
            record = StateRecord(every=every, input_ids=ids.cpu(), output=output, store_device=store)
        runner = ChunkRunner(
            chunk_size,
            record=record,
            compute_device=model.device if offload else None,
            out_device=torch.device("cpu") if offload else None,
        )
        return _run(model, ids, runner, output, dtype), record

    result, record = one_pass(input_ids)
    if conjoin:
        rc_result, rc_record = one_pass(_rc_ids(input_ids))
        result = conjoin_outputs(result, rc_result, output)
        if record is not None:
            record.rc = rc_record
    return result if record is None else (result, record)


def _restream_one(
    model, record: StateRecord, input_ids: Tensor, start: int, end: int, chunk_size: int, dtype: torch.dtype | None
) -> Tensor:
    first, last = record.window(start, end)
    n = input_ids.shape[0]
    if record.batch not in (1, n):
        raise LrgenError(f"restart batch {n} does not match the recorded batch {record.batch}: use 1 or {record.batch}")
    ref = record.input_ids.expand(n, -1)
    ids = torch.cat([ref[:, first:start], input_ids.cpu(), ref[:, end:last]], dim=1)

    def initial(key: str, reverse: bool, batch: int, device: torch.device) -> State:
        return record.start_state(key, reverse, last if reverse else first, batch, device)

    out = _run(model, ids, ChunkRunner(chunk_size, initial=initial), record.output, dtype)
    offset = start - first
    return out[:, offset : offset + input_ids.shape[1]]


def restream_span(
    model,
    record: StateRecord,
    input_ids: Tensor,
    span: tuple[int, int],
    chunk_size: int = 4096,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Outputs of a pass in which the recorded sequence's ``[start, end)`` is replaced by ``input_ids`` (n, m).

    Only the window between the recorded boundaries around the span is recomputed: every layer's forward scan
    restarts from its recorded state at the nearest boundary ≤ start and its reverse scan from the nearest
    boundary ≥ end; the window is the recorded tokens there plus ``input_ids`` (``m`` may differ from
    ``end - start``, for indels). Outside the window the new pass is taken to equal the recorded one — an
    approximation that is exact when the window is the whole sequence and improves as it grows (docs/engine.md).
    Returns the outputs at the ``m`` positions of ``input_ids`` (n, m, V or H), conjoined when the record is.
    ``n`` must equal the recorded batch, or the record has batch 1 and is broadcast.
    """
    _check_model(model)
    input_ids = _check_ids(input_ids)
    start, end = span
    out = _restream_one(model, record, input_ids, start, end, chunk_size, dtype)
    if record.rc is not None:
        length = record.length
        rc_out = _restream_one(model, record.rc, _rc_ids(input_ids), length - end, length - start, chunk_size, dtype)
        out = conjoin_outputs(out, rc_out, record.output)
    return out
