"""The user's labelled inputs: BED regions (classes from the name column), a label table (TSV) and bigWig targets.

Every error names the file and line. Contigs are renamed to the genome's own names (``chr1``/``1`` aliased), and a
contig the genome lacks is an error.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lrgen.errors import LrgenError
from lrgen.io.bed import Region, read_bed
from lrgen.io.bigwig import TrackReader
from lrgen.io.genome import Genome

#: a BED name column with more distinct names than this holds ids (e.g. MACS2 peak names), not classes
MAX_CLASSES = 100
#: per-bin target values above this are soft-clipped to ``CLIP + sqrt(x - CLIP)`` before log1p (Borzoi's clip)
CLIP = 384.0
#: table columns naming the coordinates of a row (lower case, a leading ``#`` dropped); the rest are labels
REGION_COLUMNS = ("chrom", "start", "end")
VARIANT_COLUMNS = ("chrom", "pos", "ref", "alt")


def read_regions(path: str | os.PathLike, genome: Genome) -> list[Region]:
    """Regions of a BED file (validated by :func:`lrgen.io.bed.read_bed`), on the genome's contig names."""
    regions = read_bed(path, genome)
    if not regions:
        raise LrgenError(f"{path}: no regions")
    return [replace(r, chrom=genome.resolve(r.chrom)) for r in regions]


