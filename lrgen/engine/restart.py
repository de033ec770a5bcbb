"""Local restarts in batches: many edits of one recorded sequence, each recomputed only around itself.

An :class:`Edit` puts ``ids`` in place of the recorded sequence's ``[start, end)`` (lengths may differ: indels).
Its pass covers the recorded boundaries around ``[start - half_span, end + half_span)``; every scan of a row
restarts there from the recorded states (zero at the sequence ends), so rows of one batch restart at different
places. Outside its window an edited pass is taken to equal the recorded one (docs/engine.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor

from lrgen.engine.record import StateRecord
from lrgen.engine.stream import ChunkRunner, PassRouter, run_pass


@dataclass(frozen=True)
class Edit:
    """``ids`` (1-D) in place of the recorded ``[start, end)``; outputs are wanted ``margin`` positions around it."""

    start: int
    end: int
    ids: Tensor
    margin: int = 0


@dataclass
class EditOutput:
    """Outputs of one edit: ``values`` (n, V or H) over the edited sequence, the edit's first position at ``offset``."""

    values: Tensor
    offset: int


def margins(edit: Edit, length: int) -> tuple[int, int]:
    """The edit's margins, clipped to a sequence of ``length``."""
    return min(edit.margin, edit.start), min(edit.margin, length - edit.end)


def batches_by_length(rows: list, size: int, length_of: Callable) -> list[list]:
    """Rows grouped by sequence length (a batch needs equal lengths), at most ``size`` per batch."""
    groups: dict[int, list] = {}
    for row in rows:
        groups.setdefault(length_of(row), []).append(row)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def row_restarts(record: StateRecord, firsts: list[int], lasts: list[int]):
    """A :class:`ChunkRunner` ``initial`` callback: row ``i``'s forward scans restart at ``firsts[i]``, its reverse
    scans at ``lasts[i]``, from the recorded states."""

    def initial(key: str, reverse: bool, batch: int, device: torch.device):
        return record.row_states(key, reverse, lasts if reverse else firsts, device)

    return initial


def restream_edits(model, record: StateRecord, edits: list[Edit], *, half_span: int, chunk_size: int,
                   batch_size: int, output: str, dtype: torch.dtype | None = None) -> Iterator[EditOutput]:
    """Outputs of each edit of the recorded sequence (batch 1), in order, recomputing ``half_span`` positions on
    each side of it in batches of ``batch_size`` rows; conjoined when the record is."""
    length = record.length
    ref = record.input_ids[0]
    jobs = []
    for i, edit in enumerate(edits):
        first, last = record.window(max(0, edit.start - half_span), min(length, edit.end + half_span))
        jobs.append((i, first, last, torch.cat([ref[first : edit.start], edit.ids.long().cpu(), ref[edit.end : last]])))
    results: list[EditOutput | None] = [None] * len(edits)
    for batch in batches_by_length(jobs, batch_size, lambda job: job[3].shape[0]):
        firsts, lasts = [job[1] for job in batch], [job[2] for job in batch]
        runners = [ChunkRunner(chunk_size, initial=row_restarts(record, firsts, lasts))]
        if record.rc is not None:  # the RC strand's window is the mirror image [L - last, L - first)
            mirrored = row_restarts(record.rc, [length - p for p in lasts], [length - p for p in firsts])
            runners.append(ChunkRunner(chunk_size, initial=mirrored))
        out = run_pass(model, torch.stack([job[3] for job in batch]), PassRouter(runners), output,
                       record.rc is not None, dtype)
        for k, (i, first, _, _) in enumerate(batch):
            edit = edits[i]
            left, right = margins(edit, length)
            at = edit.start - first
            results[i] = EditOutput(out[k, at - left : at + edit.ids.shape[0] + right], left)
    return iter(results)  # type: ignore[arg-type]

