"""BED: parsing (comments, track/browser lines, whitespace, gzip), validation errors, merging."""

from __future__ import annotations

import gzip
import io
import sys

import pytest

from lrgen.errors import LrgenError
from lrgen.io.bed import Region, merge_regions, read_bed
from lrgen.io.genome import Genome

from helpers import write_fasta


@pytest.fixture
def genome(tmp_path):
    return Genome(write_fasta(tmp_path / "g.fa", {"1": "A" * 100, "chrM": "C" * 50}))


def test_read_bed_skips_headers_and_keeps_names(tmp_path, genome):
    path = tmp_path / "r.bed"
    path.write_text(
        "browser position chr1:1-100\ntrack name=test\n# comment\n\n"
        "chr1\t10\t20\tpromoter\t0\t+\n"
        "MT 5 15\n"
        "1\t0\t100\n"
    )
    regions = read_bed(path, genome)
    assert regions == [
        Region("chr1", 10, 20, "promoter", 5),
        Region("MT", 5, 15, None, 6),
        Region("1", 0, 100, None, 7),
    ]
    assert len(regions[0]) == 10


def test_read_bed_gzip(tmp_path):
    path = tmp_path / "r.bed.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("chrX\t1\t2\n")
    assert read_bed(path) == [Region("chrX", 1, 2, None, 1)]


@pytest.mark.parametrize(
    "line, message",
    [
        ("chr1\t10\n", "at least 3 columns"),
        ("chr1\tten\t20\n", "must be integers"),
        ("chr1\t-1\t20\n", "negative"),
        ("chr1\t20\t20\n", "not before end"),
        ("chr1\t30\t20\n", "not before end"),
        ("chr7\t1\t2\n", "contig 'chr7' is not in the FASTA"),
        ("chrM\t40\t51\n", "past the end of contig 'chrM' (50 bp)"),
    ],
)
def test_read_bed_errors_name_file_and_line(tmp_path, genome, line, message):
    path = tmp_path / "bad.bed"
    path.write_text("track name=x\nchr1\t0\t5\n" + line)
    with pytest.raises(LrgenError) as err:
        read_bed(path, genome)
    text = str(err.value)
    assert str(path) in text and "line 3" in text and message in text


def test_read_bed_can_ignore_contigs_the_genome_lacks(tmp_path, genome):
    from collections import Counter

    from lrgen.io.bed import ignored_note

    path = tmp_path / "wide.bed"
    path.write_text("chrUn_gl000220\t0\t5\nchr1\t0\t5\nchrY\t0\t5\nchrY\t9\t12\n")
    ignored: Counter = Counter()
    assert read_bed(path, genome, ignored) == [Region("chr1", 0, 5, None, 2)]
    assert ignored == {"chrUn_gl000220": 1, "chrY": 2}
    assert ignored_note(path, ignored) == (f"{path}: 3 regions on contigs not in the FASTA were ignored "
                                           "(chrUn_gl000220: 1, chrY: 2)")
    assert ignored_note(path, Counter(chrY=1)) == f"{path}: 1 region on a contig not in the FASTA was ignored (chrY: 1)"


def test_read_bed_missing_file(tmp_path):
    with pytest.raises(LrgenError, match="not found"):
        read_bed(tmp_path / "absent.bed")


def test_merge_regions():
    regions = [
        Region("2", 50, 60, "b"),
        Region("1", 30, 40, "a"),
        Region("1", 0, 10, "a"),
        Region("1", 10, 15, "a"),  # adjacent -> merged, same name kept
        Region("1", 35, 50, "c"),  # overlapping -> merged, name dropped
        Region("2", 61, 70),
    ]
    assert merge_regions(regions) == [
        Region("1", 0, 15, "a"),
        Region("1", 30, 50, None),
        Region("2", 50, 60, "b"),
        Region("2", 61, 70),
    ]
    ordered = merge_regions(regions, contig_order=["2", "1"])
    assert [r.chrom for r in ordered] == ["2", "2", "1", "1"]
    assert merge_regions([]) == []


def test_read_bed_from_standard_input(monkeypatch, genome):
    text = "chr1\t10\t20\nMT\t5\t15\n"
    for data in (text.encode(), gzip.compress(text.encode())):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        assert [(r.chrom, r.start, r.end) for r in read_bed("-", genome)] == [("chr1", 10, 20), ("MT", 5, 15)]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"chr1\t10\t20\nchr1\t30\n")))
    with pytest.raises(LrgenError, match=r"^<stdin>: line 2: expected at least 3 columns"):
        read_bed("-", genome)
