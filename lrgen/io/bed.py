"""BED regions (BED3+, 0-based half-open): reading with validation, merging, overlap queries and centred windows."""

from __future__ import annotations

import bisect
import gzip
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Sequence

from lrgen.errors import LrgenError
from lrgen.io.genome import Genome
from lrgen.io.streams import STDIN_NAME, is_stdio, read_stdin_text


@dataclass(frozen=True)
class Region:
    """One BED interval ``[start, end)`` with the BED's own contig name and its line number (0 if made)."""

    chrom: str
    start: int
    end: int
    name: str | None = None
    line: int = 0

    def __len__(self) -> int:
        return self.end - self.start


def _fail(path: Path | str, line_no: int, what: str) -> LrgenError:
    return LrgenError(f"{path}: line {line_no}: {what}")


def _open_text(path: str | os.PathLike) -> tuple[str, IO[str]]:
    """The BED's name for messages and its lines: a plain or gzip file, or standard input for ``-``."""
    if is_stdio(path):
        return STDIN_NAME, io.StringIO(read_stdin_text("the BED file"))
    path = Path(path)
    if not path.is_file():
        raise LrgenError(f"BED file {path} {'is a folder, not a file' if path.is_dir() else 'not found'}")
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    return str(path), opener(path, "rt", encoding="utf-8", errors="replace")


def read_bed(path: str | os.PathLike, genome: Genome | None = None, ignored: Counter | None = None) -> list[Region]:
    """Regions of a BED file (plain or gzip, or standard input for ``-``; tab- or whitespace-separated; extra columns
    ignored).

    Blank lines and ``#``, ``track`` and ``browser`` lines are skipped. With a ``genome``, regions must end within
    their contigs, and the contigs must exist (aliases such as ``chr1`` for ``1`` allowed) — or, given an ``ignored``
    counter, regions on contigs the genome lacks are left out and counted there by contig, as bcftools does with a
    genome-wide BED (:func:`ignored_note` says so in one line).
    """
    source, text_lines = _open_text(path)
    sizes = genome.contig_sizes if genome is not None else {}
    regions: list[Region] = []
    with text_lines as fh:
        for line_no, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split("\t") if "\t" in text else text.split()
            if fields[0] in ("track", "browser"):
                continue
            if len(fields) < 3:
                raise _fail(source, line_no, f"expected at least 3 columns (chrom, start, end), got {len(fields)}")
            chrom = fields[0].strip()
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise _fail(source, line_no, f"start and end must be integers, got {fields[1]!r} and {fields[2]!r}")
            if start < 0:
                raise _fail(source, line_no, f"start {start} is negative")
            if start >= end:
                raise _fail(source, line_no, f"start {start} is not before end {end} (BED is 0-based half-open)")
            if genome is not None:
                if chrom not in genome and ignored is not None:
                    ignored[chrom] += 1
                    continue
                if chrom not in genome:
                    raise _fail(source, line_no, f"contig '{chrom}' is not in the FASTA {genome.path}")
                size = sizes[genome.resolve(chrom)]
                if end > size:
                    raise _fail(source, line_no, f"end {end} is past the end of contig '{chrom}' ({size} bp)")
            name = fields[3].strip() if len(fields) > 3 and fields[3].strip() else None
            regions.append(Region(chrom, start, end, name, line_no))
    return regions


def ignored_note(path: str | os.PathLike, ignored: Counter) -> str:
    """One line on the regions :func:`read_bed` left out, e.g. "r.bed: 3 regions on contigs not in the FASTA were
    ignored (chrUn_gl000220: 1, chrY: 2)"."""
    path = STDIN_NAME if is_stdio(path) else path
    shown = ", ".join(f"{c}: {n:,}" for c, n in sorted(ignored.items())[:5]) + (", ..." if len(ignored) > 5 else "")
    total = sum(ignored.values())
    what = "1 region on a contig" if total == 1 else f"{total:,} regions on contigs"
    return f"{path}: {what} not in the FASTA {'was' if total == 1 else 'were'} ignored ({shown})"


_REGION_TEXT = re.compile(r"^(?P<chrom>[^:\s]+)(?::(?P<start>[\d,]+)-(?P<end>[\d,]+))?$")


def parse_region(text: str) -> tuple[str, int, int | None]:
    """``chrom`` or ``chrom:start-end``, 1-based and inclusive as in samtools (commas allowed, e.g.
    ``20:1,000,001-1,020,000``), as 0-based half-open ``(chrom, start, end)``; ``end`` is None for a whole contig."""
    m = _REGION_TEXT.match(text.strip())
    if not m:
        raise LrgenError(f"cannot read region {text!r}: write chrom or chrom:start-end, e.g. 20:1000000-4000000")
    if m.group("start") is None:
        return m.group("chrom"), 0, None
    start, end = (int(m.group(g).replace(",", "")) for g in ("start", "end"))
    if start < 1 or end < start:
        raise LrgenError(f"region {text!r}: need 1 <= start <= end (1-based, inclusive)")
    return m.group("chrom"), start - 1, end


def merge_regions(regions: Sequence[Region], contig_order: Sequence[str] | None = None) -> list[Region]:
    """Sort by contig then start and merge overlapping or adjacent regions.

    Contigs follow ``contig_order`` when given (others after it, by name), else their names. A merged region
    keeps the name only when all its parts share it, and the line of its first part.
    """
    rank = {c: i for i, c in enumerate(contig_order or ())}
    ordered = sorted(regions, key=lambda r: (rank.get(r.chrom, len(rank)), r.chrom, r.start, r.end))
    merged: list[Region] = []
    for region in ordered:
        last = merged[-1] if merged else None
        if last is not None and last.chrom == region.chrom and region.start <= last.end:
            name = last.name if last.name == region.name else None
            merged[-1] = replace(last, end=max(last.end, region.end), name=name)
        else:
            merged.append(region)
    return merged


def centred_window(start: int, end: int, context: int) -> tuple[int, int]:
    """The ``context``-long window centred on ``[start, end)``: its middle base ``(start + end) // 2`` sits at index
    ``context // 2`` (for one position ``p``: ``[p - context//2, p + context//2 + context%2)``). It may pass the
    contig ends (the genome pads with N)."""
    first = (start + end) // 2 - context // 2
    return first, first + context


class RegionIndex:
    """Whether an interval touches any of ``regions``; contig names are resolved by ``genome`` (aliases match)."""

    def __init__(self, regions: Sequence[Region], genome: Genome) -> None:
        self.starts: dict[str, list[int]] = {}
        self.ends: dict[str, list[int]] = {}
        resolved = [replace(r, chrom=genome.resolve(r.chrom), name=None) for r in regions]
        for region in merge_regions(resolved):
            self.starts.setdefault(region.chrom, []).append(region.start)
            self.ends.setdefault(region.chrom, []).append(region.end)

    def overlaps(self, contig: str | None, start: int, end: int) -> bool:
        """``[start, end)`` (0-based, contig as the genome names it) touches a region."""
        if contig not in self.starts:
            return False
        i = bisect.bisect_left(self.starts[contig], end)  # regions starting before `end`
        return i > 0 and self.ends[contig][i - 1] > start
