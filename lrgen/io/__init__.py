"""Genomic file formats: FASTA (Genome), VCF, BED and bigWig/bedGraph tracks."""

from lrgen.io.bed import Region, merge_regions, read_bed
from lrgen.io.bigwig import TrackWriter, read_bigwig_values
from lrgen.io.genome import Genome, iter_fasta_records
from lrgen.io.vcf import Variant, VcfReader, check_ref, classify, is_scorable, open_vcf

__all__ = [
    "Genome",
    "Region",
    "TrackWriter",
    "Variant",
    "VcfReader",
    "check_ref",
    "classify",
    "is_scorable",
    "iter_fasta_records",
    "merge_regions",
    "open_vcf",
    "read_bed",
    "read_bigwig_values",
]
