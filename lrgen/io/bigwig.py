"""Tracks: output to bigWig through pyBigWig or bedGraph text (gzip when the name ends in ``.gz``), and input from
bigWig (:class:`BigWigTrack`; :class:`TrackReader` checks it against a genome's contig names).

An output file is written under a temporary name in the same folder and renamed when closed successfully; on an
exception the temporary file is removed, so a partial track never appears under the final name.

libBigWig starts the header's maximum at ``DBL_MIN`` (2.2e-308, the smallest positive double), so a track whose
values are all zero or negative would claim 2.2e-308 as its maximum; the writer puts the true minimum and maximum
into the header's total summary before the rename.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Mapping

import numpy as np
import pyBigWig

from lrgen.errors import LrgenError
from lrgen.io.genome import Genome, alias_candidates

FORMATS = ("bigwig", "bedgraph")
_BIGWIG_MAGIC = 0x888FFC26
_SUMMARY_OFFSET_AT = 44  # bbi header: where the offset of the total summary (count, min, max, sum, sum of squares) is


#: a stretch of values is written to a bigWig as one interval per run of equal values when it has at most one run
#: per this many values (pooled or binned tracks), else as fixed-step values (per-base tracks)
RUNS_PER_ENTRY = 4


def _equal_runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, end) indices of the runs of equal values."""
    change = np.flatnonzero(np.diff(values)) + 1
    return np.concatenate([[0], change]), np.concatenate([change, [values.size]])


class TrackWriter:
    """Writes values per contig, in header order and by increasing position: fixed-step, or one interval per run of
    equal values where runs are long (:data:`RUNS_PER_ENTRY`); NaN values are skipped."""

    def __init__(self, path: str | os.PathLike, contig_sizes: Mapping[str, int], format: str = "bigwig"):
        if format not in FORMATS:
            raise LrgenError(f"unknown track format {format!r}; use one of {', '.join(FORMATS)}")
        if not contig_sizes:
            raise LrgenError(f"{path}: a track needs at least one contig in its header")
        self.path = Path(path)
        folder = self.path.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise LrgenError(f"{self.path}: the folder {folder} does not exist or is not writable")
        self.format = format
        self.contig_sizes = dict(contig_sizes)
        self._rank = {c: i for i, c in enumerate(self.contig_sizes)}
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._chrom: str | None = None
        self._end = 0
        self._range: tuple[float, float] | None = None  # the finite values' minimum and maximum
        if format == "bigwig":
            self._bw = pyBigWig.open(str(self._tmp), "w")
            if self._bw is None:
                raise LrgenError(f"{self.path}: cannot create the bigWig")
            self._bw.addHeader([(c, int(s)) for c, s in self.contig_sizes.items()])
        else:
            opener = gzip.open if self.path.name.endswith(".gz") else open
            self._text = opener(self._tmp, "wt")
        self._open = True

    def add(self, chrom: str, start: int, values: np.ndarray, span: int = 1) -> None:
        """Add ``values[i]`` over ``[start + i*span, start + (i+1)*span)``; NaN entries are left out."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"values must be 1-D, got shape {values.shape}")
        if span < 1:
            raise ValueError(f"span must be >= 1, got {span}")
        if chrom not in self._rank:
            known = ", ".join(list(self._rank)[:5])
            raise LrgenError(f"{self.path}: contig '{chrom}' is not in the track header (its contigs: {known}, ...)")
        end = start + values.size * span
        if start < 0 or end > self.contig_sizes[chrom]:
            size = self.contig_sizes[chrom]
            raise LrgenError(f"{self.path}: {chrom}:{start}-{end} is outside the contig ({size} bp)")
        if self._chrom is not None:
            if (self._rank[chrom], start) < (self._rank[self._chrom], self._end):
                raise LrgenError(
                    f"{self.path}: entries must arrive sorted by contig (header order) and position: "
                    f"{chrom}:{start} comes after {self._chrom}:{self._end}"
                )
        if values.size == 0:
            return
        self._chrom, self._end = chrom, end
        finite = ~np.isnan(values)
        if finite.any():
            lo, hi = (float(np.float32(x)) for x in (values[finite].min(), values[finite].max()))  # as stored
            self._range = (lo, hi) if self._range is None else (min(lo, self._range[0]), max(hi, self._range[1]))
        edges = np.flatnonzero(np.diff(np.concatenate([[False], finite, [False]]).astype(np.int8)))
        for i0, i1 in zip(edges[::2], edges[1::2]):
            run_start = start + int(i0) * span
            run = values[i0:i1]
            firsts, lasts = _equal_runs(run)
            if self.format == "bedgraph":
                self._text.write("".join(
                    f"{chrom}\t{run_start + a * span}\t{run_start + b * span}\t{run[a]:.6g}\n"
                    for a, b in zip(firsts.tolist(), lasts.tolist())))
            elif firsts.size * RUNS_PER_ENTRY <= run.size:  # long runs of one value (a window's pooled value)
                self._bw.addEntries([chrom] * firsts.size, (run_start + firsts * span).tolist(),
                                    ends=(run_start + lasts * span).tolist(), values=run[firsts].tolist())
            else:
                self._bw.addEntries(chrom, run_start, values=np.ascontiguousarray(run), span=span, step=span)

    def _close_handle(self) -> None:
        if self.format == "bigwig":
            self._bw.close()
        else:
            self._text.close()

    def _write_range(self) -> None:
        """Put the true minimum and maximum into the bigWig's total summary (see the module docstring)."""
        with open(self._tmp, "r+b") as fh:
            head = fh.read(_SUMMARY_OFFSET_AT + 8)
            if struct.unpack_from("<I", head)[0] != _BIGWIG_MAGIC:
                return  # not the little-endian layout libBigWig writes
            (offset,) = struct.unpack_from("<Q", head, _SUMMARY_OFFSET_AT)
            fh.seek(offset + 8)  # after the count of bases covered
            fh.write(struct.pack("<dd", *self._range))

    def close(self) -> None:
        """Finish the file and move it to its final name."""
        if not self._open:
            return
        self._open = False
        try:
            self._close_handle()
            if self.format == "bigwig" and self._range is not None:
                self._write_range()
            os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop the partial file."""
        if not self._open:
            return
        self._open = False
        try:
            self._close_handle()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TrackWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_bigwig(path: Path):
    """A pyBigWig reader of ``path``, or one line saying why not (checked first: libBigWig prints to stderr)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    magic = struct.unpack("<I", head)[0] if len(head) == 4 else None
    if magic != _BIGWIG_MAGIC and magic != struct.unpack(">I", struct.pack("<I", _BIGWIG_MAGIC))[0]:
        raise LrgenError(f"{path}: not a bigWig file (no bigWig signature at its start)")
    try:
        bw = pyBigWig.open(str(path))
    except RuntimeError:
        bw = None
    if bw is None or not bw.isBigWig():
        raise LrgenError(f"{path}: cannot open as bigWig")
    return bw


