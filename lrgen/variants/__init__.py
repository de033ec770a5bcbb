"""Variant scoring (``lrgen score-vcf``): every ALT of a VCF scored with megabase context."""

from lrgen.variants.score_vcf import Summary, score_vcf

__all__ = ["Summary", "score_vcf"]
