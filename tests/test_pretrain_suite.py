"""The GPU pretraining suite's script, run end to end on CPU with tiny models and a tiny budget."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pretrain_suite.py"


@pytest.mark.slow  # reads all 106 Mbp of the shared genomes
def test_suite_smoke_run(shared_data, tmp_path):
    spec = importlib.util.spec_from_file_location("pretrain_suite", SCRIPT)
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    out = tmp_path / "out"
    suite.main(["--genomes", str(shared_data / "genomes"), "--human", str(shared_data / "human" / "20.fa.gz"),
                "--out", str(out), "--work-dir", str(tmp_path / "work"), "--tiny", "--device", "cpu",
                "--models", "hawk,ntv2", "--context", "120", "--batch-size", "2", "--calibration-steps", "1",
                "--train-seconds", "0.2", "--val-windows", "2", "--contexts", "1k,5M", "--windows", "1"])
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "perplexity.png", "results.json", "results.md",
                                                     "training.png"]
    results = json.loads((out / "results.json").read_text())
    assert results["tokens"] == results["steps"] * 240 and set(results["models"]) == {"hawk", "ntv2"}
    for name, r in results["models"].items():
        assert r["train"]["steps"] == results["steps"] and r["config"]["val_region"] == ["20:1000000-4000000"]
        rows = r["eval"]["results"]
        assert rows[0]["context"] == 1000 and rows[0]["targets"] > 0
        assert rows[1]["error"] == "longest contig is 3000001 bp"  # the held-out region is 20:1,000,000-4,000,000
    assert "| hawk |" in (out / "results.md").read_text()
