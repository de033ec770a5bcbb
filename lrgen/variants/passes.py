"""The model passes of one window: the reference pass (once) and the passes with an allele or a mask put in.

A *replacement* puts ``ids`` in place of the reference's ``[start, end)`` (lengths may differ: indels). In exact
mode every replacement is a full pass over the whole edited window. In local mode the reference pass records each
layer's scan states every ``record_every`` positions, and a replacement recomputes only ``recompute_span`` bp
around itself (widened to the recorded boundaries), restarting every scan from the reference pass's states
(:mod:`lrgen.engine`); outside that span the edited pass is taken to equal the reference pass.
Replacements are batched ``batch_size`` at a time; for models that are not RC-equivariant both strands run and
are conjoined (the engine's post-hoc conjoining).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from lrgen.engine import ChunkRunner, PassRouter, StateRecord, stream
from lrgen.models.conjoin import conjoin


@dataclass(frozen=True)
class Replacement:
    """``ids`` (1-D) in place of the reference's ``[start, end)``; outputs are wanted ``margin`` bp around it."""

    start: int
    end: int
    ids: Tensor
    margin: int = 0


@dataclass
class Region:
    """Outputs of one replacement: ``values`` (n, V or H) over the edited sequence, the replacement at ``offset``."""

    values: Tensor
    offset: int


def _restart(record: StateRecord, firsts: list[int], lasts: list[int]):
    """A :class:`ChunkRunner` ``initial`` callback: row ``i``'s forward scans restart at ``firsts[i]``, its reverse
    scans at ``lasts[i]``, from the recorded states (zero at the sequence ends)."""

    def initial(key: str, reverse: bool, batch: int, device: torch.device):
        return record.row_states(key, reverse, lasts if reverse else firsts, device)

    return initial


class WindowPasses:
    """Reference and edited passes over one window ``ref_ids`` (L,) of token ids.

    ``recompute_span=None`` is exact mode. ``conjoin`` averages every pass with its reverse-complement pass.
    ``edits=False`` promises that only :meth:`reference` is used (nothing is recorded).
    """

    def __init__(self, model, ref_ids: Tensor, *, conjoin: bool, chunk_size: int, batch_size: int,
                 recompute_span: int | None, dtype: torch.dtype | None = None, edits: bool = True) -> None:
        self.model = model
        self.ref_ids = ref_ids.long().cpu()
        self.conjoin = conjoin
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.half_span = None if recompute_span is None else recompute_span // 2
        # states are recorded (by the first reference pass) only when edited passes will restart from them
        self.record_every = None if recompute_span is None or not edits else max(1, recompute_span // 4)
        self.dtype = dtype
        self._record: StateRecord | None = None
        self._logits: Tensor | None = None

    @property
    def length(self) -> int:
        return self.ref_ids.shape[0]

    def reference(self, output: str) -> Tensor:
        """The reference pass's outputs (L, V or H); logits are kept, and the first pass records states (local)."""
        if output == "logits" and self._logits is not None:
            return self._logits
        record_every = self.record_every if self._record is None else None
        result = stream(self.model, self.ref_ids[None], chunk_size=self.chunk_size, output=output,
                        conjoin=self.conjoin, record_every=record_every, dtype=self.dtype)
        if record_every is not None:
            result, self._record = result
        if output == "logits":
            self._logits = result[0]
        return result[0]

    def edited(self, replacements: list[Replacement], output: str, reduce: Callable[[Region], Any],
               advance: Callable[[int], None] | None = None) -> list[Any]:
        """``reduce`` of each replacement's outputs over its region (the replacement ± its margin), in order.

        Replacements run in blocks of a few batches, so only one block's regions are held at a time;
        ``advance(n)`` is told after each block.
        """
        if self.half_span is not None and self._record is None:
            self.reference("logits")
        run = self._exact if self.half_span is None else self._local
        block = self.batch_size * 4
        results: list[Any] = []
        for i in range(0, len(replacements), block):
            part = replacements[i : i + block]
            results.extend(reduce(region) for region in run(part, output))
            if advance is not None:
                advance(len(part))
        return results

    def _margins(self, r: Replacement) -> tuple[int, int]:
        return min(r.margin, r.start), min(r.margin, self.length - r.end)

    def _exact(self, replacements: list[Replacement], output: str) -> list[Region]:
        regions: list[Region | None] = [None] * len(replacements)
        rows = []
        for i, r in enumerate(replacements):
            ids = torch.cat([self.ref_ids[: r.start], r.ids.long().cpu(), self.ref_ids[r.end :]])
            rows.append((i, ids))
        for batch in _batches(rows, self.batch_size, lambda row: row[1].shape[0]):
            ids = torch.stack([row[1] for row in batch])
            out = stream(self.model, ids, chunk_size=self.chunk_size, output=output, conjoin=self.conjoin,
                         dtype=self.dtype)
            for k, (i, _) in enumerate(batch):
                r = replacements[i]
                left, right = self._margins(r)
                m = r.ids.shape[0]
                regions[i] = Region(out[k, r.start - left : r.start + m + right], left)
        return regions  # type: ignore[return-value]

    def _local(self, replacements: list[Replacement], output: str) -> list[Region]:
        record, length, half = self._record, self.length, self.half_span
        ref = record.input_ids[0]
        jobs = []
        for i, r in enumerate(replacements):
            first, last = record.window(max(0, r.start - half), min(length, r.end + half))
            jobs.append((i, first, last, torch.cat([ref[first : r.start], r.ids.long().cpu(), ref[r.end : last]])))
        regions: list[Region | None] = [None] * len(replacements)
        for batch in _batches(jobs, self.batch_size, lambda job: job[3].shape[0]):
            firsts, lasts = [job[1] for job in batch], [job[2] for job in batch]
            runners = [ChunkRunner(self.chunk_size, initial=_restart(record, firsts, lasts))]
            if record.rc is not None:  # the RC strand's window is the mirror image [L - last, L - first)
                mirrored = _restart(record.rc, [length - p for p in lasts], [length - p for p in firsts])
                runners.append(ChunkRunner(self.chunk_size, initial=mirrored))
            out = self._run(torch.stack([job[3] for job in batch]), PassRouter(runners), output)
            for k, (i, first, _, _) in enumerate(batch):
                r = replacements[i]
                left, right = self._margins(r)
                at = r.start - first
                regions[i] = Region(out[k, at - left : at + r.ids.shape[0] + right], left)
        return regions  # type: ignore[return-value]

    def _run(self, ids: Tensor, runner: PassRouter, output: str) -> Tensor:
        device = self.model.device
        autocast = torch.autocast(device.type, dtype=self.dtype) if self.dtype is not None else nullcontext()
        with torch.no_grad(), autocast:
            ids = ids.to(device)
            if self.conjoin:
                return conjoin(self.model, ids, runner=runner, output=output)
            return self.model(ids, runner=runner) if output == "logits" else self.model.embed(ids, runner=runner)


def _batches(rows: list, size: int, length_of) -> list[list]:
    """Rows grouped by sequence length (a batch needs equal lengths), at most ``size`` per batch."""
    groups: dict[int, list] = {}
    for row in rows:
        groups.setdefault(length_of(row), []).append(row)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]