def _values(bw, name: str, size: int, start: int, end: int, out: np.ndarray) -> np.ndarray:
    """``out`` (NaN-filled, for ``[start, end)``) with the file's values of contig ``name`` written in where the
    window overlaps the contig."""
    lo, hi = max(start, 0), min(end, size)
    if lo < hi:
        got = bw.values(name, lo, hi, numpy=True)
        if got is not None and len(got) == hi - lo:  # nothing at all for a file without entries
            out[lo - start : hi - start] = got
    return out


class BigWigTrack:
    """A bigWig read by its own contig names, whatever the caller's naming style (``chr20``/``20``, ``chrM``/``MT``
    aliased): its contigs, where it has values, and a region's values per base or summed up per bin (for drawing).
    Positions the file does not cover (no entry, a contig it lacks, past a contig end) read as NaN. The handle is
    reopened in a forked or spawned worker (a pyBigWig handle must not cross a fork: DataLoader workers)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LrgenError(f"bigWig file {self.path} not found")
        self._pid, self._bw = os.getpid(), open_bigwig(self.path)
        self.sizes: dict[str, int] = {c: int(n) for c, n in self._bw.chroms().items()}

    def _handle(self):
        if self._pid != os.getpid():
            self._pid, self._bw = os.getpid(), open_bigwig(self.path)
        return self._bw

    def contig(self, chrom: str) -> str | None:
        """The file's name for ``chrom`` (aliases matched), None when it lacks the contig."""
        return next((c for c in alias_candidates(chrom) if c in self.sizes), None)

    def extents(self) -> list[tuple[str, int, int]]:
        """``(contig, start, end)`` from the first to the last base with a value, per contig that has any."""
        bw, found = self._handle(), []
        for name, size in self.sizes.items():
            bins = min(size, 4096)
            cover = bw.stats(name, 0, size, type="coverage", nBins=bins) or []
            hit = [i for i, c in enumerate(cover) if c]
            if not hit:
                continue
            width = -(-size // bins)  # search one bin beyond the covered ones: bin edges are rounded
            first = bw.intervals(name, max(0, (hit[0] - 1) * width), min(size, (hit[0] + 2) * width))
            last = bw.intervals(name, max(0, (hit[-1] - 1) * width), min(size, (hit[-1] + 2) * width))
            if first and last:
                found.append((name, first[0][0], last[-1][1]))
        return found

    def values(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Float64 values of ``[start, end)`` per base, NaN where the file has none."""
        out = np.full(end - start, np.nan)
        name = self.contig(chrom)
        return out if name is None else _values(self._handle(), name, self.sizes[name], start, end, out)

    def binned(self, chrom: str, start: int, end: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, minimum and maximum of ``[start, end)`` (inside the contig) over ``bins`` equal bins, NaN where a
        bin has no value."""
        name = self.contig(chrom)

        def summary(kind: str) -> np.ndarray:
            got = self._handle().stats(name, start, end, type=kind, nBins=bins) if name is not None else [None] * bins
            return np.array([np.nan if v is None else v for v in got], dtype=np.float64)

        return summary("mean"), summary("min"), summary("max")

    def close(self) -> None:
        self._bw.close()

    def __getstate__(self) -> dict:  # a spawned worker reopens the file
        return {k: v for k, v in self.__dict__.items() if k not in ("_bw", "_pid")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pid, self._bw = os.getpid(), open_bigwig(self.path)

    def __enter__(self) -> BigWigTrack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TrackReader(BigWigTrack):
    """A bigWig addressed by a genome's contig names: ``contigs`` maps those the file has to its own names. A file
    none of whose contigs is in the genome is an error: its names belong to another assembly or naming style."""

    def __init__(self, path: str | os.PathLike, genome: Genome) -> None:
        super().__init__(path)
        self.contigs = {c: name for c in genome.contig_sizes if (name := self.contig(c)) is not None}
        if not self.contigs:
            self.close()
            shown = lambda names: ", ".join(list(names)[:4]) + (", ..." if len(names) > 4 else "")  # noqa: E731
            raise LrgenError(f"{self.path}: none of its contigs ({shown(self.sizes)}) is in the genome {genome.path} "
                             f"({shown(genome.contig_sizes)}): is it for another assembly?")
