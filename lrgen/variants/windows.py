"""Grouping a stream of VCF records into shared context windows: one reference pass serves every variant in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from lrgen.io.bed import centred_window
from lrgen.variants.triage import Entry

MAX_ENTRIES = 20_000  # records held in memory per window at most


@dataclass
class Window:
    """``entries`` (in input order) whose scorable alleles all lie on ``contig`` within ``[start, end)``.

    A window with no scorable allele has ``contig`` None and needs no model pass.
    """

    contig: str | None
    start: int  # 0-based, may be negative (N padding before the contig start)
    end: int
    entries: list[Entry]

    @property
    def length(self) -> int:
        return self.end - self.start

    def alleles(self):
        """The scorable alleles, in input order."""
        return [a for entry in self.entries for a in entry.scorable]


def group_windows(entries: Iterable[Entry], context: int) -> Iterator[Window]:
    """Consecutive records whose scorable alleles span at most ``context // 2`` bp on one contig share a window.

    The window (``context`` bp) is centred on that span, so every allele keeps at least ``context // 4`` bp of
    sequence on each side. Records with nothing to score join the current window (order is kept); a window also
    closes at :data:`MAX_ENTRIES` records or where the input goes backwards (unsorted input still works).
    """
    span = context // 2
    current: list[Entry] = []
    contig: str | None = None
    lo = hi = 0
    for entry in entries:
        scorable = entry.scorable
        if scorable:
            start = min(a.variant.start for a in scorable)
            end = max(a.variant.end for a in scorable)
            opened = contig is not None
            if opened and (entry.contig != contig or start < lo or max(hi, end) - lo > span):
                yield _place(contig, lo, hi, current, context)
                current, contig = [], None
            if contig is None:
                contig, lo, hi = entry.contig, start, end
            hi = max(hi, end)
        current.append(entry)
        if len(current) >= MAX_ENTRIES:
            yield _place(contig, lo, hi, current, context)
            current, contig = [], None
    if current:
        yield _place(contig, lo, hi, current, context)


def _place(contig: str | None, lo: int, hi: int, entries: list[Entry], context: int) -> Window:
    if contig is None:
        return Window(None, 0, 0, entries)
    return Window(contig, *centred_window(lo, hi, context), entries)
