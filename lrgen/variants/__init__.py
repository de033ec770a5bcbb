"""Variant scoring (``lrgen score-vcf``): every ALT of a VCF scored with megabase context."""

from lrgen.variants.score_vcf import ScoreVcfOptions, Summary, score_vcf

__all__ = ["ScoreVcfOptions", "Summary", "score_vcf"]
