"""Reference genomes: indexed random access to FASTA (plain or bgzip) and index-free streaming of records.

Coordinates are 0-based half-open. Contig names are aliased (``chr1`` <-> ``1``, ``chrM`` <-> ``MT`` <-> ``M``)
and windows that reach past a contig end are padded with N.
"""

from __future__ import annotations

import gzip
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pysam

from lrgen.errors import LrgenError

_MITO = ("chrM", "chrMT", "MT", "M")
_GZIP_MAGIC = b"\x1f\x8b"


def _compression(path: Path) -> str:
    """``"bgzip"``, ``"gzip"`` or ``"plain"``, from the first gzip member header."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != _GZIP_MAGIC:
        return "plain"
    # BGZF: FEXTRA flag set and a 'BC' extra subfield right after the 12-byte fixed header
    if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzip"
    return "gzip"


@contextmanager
def quiet_htslib() -> Iterator[None]:
    """htslib's own messages off inside (opening a file: ``[E::idx_find_and_load]`` for every unindexed input;
    reading a VCF's records: record warnings): lrgen reports what matters in its own words."""
    previous = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(previous)


def alias_candidates(chrom: str) -> list[str]:
    """Names that may denote ``chrom`` in another naming style, ``chrom`` itself first."""
    if chrom in _MITO:
        return [chrom, *(m for m in _MITO if m != chrom)]
    if chrom[:3].lower() == "chr":
        return [chrom, chrom[3:]]
    return [chrom, "chr" + chrom]


def same_contig(a: str, b: str) -> bool:
    """Whether two names denote one contig (``chr1``/``1``, ``chrM``/``MT``/``M``)."""
    return b in alias_candidates(a)


class Genome:
    """Random access to an indexed FASTA file (plain text, or bgzip with ``.fai`` and ``.gzi``).

    A missing index is built next to the file. Plain gzip cannot be indexed: recompress with ``bgzip``,
    or stream it with :func:`iter_fasta_records`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise LrgenError(f"FASTA file {self.path} not found")
        if _compression(self.path) == "gzip":
            raise LrgenError(
                f"{self.path}: plain gzip cannot be indexed; recompress with bgzip "
                f"(`zcat {self.path.name} | bgzip > new.fa.gz`) or decompress it"
            )
        self._fasta = self._open()
        self._pid = os.getpid()
        self._sizes = dict(zip(self._fasta.references, self._fasta.lengths))
        self._resolved: dict[str, str] = {}

    def _open(self) -> pysam.FastaFile:
        try:
            with quiet_htslib():
                return pysam.FastaFile(str(self.path))
        except (OSError, ValueError) as exc:
            fai = Path(f"{self.path}.fai")
            if not fai.exists() and not os.access(self.path.parent, os.W_OK):
                raise LrgenError(
                    f"{self.path}: no index {fai.name} and the folder is not writable; "
                    f"build it with `samtools faidx` somewhere writable or copy the FASTA"
                ) from exc
            raise LrgenError(f"{self.path}: cannot open or index this FASTA ({exc}); is it a valid FASTA?") from exc

    @property
    def _handle(self) -> pysam.FastaFile:
        # a pysam handle must not be shared across fork (DataLoader workers): reopen in a new process
        if self._pid != os.getpid():
            self._fasta = self._open()
            self._pid = os.getpid()
        return self._fasta

    @property
    def contig_sizes(self) -> dict[str, int]:
        """Contig name -> length, in file order, with the FASTA's own names."""
        return dict(self._sizes)

    def resolve(self, chrom: str) -> str:
        """The FASTA's name for ``chrom``, allowing ``chr``-prefix and mitochondrial aliases."""
        name = self._resolved.get(chrom)
        if name is not None:
            return name
        for candidate in alias_candidates(chrom):
            if candidate in self._sizes:
                self._resolved[chrom] = candidate
                return candidate
        known = list(self._sizes)
        shown = ", ".join(known[:5]) + (f", ... ({len(known)} in all)" if len(known) > 5 else "")
        raise LrgenError(f"contig '{chrom}' is not in the FASTA {self.path} (its contigs: {shown})")

    def length(self, chrom: str) -> int:
        """The length of contig ``chrom`` (aliases allowed)."""
        return self._sizes[self.resolve(chrom)]

    def __contains__(self, chrom: object) -> bool:
        return isinstance(chrom, str) and any(c in self._sizes for c in alias_candidates(chrom))

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Uppercase bases of ``[start, end)`` (0-based), padded with N outside the contig."""
        start, end = int(start), int(end)
        if end < start:
            raise ValueError(f"fetch({chrom!r}, {start}, {end}): end is before start")
        name = self.resolve(chrom)
        size = self._sizes[name]
        lo, hi = max(start, 0), min(end, size)
        core = self._handle.fetch(name, lo, hi).upper() if lo < hi else ""
        left = min(lo, end) - start
        right = end - start - left - len(core)
        return "N" * left + core + "N" * right

    def close(self) -> None:
        self._fasta.close()

    def __getstate__(self) -> dict:
        # pysam handles cannot be pickled: a copy (e.g. in a spawned DataLoader worker) reopens the file
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, {len(self._sizes)} contigs)"


def iter_fasta_records(path: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """Stream ``(name, sequence)`` from a plain, gzip or bgzip FASTA without an index.

    The name is the header's first word; the sequence is uppercased. Each record is held in memory whole.
    """
    path = Path(path)
    if not path.is_file():
        raise LrgenError(f"FASTA file {path} not found")
    opener = open if _compression(path) == "plain" else gzip.open
    name: str | None = None
    parts: list[bytes] = []
    n_records = 0
    try:
        with opener(path, "rb") as fh:
            for line_no, line in enumerate(fh, start=1):
                if line.startswith(b">"):
                    if name is not None:
                        yield name, b"".join(parts).decode("ascii", "replace").upper()
                        n_records += 1
                    words = line[1:].split()
                    if not words:
                        raise LrgenError(f"{path}: line {line_no}: FASTA header without a name")
                    name, parts = words[0].decode("utf-8", "replace"), []
                elif line.strip():
                    if name is None:
                        raise LrgenError(
                            f"{path}: line {line_no}: sequence before the first '>' header; not a FASTA file?"
                        )
                    parts.append(line.strip())
    except (OSError, EOFError) as exc:
        raise LrgenError(f"{path}: cannot read this FASTA ({exc}); is the file truncated or corrupt?") from exc
    if name is not None:
        yield name, b"".join(parts).decode("ascii", "replace").upper()
        n_records += 1
    if n_records == 0:
        raise LrgenError(f"{path}: no FASTA records found")
