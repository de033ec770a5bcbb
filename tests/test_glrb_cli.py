"""CLI smoke tests: lrgen glrb make-fixture / tasks, lrgen finetune, lrgen evaluate (GLRB and mlm dispatch)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import lrgen.cli.glrb  # noqa: F401  (registers `lrgen glrb` until lrgen/cli/__init__.py imports it)
from lrgen.cli import main
from lrgen.cli.app import app


def test_make_fixture_finetune_evaluate(tmp_path):
    runner = CliRunner()
    data = tmp_path / "bench"
    r = runner.invoke(app, ["glrb", "make-fixture", str(data), "--n-train", "24", "--n-test", "12"])
    assert r.exit_code == 0, r.output
    assert (data / "cage_prediction/targets_subset/targets-train-0-7.npz").is_file()
    genome = str(data / "genome.fa")

    r = runner.invoke(app, ["glrb", "tasks"])
    assert r.exit_code == 0 and "regulatory_element_enhancer" in r.output

    r = runner.invoke(app, ["finetune", "--task", "enhancer", "--model", "caduceus-ps-tiny", "--data-dir", str(data),
                            "--genome", genome, "--context", "256", "--output", str(tmp_path / "ft"), "--freeze-backbone",
                            "--epochs", "3", "--batch-size", "16", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "fine-tuned regulatory_element_enhancer" in r.output
    meta = json.loads((tmp_path / "ft/task.json").read_text())
    assert meta["head"]["task"] == "regulatory_element_enhancer" and meta["head"]["rc_pool"]

    r = runner.invoke(app, ["evaluate", "--task", "enhancer", "--model", str(tmp_path / "ft"), "--data-dir", str(data),
                            "--genome", genome, "--context", "256,512", "--bootstrap", "10", "--out",
                            str(tmp_path / "ev"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "| 512 | 12 |" in r.output
    assert (tmp_path / "ev/metric_vs_context.png").stat().st_size > 0

    r = runner.invoke(app, ["evaluate", "--task", "mlm", "--model", "hawk-tiny", "--fasta", genome, "--context", "256",
                            "--windows", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "perplexity" in r.output


def test_user_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "--task", "promoter", "--model", "hawk-tiny", "--data-dir", str(tmp_path), "--genome", "x.fa",
              "--context", "1kb", "--output", str(tmp_path / "out"), "--device", "cpu"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("lrgen: error: ") and "promoter_dataset.csv not found" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
