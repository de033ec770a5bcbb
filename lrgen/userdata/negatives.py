"""Negative regions drawn to match the positives in length and GC content, away from every positive.

For each positive (in file order, from one seeded generator) :data:`CANDIDATES` intervals of its length are drawn
uniformly on its contig; a candidate is dropped when its span (widened to the pooled width when that is longer)
touches a positive, when more than :data:`MAX_N` of it is N, or when it repeats an earlier negative. Of the rest, the
``per_positive`` whose GC content (G+C over A/C/G/T) is closest to the positive's are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrgen.io.bed import Region, RegionIndex, centred_window
from lrgen.io.genome import Genome

CANDIDATES = 32
MAX_N = 0.1


def gc_content(seq: str) -> float:
    """G+C over A/C/G/T bases (0.5 when there is none)."""
    acgt = sum(seq.count(b) for b in "ACGT")
    return (seq.count("G") + seq.count("C")) / acgt if acgt else 0.5


@dataclass
class Drawn:
    """The drawn negatives and how many positives got fewer than asked for."""

    regions: list[Region]
    short: int


def draw_negatives(positives: list[Region], genome: Genome, per_positive: int, width: int, seed: int) -> Drawn:
    """GC- and length-matched negatives for ``positives`` (contigs named as the genome names them); ``width`` is
    the pooled width, so a negative's pooled centre never touches a positive either."""
    rng = np.random.default_rng(seed)
    avoid = RegionIndex(positives, genome)
    sizes = genome.contig_sizes
    taken: set[tuple[str, int]] = set()
    drawn: list[Region] = []
    short = 0
    for positive in positives:
        length = len(positive)
        room = sizes[positive.chrom] - length
        if room < 0:
            short += 1
            continue
        target = gc_content(genome.fetch(positive.chrom, positive.start, positive.end))
        found: list[tuple[float, int]] = []
        for start in rng.integers(0, room + 1, CANDIDATES).tolist():
            lo, hi = centred_window(start, start + length, max(length, width))
            if (positive.chrom, start) in taken or avoid.overlaps(positive.chrom, min(lo, start),
                                                                  max(hi, start + length)):
                continue
            seq = genome.fetch(positive.chrom, start, start + length)
            if seq.count("N") > MAX_N * length:
                continue
            found.append((abs(gc_content(seq) - target), start))
        chosen = sorted(set(found))[:per_positive]
        short += len(chosen) < per_positive
        for _, start in chosen:
            taken.add((positive.chrom, start))
            drawn.append(Region(positive.chrom, start, start + length, None, 0))
    return Drawn(drawn, short)
