"""Pretraining data: genomes held as compact byte arrays, training/validation segments, random windows.

Each FASTA file is one species. Its contigs are read once (plain, gzip or bgzip, no index needed) into uint8 arrays of
``A C G T N`` (other letters become N; 1 byte per base, so tens of Mbp are cheap) and windows are sliced from them.
A window is drawn by a counter-based generator seeded by ``(seed, rank, index)``: batch ``index`` of rank ``rank``
is the same whatever happened before, so resuming needs only the counter and ranks draw different windows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lrgen.errors import LrgenError
from lrgen.io.bed import parse_region as parse_samtools_region
from lrgen.io.genome import same_contig
from lrgen.tokenizer import CharTokenizer, KmerTokenizer

_BYTE = np.full(256, ord("N"), dtype=np.uint8)
for _c in "ACGT":
    _BYTE[ord(_c)] = _BYTE[ord(_c.lower())] = ord(_c)
_COMPLEMENT = np.arange(256, dtype=np.uint8)
for _a, _b in ("AT", "TA", "CG", "GC"):
    _COMPLEMENT[ord(_a)] = ord(_b)
N_BYTE = ord("N")


@dataclass(frozen=True)
class Contig:
    name: str
    seq: np.ndarray  # uint8 ASCII over b"ACGTN", read-only


@dataclass(frozen=True)
class Species:
    name: str
    path: str
    contigs: tuple[Contig, ...]

    @property
    def length(self) -> int:
        return sum(c.seq.size for c in self.contigs)


@dataclass(frozen=True)
class Segment:
    """Half-open base range ``[start, end)`` of contig ``contig`` of species ``species`` (indices)."""

    species: int
    contig: int
    start: int
    end: int


@dataclass(frozen=True)
class Region:
    """A genomic region, 0-based half-open; ``end=None`` means to the contig end."""

    chrom: str
    start: int
    end: int | None


def normalise_bases(seq: str) -> np.ndarray:
    """``seq`` as a read-only uint8 array over ``ACGTN`` (uppercased; every other letter is N)."""
    arr = _BYTE[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]
    arr.flags.writeable = False
    return arr


def reverse_complement_bases(window: np.ndarray) -> np.ndarray:
    """Reverse complement of a uint8 ``ACGTN`` array."""
    return _COMPLEMENT[window[::-1]]


@functools.lru_cache(maxsize=None)
def load_species(path: str) -> Species:
    """Read every record of a FASTA file (plain, gzip or bgzip) into memory, once per process."""
    from lrgen.io.genome import iter_fasta_records

    p = Path(path)
    if not p.is_file():
        raise LrgenError(f"{path}: FASTA file not found")
    contigs = tuple(Contig(name, normalise_bases(seq)) for name, seq in iter_fasta_records(p))
    if not contigs or all(c.seq.size == 0 for c in contigs):
        raise LrgenError(f"{path}: no sequence found; is this a FASTA file?")
    return Species(name=species_name(p), path=str(p), contigs=contigs)


def species_name(path: str | Path) -> str:
    """The name a FASTA file's species goes by: the file name without ``.gz``/``.bgz`` and then
    ``.fa``/``.fasta``/``.fna``."""
    name = Path(path).name
    for suffix in (".gz", ".bgz", ".fa", ".fasta", ".fna"):
        name = name.removesuffix(suffix)
    return name


def read_fasta_list(path: str | Path) -> list[str]:
    """FASTA paths from a text file, one per line (blank lines and ``#`` comments skipped; relative to the file)."""
    p = Path(path)
    if not p.is_file():
        raise LrgenError(f"{p}: FASTA list not found")
    out = []
    for line in p.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            entry = Path(line)
            out.append(str(entry if entry.is_absolute() else p.parent / entry))
    if not out:
        raise LrgenError(f"{p}: no FASTA path listed")
    return out


def parse_region(text: str) -> Region:
    """``chrom`` or ``chrom:start-end`` with 1-based inclusive coordinates (samtools style), e.g. ``20:1000000-4000000``."""
    return Region(*parse_samtools_region(text))


def split_segments(
    species: Sequence[Species], val_regions: Sequence[Region] = (), val_fraction: float = 0.0
) -> tuple[list[Segment], list[Segment]]:
    """Training and validation segments: each region, and the last ``val_fraction`` of every contig, are held out."""
    train: list[Segment] = []
    val: list[Segment] = []
    matched = [False] * len(val_regions)
    for si, sp in enumerate(species):
        for ci, contig in enumerate(sp.contigs):
            n = contig.seq.size
            held: list[tuple[int, int]] = []
            for ri, region in enumerate(val_regions):
                if same_contig(region.chrom, contig.name):
                    matched[ri] = True
                    start, end = min(region.start, n), min(n if region.end is None else region.end, n)
                    if end > start:
                        held.append((start, end))
            tail = int(round(val_fraction * n))
            if tail:
                held.append((n - tail, n))
            held.sort()
            merged: list[list[int]] = []
            for start, end in held:
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            cursor = 0
            for start, end in merged:
                if start > cursor:
                    train.append(Segment(si, ci, cursor, start))
                val.append(Segment(si, ci, start, end))
                cursor = end
            if cursor < n:
                train.append(Segment(si, ci, cursor, n))
    for region, ok in zip(val_regions, matched):
        if not ok:
            names = sorted({c.name for sp in species for c in sp.contigs})[:10]
            raise LrgenError(f"validation region {region.chrom!r} matches no contig of the training FASTA files "
                             f"(contigs include {', '.join(names)})")
    return train, val


def whole_segments(species: Sequence[Species], offset: int = 0) -> list[Segment]:
    """Every contig of ``species`` whole, with species indices starting at ``offset``."""
    return [Segment(offset + si, ci, 0, c.seq.size) for si, sp in enumerate(species) for ci, c in enumerate(sp.contigs)]


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (for counter-based generators)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class WindowSampler:
    """Random windows of ``context`` bases from ``segments``, proportional to length or by per-species ``weights``.

    Windows with more than ``max_n_fraction`` N are redrawn; with ``rc_augment`` half of them (at random) are
    reverse-complemented. ``draw(index, size)`` is a pure function of ``(seed, rank, index)``; ``next_batch`` walks
    ``index`` upward and ``state_dict`` records it.
    """

    def __init__(
        self,
        species: Sequence[Species],
        segments: Sequence[Segment],
        context: int,
        *,
        weights: Sequence[float] | None = None,
        max_n_fraction: float = 0.1,
        rc_augment: bool = False,
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        self.species = list(species)
        self.context = int(context)
        self.max_n = int(np.floor(max_n_fraction * self.context))
        self.rc_augment = rc_augment
        self.seed = seed
        self.rank = rank
        self.index = 0
        if weights is not None and len(weights) != len(self.species):
            raise LrgenError(f"{len(weights)} weights given for {len(self.species)} FASTA files: give one per file")
        per_species: dict[int, list[Segment]] = {}
        for seg in segments:
            if seg.end - seg.start >= self.context:
                per_species.setdefault(seg.species, []).append(seg)
        if not per_species:
            longest = max((s.end - s.start for s in segments), default=0)
            raise LrgenError(f"no sequence is as long as the context ({self.context} bp; longest usable stretch "
                             f"{longest} bp): lower --context")
        self._keys = sorted(per_species)
        self._segments = [per_species[k] for k in self._keys]
        self._cum_starts = [np.cumsum([s.end - s.start - self.context + 1 for s in segs]) for segs in self._segments]
        totals = np.array([c[-1] for c in self._cum_starts], dtype=np.float64)
        if weights is None:
            p = totals
        else:
            p = np.array([float(weights[k]) for k in self._keys])
            if (p < 0).any() or p.sum() <= 0:
                raise LrgenError(f"species weights must be non-negative with a positive sum, got {list(weights)}")
        self._p = p / p.sum()

    def draw_locations(self, index: int, size: int) -> list[tuple[int, int, int, bool]]:
        """Batch ``index`` as ``(species, contig, start, reverse_complement)``, deterministic in ``(seed, rank, index)``."""
        rng = np.random.Generator(np.random.PCG64(derive_seed(self.seed, self.rank, index)))
        out: list[tuple[int, int, int, bool]] = []
        attempts = 0
        while len(out) < size:
            attempts += 1
            if attempts > 100 * size + 100:
                raise LrgenError(f"could not find windows of {self.context} bp with at most {self.max_n} N after "
                                 f"{attempts - 1} draws: raise --max-n-fraction or check the FASTA files")
            k = int(rng.choice(len(self._keys), p=self._p))
            cum = self._cum_starts[k]
            u = int(rng.integers(cum[-1]))
            j = int(np.searchsorted(cum, u, side="right"))
            seg = self._segments[k][j]
            start = seg.start + u - (int(cum[j - 1]) if j else 0)
            window = self.species[seg.species].contigs[seg.contig].seq[start : start + self.context]
            if np.count_nonzero(window == N_BYTE) > self.max_n:
                continue
            rc = bool(self.rc_augment and rng.random() < 0.5)
            out.append((seg.species, seg.contig, start, rc))
        return out

    def window(self, species: int, contig: int, start: int, length: int, rc: bool = False) -> np.ndarray:
        """Bases ``[start, start + length)`` of a contig (reverse-complemented when ``rc``)."""
        seq = self.species[species].contigs[contig].seq[start : start + length]
        return reverse_complement_bases(seq) if rc else seq

    def draw(self, index: int, size: int) -> list[np.ndarray]:
        """Batch ``index``: ``size`` windows (uint8 ``ACGTN`` arrays), deterministic in ``(seed, rank, index)``."""
        return [self.window(s, c, start, self.context, rc) for s, c, start, rc in self.draw_locations(index, size)]

    def next_batch(self, size: int) -> tuple[int, list[np.ndarray]]:
        """The next batch and its index."""
        index = self.index
        self.index += 1
        return index, self.draw(index, size)

    def state_dict(self) -> dict[str, int]:
        return {"index": self.index, "seed": self.seed, "rank": self.rank}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.index = int(state["index"])


def tokenize_windows(windows: Sequence[np.ndarray], tokenizer: CharTokenizer | KmerTokenizer) -> torch.Tensor:
    """Token ids ``(B, T)`` of base windows with a model's ``tokenizer``: the windows' own tokens (no ``<cls>``),
    ragged rows (6-mers) right-padded with its pad id."""
    rows = [tokenizer.tokenize(w.tobytes().decode("ascii"))[0] for w in windows]
    out = np.full((len(rows), max(r.size for r in rows)), tokenizer.pad_id, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return torch.from_numpy(out)
