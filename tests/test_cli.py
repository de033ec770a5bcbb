"""The CLI skeleton: help, version, info, and user errors as one line."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from typer.testing import CliRunner

from lrgen import __version__
from lrgen.cli.app import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("pretrain", "finetune", "evaluate", "score-vcf", "predict", "info", "embed", "stats", "plot"):
        assert command in result.output


def test_help_texts_keep_their_bracketed_defaults():
    """Rich reads ``[word ...]`` in a help text as markup and drops it, so a default written in brackets is escaped."""
    import re

    import typer.main

    def commands(command):
        yield command
        for sub in getattr(command, "commands", {}).values():
            yield from commands(sub)

    texts = [(c.name, p.name, p.help) for c in commands(typer.main.get_command(app)) for p in c.params
             if getattr(p, "help", None)]
    assert not [t for t in texts if re.search(r"(?<!\\)\[[a-zA-Z]", t[2])]
    shown = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "200"}).output
    assert "[from the output's extension]" in shown and "[the engine's: 65536 on a GPU, 4096 on a CPU]" in shown


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_info_models_lists_trained_models_apart_from_random_presets():
    result = runner.invoke(app, ["info", "--models"], terminal_width=200)
    assert result.exit_code == 0, result.output
    trained, presets = result.output.split("model presets: architecture only, random weights")
    assert "bundled trained models" in trained and "caduceus-ps-demo" in trained and "hawk-tiny" not in trained
    assert "hawk-tiny" in presets and "caduceus-ps-demo" not in presets


def test_info_reports_backends():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "backend reference" in result.output
    assert "torch" in result.output


@pytest.mark.parametrize(
    "args,expected",
    [
        (["embed", "/nonexistent.bed", "--model", "caduceus-ps-tiny", "--genome", "/nonexistent.fa", "-o", "x.npz"],
         "/nonexistent.fa not found"),
        (["score-vcf", "/nonexistent.vcf", "--model", "caduceus-ps-tiny", "--genome", "GENOME", "--context", "1kb",
          "-o", "x.vcf"], "/nonexistent.vcf not found"),
        (["predict", "/nonexistent.bed", "--model", "caduceus-ps-tiny", "--genome", "GENOME", "-o", "x.bw"],
         "/nonexistent.bed"),
        (["embed", "r.bed", "--model", "no-such-model", "--genome", "GENOME", "-o", "x.npz"], "unknown model"),
    ],
)
def test_user_error_is_one_line_without_traceback(args, expected, tmp_path):
    genome = Path(__file__).resolve().parents[1] / "examples" / "data" / "chr20_1-1.2Mb.fa.gz"
    (tmp_path / "r.bed").write_text("20\t1000000\t1000100\n")
    args = [str(genome) if a == "GENOME" else a for a in args]
    code = f"from lrgen.cli import main; main({args!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lrgen: error: ") and expected in lines[0], proc.stderr
    assert not list(tmp_path.glob("x.*"))


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
FASTA, VCF = str(EXAMPLES / "chr20_1-1.2Mb.fa.gz"), str(EXAMPLES / "example.vcf.gz")
COMMANDS = {
    "pretrain": ["pretrain", "--model", "hawk-tiny", "--fasta", FASTA, "-o", "run", "--steps", "1", "--context", "1kb"],
    "finetune": ["finetune", "--task", "promoter", "--model", "hawk-tiny", "--data-dir", ".", "--genome", FASTA,
                 "--context", "1kb", "-o", "ft"],
    "evaluate": ["evaluate", "--task", "promoter", "--model", "hawk-tiny", "--data-dir", ".", "--genome", FASTA],
    "evaluate-mlm": ["evaluate", "--task", "mlm", "--model", "hawk-tiny", "--fasta", FASTA, "--context", "1kb"],
    "score-vcf": ["score-vcf", VCF, "--model", "hawk-tiny", "--genome", FASTA, "--context", "1kb", "-o", "out.vcf"],
    "predict": ["predict", "r.bed", "--model", "hawk-tiny", "--genome", FASTA, "-o", "out.bw"],
    "embed": ["embed", "r.bed", "--model", "hawk-tiny", "--genome", FASTA, "-o", "out.npz"],
}


@pytest.mark.parametrize("device,message", [
    ("tpu", "--device 'tpu' is not a device: use auto, cpu, cuda or cuda:N"),
    pytest.param("cuda:0", "--device cuda:0: no CUDA GPU is available on this machine; use --device cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_gives_the_one_device_error_before_any_work(command, device, message, tmp_path, capsys,
                                                                 monkeypatch):
    from lrgen.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.bed").write_text("20\t1000000\t1000100\n")
    with pytest.raises(SystemExit) as exit:
        main([*COMMANDS[command], "--device", device])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit.value.code == 1 and lines == [f"lrgen: error: {message}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.bed"]  # nothing was made


def test_pretrain_config_validation_resolves_the_device():
    from lrgen.errors import LrgenError
    from lrgen.pretrain.config import PretrainConfig

    config = PretrainConfig(model="hawk-tiny", output="run", fasta=["x.fa"], steps=1, device="tpu")
    with pytest.raises(LrgenError, match="--device 'tpu' is not a device"):
        config.validate()


def _main(args: list[str], capsys) -> tuple[int, str, str]:
    """``lrgen ARGS`` in this process: exit code, stdout, stderr."""
    from lrgen.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("args,message", [
    (["predict", "r.bed", "--chunk-size", "0"], "--chunk-size: length '0' must be positive"),
    (["embed", "r.bed", "--chunk-size", "0", "-o", "x.npz"], "--chunk-size: length '0' must be positive"),
    (["score-vcf", VCF, "--context", "1kb", "-o", "x.vcf", "--chunk-size", "0"],
     "--chunk-size: length '0' must be positive"),
    (["score-vcf", VCF, "--context", "1kb", "-o", "x.vcf", "--batch-size", "0"],
     "--batch-size must be at least 1, got 0"),
    (["predict", "r.bed", "-o", "x.bedGraph", "--format", "bigwig"],
     "-o x.bedGraph: the extension says bedgraph, --format says bigwig; make them agree"),
    (["predict", "r.bed", "-o", "x.bw", "--format", "bedgraph"],
     "-o x.bw: the extension says bigwig, --format says bedgraph; make them agree"),
])
def test_bad_flags_are_named_in_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.bed").write_text("20\t1000000\t1000100\n")
    if "-o" not in args:
        args = [*args, "-o", "x.bw"]
    code, _, err = _main([*args, "--model", "hawk-tiny", "--genome", FASTA, "--device", "cpu"], capsys)
    assert code == 1 and err.splitlines() == [f"lrgen: error: {message}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.bed"]


def test_predict_format_follows_the_extension(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.bed").write_text("20\t1000000\t1000010\n")
    code, _, err = _main(["predict", "r.bed", "--model", "hawk-tiny", "--genome", FASTA, "--device", "cpu",
                          "--context", "256", "-o", "x.bedGraph"], capsys)
    assert code == 0, err
    lines = (tmp_path / "x.bedGraph").read_text().splitlines()
    assert lines and all(line.split("\t")[0] == "20" and len(line.split("\t")) == 4 for line in lines)


JOBS = {
    "score-vcf": (["score-vcf", VCF, "--score", "wt-marginal", "-o", "out.vcf", "-R", "BED"], "out.vcf"),
    "predict": (["predict", "BED", "-o", "out.bw"], "out.bw"),
    "embed": (["embed", "BED", "-o", "out.npz"], "out.npz"),
}


@pytest.mark.parametrize("job", list(JOBS))
def test_beds_are_read_as_bcftools_reads_them(job, tmp_path, capsys, monkeypatch):
    """A genome-wide BED (contigs the FASTA lacks) is used for what the FASTA has, with one line on the rest; an empty
    BED gives an empty result, said in the summary."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wide.bed").write_text("chrUn_gl000220\t0\t500\n20\t1000000\t1000050\nchrY\t0\t50\nchrY\t90\t99\n")
    (tmp_path / "empty.bed").write_text("# nothing here\n")
    args, output = JOBS[job]
    common = ["--model", "hawk-tiny", "--genome", FASTA, "--device", "cpu", "--context", "256"]
    code, out, err = _main([a.replace("BED", "wide.bed") for a in args] + common, capsys)
    assert code == 0, err
    assert ("lrgen: warning: wide.bed: 3 regions on contigs not in the FASTA were ignored (chrUn_gl000220: 1, chrY: 2)"
            in err)
    (tmp_path / output).unlink()
    code, out, err = _main([a.replace("BED", "empty.bed") for a in args] + common, capsys)
    assert code == 0, err
    assert (tmp_path / output).is_file()
    said = {"score-vcf": "out.vcf: 0 records in --regions, 0 ALT alleles", "predict": "no regions to predict",
            "embed": "no regions to embed"}[job]
    assert said in out + err
