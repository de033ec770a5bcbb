"""score-vcf with ``-``: the VCF from standard input, the VCF or TSV to standard output, what a stream refuses;
and the names that cannot be written (a folder named as the output)."""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

import pysam
import pytest
import torch

import lrgen
from lrgen.errors import LrgenError
from lrgen.models import save_model
from lrgen.variants import ScoreVcfOptions, score_vcf

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_VCF = REPO / "examples" / "data" / "example.vcf.gz"
EXAMPLE_FASTA = REPO / "examples" / "data" / "chr20_1-1.2Mb.fa.gz"
FAST = dict(context=512, recompute_span=256, scores=("wt-marginal",), progress=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """caduceus-ps-tiny saved once: the subprocesses and this process score with the same weights."""
    torch.manual_seed(0)
    return save_model(lrgen.load_model("caduceus-ps-tiny"), tmp_path_factory.mktemp("model") / "ps-tiny")


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Path:
    """The first 3 kb of the example's sites (about 20 records, a few windows)."""
    path = tmp_path_factory.mktemp("bed") / "first.bed"
    path.write_text("20\t999999\t1003000\n")
    return path


@pytest.fixture(scope="module")
def by_path(tmp_path_factory, model, bed) -> Path:
    """The example VCF scored by path into a plain VCF: what every stream must reproduce."""
    out = tmp_path_factory.mktemp("by-path") / "scored.vcf"
    score_vcf(ScoreVcfOptions(vcf=EXAMPLE_VCF, genome=EXAMPLE_FASTA, model=str(model), output=out, regions=bed,
                              **FAST))
    return out


def _cli(vcf: str, output: str, model: Path, bed: Path, **run) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "lrgen", "score-vcf", vcf, "-g", str(EXAMPLE_FASTA), "-m", str(model), "-c", "512",
            "--score", "wt-marginal", "-R", str(bed), "-o", output]
    return subprocess.run(args, capture_output=True, cwd=REPO, env={"OMP_NUM_THREADS": "1", "PATH": ""}, **run)


def _records(path: Path) -> tuple[list[str], list[str]]:
    """(header lines but the command line, records) as pysam reads them."""
    with pysam.VariantFile(str(path)) as fh:
        header = [line for line in str(fh.header).splitlines() if not line.startswith("##lrgen_command")]
        return header, [str(rec) for rec in fh]


def test_vcf_from_standard_input_equals_the_file_run(tmp_path, model, bed, by_path):
    out = tmp_path / "piped.vcf.gz"
    proc = _cli("-", str(out), model, bed, input=EXAMPLE_VCF.read_bytes())  # bgzip, as `cat example.vcf.gz |`
    assert proc.returncode == 0, proc.stderr.decode()
    header, records = _records(out)
    assert records and (header, records) == _records(by_path)


def test_vcf_to_standard_output_equals_the_file_run(tmp_path, model, bed, by_path):
    proc = _cli(str(EXAMPLE_VCF), "-", model, bed)
    assert proc.returncode == 0, proc.stderr.decode()
    stderr = proc.stderr.decode()
    assert "<stdout>: " in stderr and "scored" in stderr  # the summary, and the preset warning, stay on stderr
    printed = tmp_path / "stdout.vcf"
    printed.write_bytes(proc.stdout)
    assert _records(printed) == _records(by_path)
    assert not list(REPO.glob("-*")) and not list(tmp_path.glob("*.lrgen-partial"))


def test_tsv_to_standard_output(tmp_path, model, bed, capsys):
    score_vcf(ScoreVcfOptions(vcf=EXAMPLE_VCF, genome=EXAMPLE_FASTA, model=str(model), output=tmp_path / "o.vcf",
                              tsv="-", regions=bed, **FAST))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["chrom", "pos", "id", "ref", "alt", "wt_marginal", "status", "note"]
    assert len(lines) - 1 == len(_records(tmp_path / "o.vcf")[1])


@pytest.mark.parametrize("options, message", [
    (dict(vcf="-", resume=True), r"--resume cannot be used with the VCF read from standard input"),
    (dict(regions="-", resume=True), r"--resume cannot be used with the --regions BED read from standard input"),
    (dict(output="-", resume=True), r"--resume needs an output file"),
    (dict(vcf="-", regions="-"), r"standard input \('-'\) can be read once"),
    (dict(output="-", tsv="-"), r"-o - and --tsv - would both write to standard output"),
])
def test_what_a_stream_refuses(tmp_path, options, message):
    settings = dict(vcf=EXAMPLE_VCF, genome=EXAMPLE_FASTA, model="caduceus-ps-tiny", output=tmp_path / "o.vcf")
    with pytest.raises(LrgenError, match=message):
        score_vcf(ScoreVcfOptions(**{**settings, **options}, **FAST))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, message", [
    (dict(vcf="{tmp}"), r"VCF file .* is a folder, not a VCF file"),
    (dict(output="{tmp}/out.vcf"), r"output .*out\.vcf is a folder: name a file in it"),
    (dict(tsv="{tmp}"), r"--tsv .* is a folder: name a file in it"),
])
def test_folders_named_as_files_are_refused_before_scoring(tmp_path, options, message):
    (tmp_path / "out.vcf").mkdir()
    settings = dict(vcf=EXAMPLE_VCF, genome=EXAMPLE_FASTA, model="caduceus-ps-tiny", output=tmp_path / "o.vcf")
    settings.update({k: v.format(tmp=tmp_path) for k, v in options.items()})
    with pytest.raises(LrgenError, match=message):
        score_vcf(ScoreVcfOptions(**settings, **FAST))
    assert [p.name for p in tmp_path.iterdir()] == ["out.vcf"]


@pytest.mark.parametrize("output", ["o.vcf", "-"])
def test_an_interrupted_stream_run_leaves_nothing_behind(tmp_path, model, bed, monkeypatch, output):
    """A stream cannot be resumed: a stopped run removes its partial folder (and standard input's copy)."""
    from lrgen.variants.resume import Bodies

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(EXAMPLE_VCF.read_bytes())))

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Bodies, "commit", interrupt)
    out = "-" if output == "-" else tmp_path / output
    with pytest.raises(KeyboardInterrupt):
        score_vcf(ScoreVcfOptions(vcf="-", genome=EXAMPLE_FASTA, model=str(model), output=out, regions=bed, **FAST))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"] and list(temp.iterdir()) == []
