"""Data-parallel pretraining under torchrun: 2 gloo processes on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

import lrgen

from helpers import random_bases, read_metrics, write_fasta


def test_two_process_ddp_run(tmp_path):
    fasta = write_fasta(tmp_path / "toy.fa", {"c0": random_bases(5000)})
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "lrgen",
           "pretrain", "--model", "hawk-tiny", "--fasta", str(fasta), "--output", str(run), "--context", "64",
           "--steps", "3", "--batch-size", "2", "--device", "cpu", "--val-windows", "2", "--save-every", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained 3 steps") == 1  # only rank 0 reports
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["tokens"] == 3 * 2 * 64 * 2
    records = read_metrics(run)
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3]  # one writer, no duplicates
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best", "latest", "step-0000002", "step-0000003"]
    state = torch.load(run / "checkpoints" / "step-0000003" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2 and state["sampler"]["index"] == 3
    model = lrgen.load_model(str(run))
    assert model(torch.full((1, 16), 7)).shape[:2] == (1, 16)
