"""The VCF that ``lrgen score-vcf`` writes, read back: per ALT allele its ``LRGEN_STATUS`` and score values.

The INFO keys are the format's, defined here once: the writer (:mod:`lrgen.variants`) and the readers (``lrgen
stats``, ``lrgen plot``) take them from this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

from lrgen.errors import LrgenError
from lrgen.io.vcf import Variant, open_vcf

if TYPE_CHECKING:
    from lrgen.io.bed import Region

#: value name (the TSV column) -> INFO key, in the order score-vcf writes them
SCORE_FIELDS = {"llr": "LRGEN_LLR", "wt_marginal": "LRGEN_WTM", "emb_cos": "LRGEN_EMB_COS",
                "emb_l2": "LRGEN_EMB_L2", "head": "LRGEN_HEAD"}
STATUS_FIELD = "LRGEN_STATUS"
#: the values of LRGEN_STATUS besides "scored": skip reason -> what it means (also in the TSV and the summary)
SKIP_REASONS = {
    "symbolic": "symbolic ALT allele such as <DEL> (no sequence to score)",
    "breakend": "breakend ALT allele (no sequence to score)",
    "star": "'*' ALT allele (a deletion overlapping this site is scored at its own record)",
    "missing": "missing ALT allele '.'",
    "unknown_contig": "contig is not in the genome",
    "past_contig_end": "REF reaches past the end of its contig (the genome has no bases there)",
    "ref_mismatch": "REF does not match the genome",
    "too_long": "REF or ALT longer than a quarter of the context",
    "no_score_applies": "none of the requested scores is defined for this allele",
}
#: why a scored allele has no value for a score (the TSV's note)
NOT_APPLICABLE = {
    "indel": "defined for SNVs and MNPs only",
    "non_acgt": "REF or ALT has a base other than A/C/G/T",
}
_ACGT = frozenset("ACGT")
#: the values that may take either sign (log-ratios, a head's delta); the embedding distances are >= 0
SIGNED = frozenset({"llr", "wt_marginal", "head"})


@dataclass(frozen=True)
class ScoredAllele:
    """One ALT allele of a scored VCF: ``status`` is ``scored`` or the reason it was skipped (``missing`` for an
    ALT ``.``; None where the record carries no status), ``values`` maps each of the file's values to the
    allele's number or None (``.``)."""

    variant: Variant
    status: str | None
    values: dict[str, float | None]


def substitution_applies(variant: Variant) -> str | None:
    """Why the per-base log-ratio scores (``llr``, ``wt_marginal``) are not defined for ``variant`` (a key of
    :data:`NOT_APPLICABLE`), or None when they are: SNVs and MNPs of A/C/G/T (REF and ALT of equal length)."""
    if variant.kind not in ("snv", "mnp"):
        return "indel"
    if not set(variant.ref.upper()) <= _ACGT or not set((variant.alt or "").upper()) <= _ACGT:
        return "non_acgt"
    return None


def pick_value(name: str | None, available: tuple[str, ...], source: str) -> str:
    """The score value a user names, as its TSV column (``wt_marginal``), its ``--score`` (``wt-marginal``) or its
    INFO key (``LRGEN_WTM``); None picks the first of ``available`` (the values of ``source``)."""
    if not available:
        raise LrgenError(f"{source} holds no score values (none of {', '.join(SCORE_FIELDS.values())})")
    if name is None:
        return available[0]
    by_key = {key.lower(): value for value, key in SCORE_FIELDS.items()}
    value = by_key.get(name.strip().lower(), name.strip().lower().replace("-", "_"))
    if value not in available:
        raise LrgenError(f"{source} has no {name!r} values; it has {', '.join(available)}")
    return value


class ScoredVcf:
    """A VCF written by ``lrgen score-vcf`` (a path, or ``-`` for standard input), opened for streaming.

    ``name`` is the input as messages call it, ``values`` the score values its header declares (in
    :data:`SCORE_FIELDS` order) and ``meta`` its ``##lrgen_*`` lines (``model``, ``context``, ``command``, ...).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._reader = open_vcf(path)
        self.name = self._reader.name
        info = self._reader.header.info
        if STATUS_FIELD not in info:
            self._reader.close()
            raise LrgenError(f"{self.name}: no {STATUS_FIELD} field in the header, so it was not written by lrgen "
                             "score-vcf: score it first (lrgen score-vcf IN.vcf.gz ... -o scored.vcf.gz)")
        self.values = tuple(value for value, key in SCORE_FIELDS.items() if key in info)
        self.meta = {record.key.removeprefix("lrgen_"): record.value for record in self._reader.header.records
                     if record.key.startswith("lrgen_") and record.value is not None}

    def alleles(self, regions: Sequence[Region] | None = None) -> Iterator[ScoredAllele]:
        """Every ALT allele in file order (a multi-allelic record gives one per ALT). With ``regions`` an indexed file
        is read only there, region by region (:meth:`lrgen.io.vcf.VcfReader.fetch`); an unindexed one is still read
        whole, so callers filter."""
        records = self._reader.fetch(regions) if regions is not None else None
        for record, variants in records if records is not None else self._reader:
            statuses = record.info.get(STATUS_FIELD)
            columns = {value: record.info.get(SCORE_FIELDS[value]) for value in self.values}
            for variant in variants:
                i = variant.alt_index
                if statuses is not None:
                    status = statuses[i] if isinstance(statuses, tuple) else statuses
                else:
                    status = "missing" if variant.kind == "missing" else None
                values = {value: (column[i] if column is not None and i < len(column) else None)
                          for value, column in columns.items()}
                yield ScoredAllele(variant, status, values)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> ScoredVcf:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