def region_classes(path: str | os.PathLike, regions: list[Region]) -> list[str]:
    """The classes of a multi-label region set: the distinct names of the BED's name column (4th) when there are
    2 to :data:`MAX_CLASSES` of them and each names two regions on average; otherwise ``[]``, one binary label
    (no names, one name, or ids)."""
    names = {r.name for r in regions if r.name is not None}
    if not 2 <= len(names) <= min(MAX_CLASSES, len(regions) // 2):
        return []
    unnamed = next((r for r in regions if r.name is None), None)
    if unnamed is not None:
        raise LrgenError(f"{path}: line {unnamed.line}: no name (column 4) while other lines name classes")
    return sorted(names)


@dataclass
class TableRow:
    """One row of a label table: a region ``[start, end)`` (0-based) or a variant at 0-based ``start``."""

    line: int
    chrom: str
    start: int
    end: int
    labels: np.ndarray
    ref: str | None = None
    alt: str | None = None


@dataclass
class Table:
    """A label table: its rows, label columns and whether every label is 0 or 1 (classification)."""

    path: Path
    variant: bool
    label_names: list[str]
    rows: list[TableRow]

    @property
    def binary(self) -> bool:
        return all(np.isin(r.labels, (0.0, 1.0)).all() for r in self.rows)


def _fail(path: Path, line: int, what: str) -> LrgenError:
    return LrgenError(f"{path}: line {line}: {what}")


def _integer(path: Path, line: int, column: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _fail(path, line, f"column {column}: {text!r} is not an integer") from None


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _fail(path, line, f"column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _fail(path, line, f"column {column}: {text!r} is not a finite number")
    return value


def _allele(path: Path, line: int, column: str, text: str) -> str:
    allele = text.strip().upper()
    if not allele or any(c not in "ACGT" for c in allele):
        raise _fail(path, line, f"column {column}: allele {text!r} is not made of A, C, G, T")
    return allele


def read_table(path: str | os.PathLike, genome: Genome) -> Table:
    """A tab-separated label table with a header: ``chrom start end`` (BED coordinates) or ``chrom pos ref alt``
    (1-based, REF checked against the genome, substitutions only) and one or more numeric label columns."""
    path = Path(path)
    if not path.is_file():
        raise LrgenError(f"table {path} not found")
    try:
        with open(path, newline="") as fh:
            rows = enumerate(csv.reader(fh, delimiter="\t"), start=1)
            lines = [(n, row) for n, row in rows if row and row[0].strip()]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LrgenError(f"{path}: cannot read this table ({exc})") from None
    if not lines:
        raise LrgenError(f"{path}: empty table")
    header = [c.strip().lstrip("#").strip().lower() for c in lines[0][1]]
    variant = all(c in header for c in VARIANT_COLUMNS)
    coords = VARIANT_COLUMNS if variant else REGION_COLUMNS
    missing = [c for c in coords if c not in header]
    if missing:
        raise _fail(path, lines[0][0], f"the header needs columns chrom, start, end (regions) or chrom, pos, ref, alt "
                                       f"(variants); missing {', '.join(missing)}")
    labels = [i for i, c in enumerate(header) if c not in coords]
    if not labels:
        raise _fail(path, lines[0][0], "no label column besides the coordinates")
    index = {c: header.index(c) for c in coords}
    sizes = genome.contig_sizes
    rows = []
    for line, fields in lines[1:]:
        if len(fields) != len(header):
            raise _fail(path, line, f"{len(fields)} fields, the header has {len(header)}")
        chrom = fields[index["chrom"]].strip()
        if chrom not in genome:
            raise _fail(path, line, f"contig '{chrom}' is not in the FASTA {genome.path}")
        chrom = genome.resolve(chrom)
        values = np.array([_number(path, line, lines[0][1][i], fields[i]) for i in labels], np.float32)
        if variant:
            pos = _integer(path, line, "pos", fields[index["pos"]])
            ref = _allele(path, line, "ref", fields[index["ref"]])
            alt = _allele(path, line, "alt", fields[index["alt"]])
            if len(ref) != len(alt):
                raise _fail(path, line, f"{ref}>{alt} is an indel; a table takes substitutions (SNVs, MNPs)")
            if pos < 1 or pos - 1 + len(ref) > sizes[chrom]:
                raise _fail(path, line, f"pos {pos} is outside contig '{chrom}' ({sizes[chrom]} bp)")
            found = genome.fetch(chrom, pos - 1, pos - 1 + len(ref))
            if found != ref:
                raise _fail(path, line, f"ref {ref} differs from the genome's {found} at {chrom}:{pos}")
            rows.append(TableRow(line, chrom, pos - 1, pos - 1 + len(ref), values, ref, alt))
        else:
            start, end = (_integer(path, line, c, fields[index[c]]) for c in ("start", "end"))
            if not 0 <= start < end <= sizes[chrom]:
                raise _fail(path, line, f"[{start}, {end}) is not a region of contig '{chrom}' ({sizes[chrom]} bp; "
                                        "coordinates are 0-based half-open, as in BED)")
            rows.append(TableRow(line, chrom, start, end, values))
    if not rows:
        raise LrgenError(f"{path}: no rows under the header")
    return Table(path, variant, [lines[0][1][i].strip() for i in labels], rows)


class Targets:
    """Per-bin training targets from bigWigs: the mean per bin (missing values count as 0), values above
    :data:`CLIP` soft-clipped, then ``log1p``; one column per file."""

    def __init__(self, paths: list[str], genome: Genome, bin_bp: int) -> None:
        self.readers = [TrackReader(p, genome) for p in paths]
        self.bin_bp = bin_bp
        stems = [Path(p).name.split(".")[0] for p in paths]
        self.names = stems if len(set(stems)) == len(stems) else [f"{i}-{s}" for i, s in enumerate(stems)]

    @property
    def contigs(self) -> set[str]:
        """The genome's contigs that at least one file covers."""
        return {c for reader in self.readers for c in reader.contigs}

    def bins(self, contig: str, start: int, n_bins: int) -> np.ndarray:
        """``(n_bins, tracks)`` float32 targets of the bins from ``start``."""
        out = np.empty((n_bins, len(self.readers)), np.float32)
        for j, reader in enumerate(self.readers):
            values = np.nan_to_num(reader.values(contig, start, start + n_bins * self.bin_bp), nan=0.0)
            if values.min(initial=0.0) < 0:
                at = start + int(np.argmax(values < 0))
                raise LrgenError(f"{reader.path}: negative value {values.min():g} near {contig}:{at + 1}: targets "
                                 "are log1p of coverage-like signal (≥ 0)")
            mean = values.reshape(n_bins, self.bin_bp).mean(1)
            out[:, j] = np.log1p(np.where(mean > CLIP, CLIP + np.sqrt(np.maximum(mean - CLIP, 0)), mean))
        return out
