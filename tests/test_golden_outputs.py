"""Outputs on the bundled example stay byte for byte what they were when they were recorded (tests/data/golden/).

The golden files are written with the PyTorch reference kernels (``LRGEN_BACKEND=reference``) by
``tests/data/golden/make.sh``: score-vcf's TSVs and VCF bodies (headers too, but for the command line) and the
predicted bigWig's intervals and values (float32 bits). A change that moves any of them is a behaviour change and
must say so. First written by lrgen 0.1.0 (git 88ca4b4); every record, value and track byte stayed the same through
the restructured job floor, while the VCF headers' INFO descriptions came to name the run's strand handling and the
`past_contig_end` reason and a wt-marginal-only run stopped writing a `##lrgen_recompute` line. Written again when
the bundled model became the 7.7M-parameter Caduceus-PS of docs/results.md (the outputs follow its weights).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pyBigWig
import pytest

from lrgen.tracks.predict import PredictOptions, predict
from lrgen.variants import ScoreVcfOptions, score_vcf

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden"
VCF = REPO / "examples" / "data" / "example.vcf.gz"
FASTA = REPO / "examples" / "data" / "chr20_1-1.2Mb.fa.gz"
MODEL = "caduceus-ps-demo"


@pytest.fixture(autouse=True)
def _reference_kernels(monkeypatch):
    monkeypatch.setenv("LRGEN_BACKEND", "reference")


def _bed(path: Path, start: int, end: int) -> Path:
    path.write_text(f"20\t{start}\t{end}\n")
    return path


def _vcf_text(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return "".join(line for line in fh if not line.startswith("##lrgen_command"))


def test_score_vcf_wt_marginal_is_unchanged(tmp_path):
    out = tmp_path / "wtm.vcf.gz"
    score_vcf(ScoreVcfOptions(VCF, FASTA, MODEL, 1000, out, scores=("wt-marginal",), tsv=tmp_path / "wtm.tsv",
                              regions=_bed(tmp_path / "r.bed", 999_999, 1_012_000), progress=False))
    assert (tmp_path / "wtm.tsv").read_bytes() == (GOLDEN / "wtm.tsv").read_bytes()
    assert _vcf_text(out) == (GOLDEN / "wtm.vcf").read_text()


def test_score_vcf_llr_and_embedding_are_unchanged(tmp_path):
    out = tmp_path / "llr.vcf"
    score_vcf(ScoreVcfOptions(VCF, FASTA, MODEL, 1000, out, scores=("llr", "embedding"), tsv=tmp_path / "llr.tsv",
                              regions=_bed(tmp_path / "r.bed", 999_999, 1_002_500), recompute_span=256,
                              embedding_span=128, progress=False))
    assert (tmp_path / "llr.tsv").read_bytes() == (GOLDEN / "llr.tsv").read_bytes()
    assert _vcf_text(out) == (GOLDEN / "llr.vcf").read_text()


def test_predict_bigwig_is_unchanged(tmp_path):
    out = tmp_path / "logprob.bw"
    predict(PredictOptions(_bed(tmp_path / "r.bed", 1_000_000, 1_003_000), FASTA, MODEL, out, context=1000,
                           progress=False))
    with pyBigWig.open(str(out)) as bw:
        got = "".join(f"{chrom}\t{s}\t{e}\t{v.hex()}\n" for chrom in bw.chroms()
                      for s, e, v in (bw.intervals(chrom) or ()))
    assert got == (GOLDEN / "logprob.intervals").read_text()
