"""Genomic file formats, one module each: ``genome`` (FASTA), ``vcf``, ``scored_vcf`` (what score-vcf writes, read
back), ``bed`` and ``bigwig`` (bigWig/bedGraph); ``streams``: standard input and output named ``-``.

Import the module you need (``from lrgen.io.genome import Genome``); nothing is imported here, so reading a FASTA
does not need pyBigWig.
"""
