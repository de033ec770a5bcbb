"""Sharded pretraining (``--fsdp``, FSDP2) under torchrun: 2 gloo processes on CPU.

One FSDP run is checked against a DDP run of the same settings (same losses and weights: sharding changes where the
numbers live, not what they are), its checkpoint against the sharded model's logits, and its resume against the
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types

import pytest
import torch
from safetensors.torch import load_file

import lrgen
from lrgen.errors import LrgenError
from lrgen.pretrain.fsdp import check_fsdp
from lrgen.runtime.distributed import Processes
from lrgen.pretrain.loop import run_pretrain

from helpers import random_bases, read_metrics, write_fasta

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]

# load a checkpoint, shard it over the processes and write the sharded model's logits and gathered weights from rank 0
_SHARDED_LOGITS = """
import sys, torch, lrgen
from lrgen.pretrain.fsdp import full_model_state, wrap_fsdp
from lrgen.runtime.distributed import processes
with processes("cpu") as info:  # leaves through a barrier: gloo aborts a process whose peer left first
    model = wrap_fsdp(lrgen.load_model(sys.argv[1]), info).eval()
    ids = torch.randint(0, 12, (2, 48), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(ids)
    weights = full_model_state(model)
    if info.is_main:
        torch.save({"ids": ids, "logits": logits, "weights": weights}, sys.argv[2])
"""


def _pretrain(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([*TORCHRUN, "-m", "lrgen", "pretrain", *args], env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _metrics(run_dir):
    return read_metrics(run_dir, drop=("tokens_per_s", "elapsed_s"))


def _weights(run_dir, name):
    return load_file(str(run_dir / "checkpoints" / name / "model.safetensors"))


def test_fsdp_run_matches_ddp_loads_and_resumes(tmp_path):
    fasta = write_fasta(tmp_path / "toy.fa", {"c0": random_bases(5000)})
    fsdp, ddp, resumed = tmp_path / "fsdp", tmp_path / "ddp", tmp_path / "resumed"
    common = ["--model", "hawk-tiny", "--fasta", str(fasta), "--context", "64", "--steps", "4", "--batch-size", "2",
              "--grad-accum", "2", "--device", "cpu", "--val-windows", "2", "--eval-every", "2", "--save-every", "2",
              "--lr", "5e-3", "--seed", "5"]
    proc = _pretrain(*common, "--output", str(fsdp), "--fsdp")
    assert proc.stdout.count("trained 4 steps") == 1  # only rank 0 reports
    _pretrain(*common, "--output", str(ddp))

    # it trains, and as DDP does: same losses and final weights (float reductions in another order: 1e-4)
    mf, md = _metrics(fsdp), _metrics(ddp)
    assert [(r["step"], r["split"]) for r in mf] == [(1, "train"), (2, "train"), (2, "val"), (3, "train"),
                                                     (4, "train"), (4, "val")]
    for a, b in zip(mf, md):
        assert a.keys() == b.keys() and a["step"] == b["step"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["split"] == "val" or a["grad_norm"] > 0
    assert mf[4]["loss"] < mf[0]["loss"]  # train loss at step 4 below step 1
    wf, wd = _weights(fsdp, "step-0000004"), _weights(ddp, "step-0000004")
    assert wf.keys() == wd.keys()
    assert all(torch.allclose(wf[k], wd[k], rtol=1e-4, atol=1e-5) for k in wf)
    init = lrgen.load_model("hawk-tiny").state_dict()
    assert not torch.equal(wf["embedding.weight"], init["embedding.weight"])
    summary, ddp_summary = (json.loads((run / "summary.json").read_text()) for run in (fsdp, ddp))
    assert summary["world_size"] == 2 and summary["parameters"] == ddp_summary["parameters"]
    names = sorted(p.name for p in (fsdp / "checkpoints").iterdir())
    assert names == ["best", "latest", "step-0000002", "step-0000004"]

    # the checkpoint, loaded whole, gives the sharded model's logits (1e-5) and gathers back bit for bit
    script = tmp_path / "sharded_logits.py"
    script.write_text(_SHARDED_LOGITS)
    out = tmp_path / "sharded.pt"
    proc = subprocess.run([*TORCHRUN, str(script), str(fsdp), str(out)], env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = torch.load(out, weights_only=True)
    model = lrgen.load_model(str(fsdp)).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(sharded["ids"]), sharded["logits"], rtol=1e-5, atol=1e-5)
    assert all(torch.equal(sharded["weights"][k], v) for k, v in model.state_dict().items())

    # a crash after step 3: resuming from step 2 repeats the uninterrupted run exactly
    shutil.copytree(fsdp, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-0000004")
    (resumed / "checkpoints" / "latest").write_text("step-0000002\n")
    _pretrain("--output", str(resumed), "--resume", "--fsdp")
    assert _metrics(resumed) == mf
    wr = _weights(resumed, "step-0000004")
    assert all(torch.equal(wr[k], wf[k]) for k in wf)

    # the saved config keeps fsdp: resuming the run in one process asks for torchrun
    (resumed / "checkpoints" / "latest").write_text("step-0000002\n")
    assert json.loads((resumed / "pretrain_config.json").read_text())["fsdp"] is True
    with pytest.raises(LrgenError, match="needs torchrun with 2 or more"):
        run_pretrain({"output": str(resumed), "resume": True, "device": "cpu"})

def test_fsdp_needs_torchrun(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    fasta = write_fasta(tmp_path / "toy.fa", {"c0": "ACGT" * 100})
    flags = dict(model="hawk-tiny", fasta=[str(fasta)], output=str(tmp_path / "run"), context=64, steps=1, device="cpu")
    with pytest.raises(LrgenError, match="--fsdp .* needs torchrun with 2 or more"):
        run_pretrain(dict(flags, fsdp=True))
    assert not (tmp_path / "run").exists()


def test_fsdp_needs_fsdp2(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.distributed.fsdp", types.ModuleType("torch.distributed.fsdp"))
    with pytest.raises(LrgenError, match=r"--fsdp needs torch >= 2.6 \(FSDP2"):
        check_fsdp(Processes(rank=0, world_size=2, local_rank=0, device=torch.device("cpu")))
