"""Genomic file formats, one module each: ``genome`` (FASTA), ``vcf``, ``bed`` and ``bigwig`` (bigWig/bedGraph).

Import the module you need (``from lrgen.io.genome import Genome``); nothing is imported here, so reading a FASTA
does not need pyBigWig.
"""
