"""VCF/BCF reading through pysam: streamed, one :class:`Variant` per ALT allele, classified, REF-checkable.

Positions are 1-based as in the VCF (``Variant.start`` gives the 0-based start used by the rest of lrgen). A VCF
compressed with plain gzip rather than bgzip (htslib cannot open it: it seeks) is streamed once into a temporary
plain copy that is read instead and deleted on close; so is standard input (the path ``-``), whatever its form.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import pysam

from lrgen.errors import LrgenError
from lrgen.io.genome import Genome, alias_candidates, quiet_htslib, same_contig
from lrgen.io.streams import STDIN_NAME, is_stdio, spool_stdin

if TYPE_CHECKING:
    from lrgen.io.bed import Region

KINDS = ("snv", "mnp", "insertion", "deletion", "complex", "symbolic", "breakend", "star", "missing")
SCORABLE_KINDS = frozenset({"snv", "mnp", "insertion", "deletion", "complex"})


@dataclass(frozen=True)
class Variant:
    """One ALT allele of a VCF record."""

    chrom: str
    pos: int  # 1-based, as in the VCF
    id: str | None
    ref: str
    alt: str | None
    alt_index: int  # 0-based among the record's ALTs
    kind: str
    record_number: int  # 1-based count of data records in the file

    @property
    def start(self) -> int:
        """0-based start of REF."""
        return self.pos - 1

    @property
    def end(self) -> int:
        """0-based exclusive end of REF."""
        return self.pos - 1 + len(self.ref)

    def __str__(self) -> str:
        return f"{self.chrom}:{self.pos} {self.ref}>{self.alt if self.alt is not None else '.'}"


def is_scorable(kind: str) -> bool:
    """Whether an allele of this kind is a concrete sequence change (SNV, MNP, indel, complex)."""
    return kind in SCORABLE_KINDS


def classify(ref: str, alt: str | None) -> str:
    """Kind of the change REF -> ALT (one of :data:`KINDS`).

    Equal lengths are ``snv`` (1 base) or ``mnp``; otherwise the shared suffix and prefix are trimmed (the
    VCF's leading padding base) and what is left is an ``insertion``, a ``deletion`` or ``complex``.
    """
    if alt is None or alt == ".":
        return "missing"
    if alt == "*":
        return "star"
    if alt.startswith("<") and alt.endswith(">"):
        return "symbolic"
    if "[" in alt or "]" in alt or (len(alt) > 1 and (alt.startswith(".") or alt.endswith("."))):
        return "breakend"
    r, a = ref.upper(), alt.upper()
    if len(r) == len(a):
        return "snv" if len(r) == 1 else "mnp"
    while r and a and r[-1] == a[-1]:
        r, a = r[:-1], a[:-1]
    while r and a and r[0] == a[0]:
        r, a = r[1:], a[1:]
    if not r:
        return "insertion"
    if not a:
        return "deletion"
    return "complex"


def is_plain_gzip(path: str | os.PathLike) -> bool:
    """Whether ``path`` is gzip-compressed but not BGZF (no ``BC`` extra field in its first member's header)."""
    with open(path, "rb") as fh:
        head = fh.read(14)
    return head[:2] == b"\x1f\x8b" and not (len(head) == 14 and head[3] & 4 and head[12:14] == b"BC")


#: the empty block that ends every complete BGZF file
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def is_truncated_bgzf(path: str | os.PathLike) -> bool:
    """Whether ``path`` is BGZF-compressed but lacks the end-of-file block that every complete BGZF file has."""
    with open(path, "rb") as fh:
        head = fh.read(14)
        if not (len(head) == 14 and head[:2] == b"\x1f\x8b" and head[3] & 4 and head[12:14] == b"BC"):
            return False
        fh.seek(0, os.SEEK_END)
        if fh.tell() < len(BGZF_EOF):
            return True
        fh.seek(-len(BGZF_EOF), os.SEEK_END)
        return fh.read() != BGZF_EOF


def _decompressed_copy(path: Path, name: str) -> Path:
    """A temporary plain copy of the gzip file ``path`` (called ``name`` in messages), written by streaming."""
    fd, copy = tempfile.mkstemp(prefix=f"lrgen-{path.name}-", suffix=".vcf")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
    except (OSError, EOFError) as exc:
        os.unlink(copy)
        raise LrgenError(f"{name}: cannot decompress this gzip file ({exc})") from exc
    return Path(copy)


def _remove(*paths: Path | None) -> None:
    for path in paths:
        if path is not None:
            path.unlink(missing_ok=True)


class VcfReader:
    """Streams ``(record, variants)`` pairs: the pysam record (to copy into a writer) and its per-ALT variants.

    ``path`` ``-`` reads standard input. ``name`` is the input as messages call it (``<stdin>`` for ``-``);
    ``path`` is the file actually read (for standard input, its temporary copy).
    """

    def __init__(self, path: str | os.PathLike):
        self.name = STDIN_NAME if is_stdio(path) else str(path)
        spooled = spool_stdin("the VCF") if is_stdio(path) else None
        self.path = spooled or Path(path)
        if not self.path.is_file():
            what = "is a folder, not a VCF file" if self.path.is_dir() else "not found"
            raise LrgenError(f"VCF file {self.path} {what}")
        try:
            copy = _decompressed_copy(self.path, self.name) if is_plain_gzip(self.path) else None
        except LrgenError:
            _remove(spooled)
            raise
        self._remove_temporary = weakref.finalize(self, _remove, copy, spooled)  # once: on close, collection, exit
        try:
            with quiet_htslib():  # lrgen says what matters; no [E::idx_find_and_load] for unindexed inputs
                self._file = pysam.VariantFile(str(copy or self.path))
        except (OSError, ValueError):
            truncated = copy is None and is_truncated_bgzf(self.path)
            self._remove_temporary()
            if truncated:
                raise LrgenError(f"{self.name}: the bgzip file is truncated (no end-of-file block): download or "
                                 "compress it again (bgzip -c file.vcf > file.vcf.gz)") from None
            raise LrgenError(f"{self.name}: not a readable VCF/BCF; it needs a header starting with "
                             "'##fileformat=VCF'") from None
        self.records_read = 0

    @property
    def header(self) -> pysam.VariantHeader:
        return self._file.header

    def __iter__(self) -> Iterator[tuple[pysam.VariantRecord, list[Variant]]]:
        last: pysam.VariantRecord | None = None

        def where() -> str:
            after = f" after {last.chrom}:{last.pos}" if last is not None else ""
            return f"{self.name}: data record {self.records_read + 1}{after}{self._locate(self.records_read + 1)}"

        for record in self._parsed(iter(self._file), where):
            self.records_read += 1
            last = record
            yield record, self._split(record)

    def _parsed(self, records: Iterator[pysam.VariantRecord], where: Callable[[], str]
                ) -> Iterator[pysam.VariantRecord]:
        """``records`` with htslib quiet once for the whole read; a record that cannot be parsed stops it with one
        line that begins with ``where()``."""
        with quiet_htslib():
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    return
                except (OSError, ValueError) as exc:
                    raise LrgenError(f"{where()} cannot be parsed; a record needs 8 tab-separated columns with an "
                                     f"integer POS (htslib: {exc})") from exc
                yield record

    def fetch(self, regions: Sequence[Region]) -> Iterator[tuple[pysam.VariantRecord, list[Variant]]] | None:
        """The records overlapping ``regions``, region by region in the order given, each record once (contig names
        matched exactly first, then as aliases), read through the file's index; None when it has none (a
        plain-text VCF, standard input) or only one older than the file (rewritten since): read it all. A fetched
        record's variants have ``record_number`` 0: its place in the file is not known."""
        if self._file.index is None or self._stale_index():
            return None
        return self._fetched(regions)

    def _stale_index(self) -> bool:
        """Whether the index beside the file (``.tbi``, ``.csi``) is older than the file."""
        indexes = [p for p in (Path(f"{self.path}.tbi"), Path(f"{self.path}.csi")) if p.is_file()]
        return bool(indexes) and max(p.stat().st_mtime for p in indexes) < self.path.stat().st_mtime

    def _fetched(self, regions: Sequence[Region]) -> Iterator[tuple[pysam.VariantRecord, list[Variant]]]:
        contigs = set(self.header.contigs)
        self.records_read = 0
        for i, region in enumerate(regions):
            contig = next((c for c in alias_candidates(region.chrom) if c in contigs), None)
            if contig is None:
                continue
            try:
                records = self._file.fetch(contig, region.start, region.end)
            except ValueError:  # a contig of the header without records in the index
                continue
            earlier = [r for r in regions[:i] if same_contig(r.chrom, region.chrom)]
            where = f"{self.name}: a record in {region.chrom}:{region.start + 1}-{region.end}"
            for record in self._parsed(records, lambda where=where: where):
                if any(record.start < r.end and record.stop > r.start for r in earlier):
                    continue  # given with an earlier region it also overlaps
                yield record, self._split(record)

    def _locate(self, record_number: int) -> str:
        """`` (line L: '...')`` for the given data record of a text VCF, or ``""`` (BCF, unreadable)."""
        with open(self.path, "rb") as fh:
            opener = gzip.open if fh.read(2) == b"\x1f\x8b" else open
        seen = 0
        try:
            with opener(self.path, "rt", errors="replace") as fh:
                for line_no, line in enumerate(fh, start=1):
                    if line_no == 1 and line.startswith("BCF"):
                        return ""
                    if not line.startswith("#"):
                        seen += 1
                        if seen == record_number:
                            text = line.rstrip("\n")
                            return f" (line {line_no}: {text[:60] + ('...' if len(text) > 60 else '')!r})"
        except (OSError, EOFError):
            pass
        return ""

    def _split(self, record: pysam.VariantRecord) -> list[Variant]:
        variant_id = record.id if record.id not in (None, ".") else None
        alts = record.alts or (None,)
        return [
            Variant(record.chrom, record.pos, variant_id, record.ref, alt, i, classify(record.ref, alt),
                    self.records_read)
            for i, alt in enumerate(alts)
        ]

    def variants(self) -> Iterator[Variant]:
        """Only the per-ALT variants, in file order."""
        for _, variants in self:
            yield from variants

    def close(self) -> None:
        self._file.close()
        self._remove_temporary()

    def __enter__(self) -> VcfReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_vcf(path: str | os.PathLike) -> VcfReader:
    """Open a VCF/BCF (plain, bgzipped, gzipped or BCF) for streaming."""
    return VcfReader(path)


def check_ref(variant: Variant, genome: Genome) -> bool:
    """Whether REF equals the genome's bases at the variant (case-insensitive, contig names aliased)."""
    return genome.fetch(variant.chrom, variant.start, variant.end) == variant.ref.upper()
