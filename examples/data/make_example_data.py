"""Rebuild the bundled example data from the full files in a data folder (default ../shared/data).

    python examples/data/make_example_data.py [DATA_DIR]

Writes chr20_1-1.2Mb.fa.gz (+ .fai, .gzi) and example.vcf.gz (+ .tbi) next to this script.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pysam

HERE = Path(__file__).resolve().parent
FASTA_END = 1_200_000  # bases of contig 20 kept (0-based exclusive end)
VCF_FIRST, VCF_LAST = 1_000_000, 1_060_000  # 1-based inclusive POS range of the kept records


def make_fasta(source: Path, target: Path) -> None:
    seq = pysam.FastaFile(str(source)).fetch("20", 0, FASTA_END)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "chr20.fa"
        lines = [seq[i : i + 60] for i in range(0, len(seq), 60)]
        plain.write_text(">20\n" + "\n".join(lines) + "\n")
        pysam.tabix_compress(str(plain), str(target), force=True)
    for index in (f"{target}.fai", f"{target}.gzi"):
        Path(index).unlink(missing_ok=True)
    pysam.faidx(str(target))  # writes .fai and .gzi


def make_vcf(source: Path, target: Path) -> None:
    tbx = pysam.TabixFile(str(source))
    records = [
        line for line in tbx.fetch("20", VCF_FIRST - 1, VCF_LAST)
        if VCF_FIRST <= int(line.split("\t", 2)[1]) <= VCF_LAST
    ]
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "example.vcf"
        plain.write_text("\n".join([*tbx.header, *records]) + "\n")
        pysam.tabix_compress(str(plain), str(target), force=True)
    pysam.tabix_index(str(target), preset="vcf", force=True)


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data"
    make_fasta(data / "human" / "20.fa.gz", HERE / "chr20_1-1.2Mb.fa.gz")
    make_vcf(data / "human" / "chr20_1-4Mb.sites.vcf.gz", HERE / "example.vcf.gz")


if __name__ == "__main__":
    main()
