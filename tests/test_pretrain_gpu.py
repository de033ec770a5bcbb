"""Pretraining and MLM evaluation on a CUDA GPU: bf16 training, exact resume with CUDA RNG, a 100 kbp sweep."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from lrgen.pretrain.evaluate import MlmOptions, evaluate_mlm
from lrgen.pretrain.loop import run_pretrain

from helpers import read_metrics, write_fasta

pytestmark = pytest.mark.gpu


@pytest.fixture
def genome(tmp_path):
    rng = np.random.default_rng(0)
    # a Markov-ish sequence (learnable beyond composition) of 200 kbp
    seq = "".join(rng.choice(["ACGT", "AATT", "GGCC", "TATA"], 50_000))
    return str(write_fasta(tmp_path / "g.fa", {"g": seq}))


@pytest.mark.parametrize("model", ["caduceus-ps-tiny", "hawk-tiny", "ntv2-tiny"])
def test_gpu_bf16_training_learns_and_resumes_exactly(genome, tmp_path, model):
    a, b = tmp_path / "a", tmp_path / "b"
    # deterministic kernels: without them two identical GPU runs differ by up to ~2e-3 (docs/pretrain.md)
    flags = dict(model=model, fasta=[genome], context=1024, steps=40, batch_size=8, lr=3e-3, save_every=20,
                 eval_every=20, val_windows=8, val_fraction=0.1, device="cuda", deterministic=True)
    summary = run_pretrain({**flags, "output": str(a)})
    assert summary["dtype"] == "bfloat16"
    train = read_metrics(a)
    losses = [r["loss"] for r in train if r["split"] == "train"]
    assert np.mean(losses[-5:]) < np.mean(losses[:3]) - 0.3
    shutil.copytree(a, b)
    shutil.rmtree(b / "checkpoints" / "step-0000040")
    (b / "checkpoints" / "latest").write_text("step-0000020\n")
    run_pretrain({"output": str(b), "resume": True})
    resumed = read_metrics(b)
    assert [r["loss"] for r in resumed] == [r["loss"] for r in train]
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run


def test_gpu_context_sweep_streams_100kbp(genome, tmp_path):
    result = evaluate_mlm(MlmOptions(model="caduceus-ps-tiny", fasta=[genome], context=[1_000, 100_000], windows=2, device="cuda", output=str(tmp_path / "eval")))
    rows = result["results"]
    assert result["device"].startswith("cuda") and all("error" not in r for r in rows)
    assert rows[1]["tokens_per_window"] == 100_000 and rows[1]["mode"] == "stream"


def test_gpu_auto_batch_size_is_resolved_saved_and_kept_on_resume(genome, tmp_path):
    out = tmp_path / "run"
    flags = dict(model="caduceus-ps-tiny", fasta=[genome], context=1024, steps=2, batch_size="auto", eval_every=2,
                 val_windows=2, val_fraction=0.1, device="cuda", output=str(out))
    summary = run_pretrain(flags)
    batch = summary["batch_size"]
    assert batch >= 64 and batch & (batch - 1) == 0  # a tiny model at 1 kb: large, a power of two
    assert summary["gpu_memory_gb"] > 0 and "gpu_memory_gb" in read_metrics(out)[0]
    resumed = run_pretrain({**flags, "steps": 3, "resume": True})
    assert resumed["batch_size"] == batch
