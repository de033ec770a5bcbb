"""Per-ALT triage: which alleles are scored, which are skipped and why, and which scores apply to each kind."""

from __future__ import annotations

from dataclasses import dataclass, field

from lrgen.io.genome import Genome
from lrgen.io.vcf import Variant, check_ref, is_scorable
from lrgen.errors import LrgenError

_KIND_REASON = {"symbolic": "symbolic", "breakend": "breakend", "star": "star", "missing": "missing"}
ON_REF_MISMATCH = ("error", "skip", "score")


@dataclass
class Allele:
    """One ALT allele of a record and its outcome: the scores it got, or why it was skipped."""

    variant: Variant
    skip: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)  # score name -> why it has no value

    @property
    def ref(self) -> str:
        return self.variant.ref.upper()

    @property
    def alt(self) -> str:
        return (self.variant.alt or "").upper()

    @property
    def status(self) -> str:
        return self.skip or "scored"


@dataclass
class Entry:
    """One VCF record (kept for writing) with its alleles and the genome's name of its contig."""

    record: object  # pysam.VariantRecord
    alleles: list[Allele]
    contig: str | None
    number: int  # 1-based record number in the input
    outside: bool = False  # outside --regions: counted, not written

    @property
    def scorable(self) -> list[Allele]:
        return [a for a in self.alleles if a.skip is None]


def triage(variants: list[Variant], record, genome: Genome, *, on_ref_mismatch: str, max_allele: int,
           source: str) -> Entry:
    """Classify every ALT of one record: scorable, or skipped with a reason code of :data:`lrgen.io.scored_vcf.SKIP_REASONS`."""
    contig = genome.resolve(variants[0].chrom) if variants[0].chrom in genome else None
    alleles = []
    ref_ok: bool | None = None
    for variant in variants:
        allele = Allele(variant)
        if not is_scorable(variant.kind):
            allele.skip = _KIND_REASON[variant.kind]
        elif contig is None:
            allele.skip = "unknown_contig"
        elif variant.end > genome.length(contig):
            allele.skip = "past_contig_end"
        elif max(len(variant.ref), len(variant.alt or "")) > max_allele:
            allele.skip = "too_long"
        else:
            if ref_ok is None:
                ref_ok = check_ref(variant, genome)
            if not ref_ok:
                if on_ref_mismatch == "error":
                    found = genome.fetch(variant.chrom, variant.start, variant.end)
                    raise LrgenError(
                        f"{source}: record {variant.record_number} ({variant}): REF {variant.ref} does not match "
                        f"the genome ({found}); check the genome build, or use --on-ref-mismatch skip|score"
                    )
                if on_ref_mismatch == "skip":
                    allele.skip = "ref_mismatch"
        alleles.append(allele)
    return Entry(record, alleles, contig, variants[0].record_number)
