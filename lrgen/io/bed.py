"""BED regions (BED3+, 0-based half-open): reading with validation, and merging."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from lrgen.errors import LrgenError
from lrgen.io.genome import Genome


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


def _fail(path: Path, line_no: int, what: str) -> LrgenError:
    return LrgenError(f"{path}: line {line_no}: {what}")


def read_bed(path: str | os.PathLike, genome: Genome | None = None) -> list[Region]:
    """Regions of a BED file (plain or gzip; tab- or whitespace-separated; extra columns ignored).

    Blank lines and ``#``, ``track`` and ``browser`` lines are skipped. With a ``genome``, contigs must exist
    (aliases such as ``chr1`` for ``1`` allowed) and regions must end within them.
    """
    path = Path(path)
    if not path.is_file():
        raise LrgenError(f"BED file {path} not found")
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    sizes = genome.contig_sizes if genome is not None else {}
    regions: list[Region] = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split("\t") if "\t" in text else text.split()
            if fields[0] in ("track", "browser"):
                continue
            if len(fields) < 3:
                raise _fail(path, line_no, f"expected at least 3 columns (chrom, start, end), got {len(fields)}")
            chrom = fields[0].strip()
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise _fail(path, line_no, f"start and end must be integers, got {fields[1]!r} and {fields[2]!r}")
            if start < 0:
                raise _fail(path, line_no, f"start {start} is negative")
            if start >= end:
                raise _fail(path, line_no, f"start {start} is not before end {end} (BED is 0-based half-open)")
            if genome is not None:
                if chrom not in genome:
                    raise _fail(path, line_no, f"contig '{chrom}' is not in the FASTA {genome.path}")
                size = sizes[genome.resolve(chrom)]
                if end > size:
                    raise _fail(path, line_no, f"end {end} is past the end of contig '{chrom}' ({size} bp)")
            name = fields[3].strip() if len(fields) > 3 and fields[3].strip() else None
            regions.append(Region(chrom, start, end, name, line_no))
    return regions


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
