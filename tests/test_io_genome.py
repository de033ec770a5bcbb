"""Genome: plain / bgzip / plain-gzip FASTA, index building, N padding, aliasing, streaming, the real chr20."""

from __future__ import annotations

import gzip
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pysam
import pytest

from lrgen.errors import LrgenError
from lrgen.io.genome import Genome, alias_candidates, iter_fasta_records

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
CHR1 = "ACGTACGTACgtacgtNNAC"  # 20 bp, soft-masked part and Ns
FASTA = f">chr1 first contig\n{CHR1[:8]}\n{CHR1[8:16]}\n{CHR1[16:]}\n>chrM\nGATTACA\n>2\nCCCC\n"


@pytest.fixture
def plain_fasta(tmp_path):
    path = tmp_path / "toy.fa"
    path.write_text(FASTA)
    return path


@pytest.fixture
def bgzip_fasta(tmp_path, plain_fasta):
    path = tmp_path / "toy.fa.gz"
    pysam.tabix_compress(str(plain_fasta), str(path))
    return path


def test_plain_fasta_builds_missing_index(plain_fasta):
    assert not os.path.exists(f"{plain_fasta}.fai")
    with Genome(plain_fasta) as genome:
        assert genome.contig_sizes == {"chr1": 20, "chrM": 7, "2": 4}
        assert list(genome.contig_sizes) == ["chr1", "chrM", "2"]
        assert genome.fetch("chr1", 0, 20) == CHR1.upper()
        assert genome.path == plain_fasta
    assert os.path.exists(f"{plain_fasta}.fai")


def test_bgzip_fasta_builds_fai_and_gzi(bgzip_fasta):
    genome = Genome(bgzip_fasta)
    assert genome.fetch("chr1", 8, 12) == "ACGT"
    assert os.path.exists(f"{bgzip_fasta}.fai") and os.path.exists(f"{bgzip_fasta}.gzi")
    genome.close()


def test_plain_gzip_is_refused_with_advice(tmp_path):
    path = tmp_path / "toy.fa.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(FASTA)
    with pytest.raises(LrgenError, match="plain gzip cannot be indexed; recompress with bgzip") as err:
        Genome(path)
    assert str(path) in str(err.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(LrgenError, match="not found"):
        Genome(tmp_path / "absent.fa")
    bad = tmp_path / "bad.fa"
    bad.write_text("this is not a fasta\n")
    with pytest.raises(LrgenError, match="bad.fa"):
        Genome(bad)


def test_fetch_pads_with_n_at_both_ends(plain_fasta):
    genome = Genome(plain_fasta)
    assert genome.fetch("chr1", -3, 4) == "NNNACGT"
    assert genome.fetch("chr1", 18, 24) == "ACNNNN"
    assert genome.fetch("chr1", -2, 22) == "NN" + CHR1.upper() + "NN"
    assert genome.fetch("chr1", 30, 33) == "NNN"
    assert genome.fetch("chr1", -9, -4) == "NNNNN"
    assert genome.fetch("chr1", 5, 5) == ""
    assert genome.fetch("chr1", np.int64(-1), np.int64(2)) == "NAC"
    with pytest.raises(ValueError):
        genome.fetch("chr1", 5, 4)


def test_aliasing(plain_fasta):
    genome = Genome(plain_fasta)
    assert genome.resolve("1") == "chr1"
    assert genome.resolve("chr2") == "2"
    for name in ("MT", "M", "chrMT", "chrM"):
        assert genome.resolve(name) == "chrM"
        assert genome.fetch(name, 0, 4) == "GATT"
    assert "1" in genome and "chr2" in genome and "3" not in genome
    with pytest.raises(LrgenError) as err:
        genome.resolve("chrX")
    message = str(err.value)
    assert "chrX" in message and str(plain_fasta) in message and "chr1" in message
    assert alias_candidates("CHR5") == ["CHR5", "5"]


def test_iter_fasta_records_plain_gzip_bgzip(tmp_path, plain_fasta, bgzip_fasta):
    gz = tmp_path / "plain.fa.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(FASTA)
    expected = [("chr1", CHR1.upper()), ("chrM", "GATTACA"), ("2", "CCCC")]
    for path in (plain_fasta, gz, bgzip_fasta):
        assert list(iter_fasta_records(path)) == expected


def test_iter_fasta_records_errors(tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text("ACGT\n>x\nAC\n")
    with pytest.raises(LrgenError, match="line 1"):
        list(iter_fasta_records(bad))
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    with pytest.raises(LrgenError, match="no FASTA records"):
        list(iter_fasta_records(empty))


def test_real_chr20(shared_data):
    with Genome(shared_data / "human" / "20.fa.gz") as genome:
        assert genome.contig_sizes == {"20": 63_025_520}
        assert genome.fetch("20", 0, 10) == "N" * 10  # the p-arm telomere gap
        window = genome.fetch("chr20", 1_000_000, 1_010_000)
        assert len(window) == 10_000 and set(window) <= set("ACGTN") and window.count("N") < 100
        assert genome.fetch("chr20", 63_025_515, 63_025_525).endswith("NNNNN")
        t0 = time.perf_counter()
        megabase = genome.fetch("20", 30_000_000, 31_000_000)
        elapsed = time.perf_counter() - t0
        assert len(megabase) == 1_000_000
        assert elapsed < 1.0, f"1 Mbp fetch took {elapsed:.2f} s"


def test_bundled_example_fasta_is_the_real_chr20_prefix(shared_data):
    bundled = Genome(EXAMPLES / "chr20_1-1.2Mb.fa.gz")
    real = Genome(shared_data / "human" / "20.fa.gz")
    assert bundled.contig_sizes == {"20": 1_200_000}
    for start in (0, 59_990, 600_000, 1_199_000):
        assert bundled.fetch("20", start, start + 1000) == real.fetch("20", start, start + 1000)


def _fetch_in_child(genome: Genome, queue) -> None:
    queue.put(genome.fetch("1", -1, 4))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_genome_works_in_worker_processes(plain_fasta, method):
    """fork inherits the object (handle reopened in the child); spawn pickles it (reopened from the path)."""
    import multiprocessing

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    genome = Genome(plain_fasta)
    genome.fetch("chr1", 0, 4)  # the parent's handle is in use before the worker starts
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    worker = ctx.Process(target=_fetch_in_child, args=(genome, queue))
    worker.start()
    assert queue.get(timeout=60) == "NACGT"
    worker.join(timeout=60)
    assert worker.exitcode == 0
    assert genome.fetch("chr1", 0, 4) == "ACGT"
    assert pickle.loads(pickle.dumps(genome)).fetch("M", 0, 3) == "GAT"


def test_htslib_is_quiet_while_pysam_opens(tmp_path, capfd):
    from lrgen.io.genome import quiet_htslib

    vcf = tmp_path / "unindexed.vcf.gz"
    vcf.write_bytes((EXAMPLES / "example.vcf.gz").read_bytes())  # no .tbi: htslib says [E::idx_find_and_load]
    before = pysam.set_verbosity(3)
    try:
        with quiet_htslib():
            pysam.VariantFile(str(vcf)).close()
        Genome(EXAMPLES / "chr20_1-1.2Mb.fa.gz").close()
        assert "[E::" not in capfd.readouterr().err and pysam.set_verbosity(3) == 3  # restored
    finally:
        pysam.set_verbosity(before)
