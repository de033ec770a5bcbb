"""The CLI skeleton: help, version, info, and user errors as one line."""

import subprocess
import sys

from typer.testing import CliRunner

from lrgen import __version__
from lrgen.cli.app import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("pretrain", "finetune", "evaluate", "score-vcf", "predict", "info", "embed"):
        assert command in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_info_reports_backends():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "backend reference" in result.output
    assert "torch" in result.output


def test_user_error_is_one_line_without_traceback():
    code = "from lrgen.cli import main; main(['embed', '/nonexistent.bed', '--model', 'x', '--genome', '/nonexistent.fa', '-o', '/tmp/x.npz'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode in (1, 2)
    assert "Traceback" not in proc.stderr
