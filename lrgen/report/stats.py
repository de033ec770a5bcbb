"""``lrgen stats``: a scored VCF summed up in one pass — alleles by outcome, each score's distribution and the
variants with the most extreme scores (:mod:`.table` lays it out)."""

from __future__ import annotations

import heapq
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lrgen.errors import LrgenError
from lrgen.io.scored_vcf import NOT_APPLICABLE, SIGNED, ScoredAllele, ScoredVcf, pick_value, substitution_applies

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
DEFAULT_TOP = 10
_SUBSTITUTION_VALUES = ("llr", "wt_marginal")


@dataclass
class ValueStats:
    """One score value over the file: every number it has, and why scored alleles have none (reason -> count)."""

    name: str
    values: np.ndarray
    missing: Counter = field(default_factory=Counter)

    def quantiles(self) -> np.ndarray | None:
        """The values at :data:`QUANTILES` (min, 1%, ..., max), None when there are none."""
        return np.quantile(self.values, QUANTILES) if self.values.size else None


@dataclass
class VcfStats:
    """What a scored VCF holds: ``outcomes`` counts alleles by ``LRGEN_STATUS`` (``scored`` or a skip reason),
    ``kinds`` the scored alleles by kind (snv, mnp, insertion, ...), ``scores`` each value's numbers, and ``top`` the
    alleles with the most extreme ``ranked_by`` values, most extreme first (largest ``|value|`` for a signed score,
    largest value for a distance)."""

    source: str
    meta: dict[str, str]
    records: int
    alleles: int
    outcomes: Counter
    kinds: Counter
    scores: dict[str, ValueStats]
    ranked_by: str
    top: list[ScoredAllele]


@dataclass
class StatsOptions:
    """Everything ``lrgen stats`` takes (the flags carry the same names): the scored ``vcf`` (``-``: standard
    input), the ``score`` that ranks the ``top`` variants (its TSV column, ``--score`` name or INFO key; default the
    file's first value)."""

    vcf: str | os.PathLike
    score: str | None = None
    top: int = DEFAULT_TOP


def _why_missing(value: str, allele: ScoredAllele) -> str:
    why = substitution_applies(allele.variant) if value in _SUBSTITUTION_VALUES else None
    return f"{why}: {NOT_APPLICABLE[why]}" if why else "not given"


def vcf_stats(options: StatsOptions) -> VcfStats:
    """Sum up a VCF written by ``lrgen score-vcf`` in one pass."""
    top = options.top
    if top < 0:
        raise LrgenError(f"--top must be 0 or more, got {top}")
    with ScoredVcf(options.vcf) as vcf:
        ranked_by = pick_value(options.score, vcf.values, vcf.name)
        signed = ranked_by in SIGNED
        numbers: dict[str, list[float]] = {v: [] for v in vcf.values}
        missing: dict[str, Counter] = {v: Counter() for v in vcf.values}
        outcomes: Counter = Counter()
        kinds: Counter = Counter()
        heap: list[tuple[float, int, ScoredAllele]] = []  # the `top` largest (key, -order: the first of ties) so far
        records = alleles = 0
        for alleles, allele in enumerate(vcf.alleles(), start=1):
            records = allele.variant.record_number  # every record gives at least one allele (ALT '.' too)
            outcomes[allele.status or "no status"] += 1
            if allele.status != "scored":
                continue
            kinds[allele.variant.kind] += 1
            for value, number in allele.values.items():
                if number is None:
                    missing[value][_why_missing(value, allele)] += 1
                else:
                    numbers[value].append(number)
            number = allele.values[ranked_by]
            if number is not None and top:
                item = (abs(number) if signed else number, -alleles, allele)
                (heapq.heappush if len(heap) < top else heapq.heappushpop)(heap, item)
        meta = vcf.meta
        source = vcf.name
    scores = {v: ValueStats(v, np.asarray(numbers[v], dtype=np.float64), missing[v]) for v in numbers}
    ranked = [allele for _, _, allele in sorted(heap, key=lambda item: item[:2], reverse=True)]
    return VcfStats(source, meta, records, alleles, outcomes, kinds, scores, ranked_by, ranked)
