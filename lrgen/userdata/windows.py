"""Windows of user-data examples: ``context`` bp centred on each example (:func:`lrgen.io.bed.centred_window`),
N-padded past contig ends; the :class:`~lrgen.training.windows.Windows` of the user-data job."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lrgen.io.bed import centred_window
from lrgen.io.genome import Genome
from lrgen.userdata.examples import Example, Examples


@dataclass
class UserWindows:
    """Examples whose windows passed the N check, and counts of those that did not."""

    records: list[Example]
    context: int
    genome: Genome
    examples: Examples
    n_bins: int = 0  # bins pooling: target bins per window, centred
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def variant(self) -> bool:
        return self.examples.pooling == "variant"

    def start(self, rec: Example) -> int:
        return centred_window(rec.center, rec.center + 1, self.context)[0]

    def sequence(self, rec: Example) -> str:
        start = self.start(rec)
        return self.genome.fetch(rec.chrom, start, start + self.context)

    def alt_sequence(self, seq: str, rec: Example) -> str:
        mid = self.context // 2
        return seq[:mid] + rec.alt + seq[mid + len(rec.alt) :]

    def labels(self, rec: Example) -> np.ndarray:
        if rec.label is not None:
            return rec.label
        bins = self.examples.targets.bin_bp * self.n_bins
        return self.examples.targets.bins(rec.chrom, self.start(rec) + self.context // 2 - bins // 2, self.n_bins)


def make_windows(examples: Examples, records: list[Example], genome: Genome, context: int, max_n_fraction: float,
                 n_bins: int = 0) -> UserWindows:
    """The windows of ``records`` (examples of one split), without those more than ``max_n_fraction`` N."""
    kept = []
    for rec in records:
        start = centred_window(rec.center, rec.center + 1, context)[0]
        seq = genome.fetch(rec.chrom, start, start + context)
        if context - sum(seq.count(b) for b in "ACGT") <= max_n_fraction * context:
            kept.append(rec)
    counts = {"rows": len(records), "kept": len(kept), "n_heavy": len(records) - len(kept)}
    return UserWindows(kept, context, genome, examples, n_bins, counts)
