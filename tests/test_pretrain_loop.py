"""The pretraining loop on CPU: loss falls on real genomes, exact resume, run-directory rules, schedule, CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import lrgen
from lrgen.errors import LrgenError
from lrgen.pretrain.loop import deterministic_algorithms, run_pretrain
from lrgen.runtime.schedule import lr_factor

from helpers import random_bases, read_metrics, write_fasta


@pytest.fixture
def small_fasta(tmp_path):
    rng = np.random.default_rng(0)
    seqs = {f"c{i}": random_bases(n, rng) for i, n in enumerate((6000, 3000))}
    return str(write_fasta(tmp_path / "toy.fa", seqs))


def test_loss_falls_on_real_genomes(shared_data, tmp_path):
    genomes = shared_data / "genomes"
    run = tmp_path / "run"
    summary = run_pretrain(dict(
        model="hawk-tiny", fasta=[str(genomes / "hpylori_G27.fa.gz"), str(genomes / "saureus_N315.fa.gz")],
        output=str(run), context=128, steps=20, batch_size=8, lr=5e-3, eval_every=10, val_windows=8, save_every=10,
    ))
    records = read_metrics(run)
    train = [r["loss"] for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    assert len(train) == 20 and [r["step"] for r in val] == [10, 20]
    assert np.mean(train[:3]) > math.log(4) + 0.5  # starts near uniform over the 12-token vocabulary
    assert np.mean(train[-5:]) < np.mean(train[:3]) - 0.6
    assert val[-1]["loss"] < math.log(4) + 0.1 and val[-1]["accuracy"] > 0.25
    assert summary["rc_augment"] is True and summary["tokens"] == 20 * 8 * 128
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000020"
    assert (run / "checkpoints" / "best" / "model.safetensors").is_file()
    model = lrgen.load_model(str(run))
    weights = load_file(str(run / "checkpoints" / "step-0000020" / "model.safetensors"))
    for name, tensor in model.state_dict().items():
        if name in weights:
            assert torch.equal(tensor, weights[name])


def test_resume_repeats_an_uninterrupted_run(small_fasta, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    flags = dict(model="hawk-tiny", fasta=[small_fasta], context=96, steps=6, batch_size=3, grad_accum=2,
                 save_every=3, eval_every=2, val_windows=4, val_fraction=0.2, seed=7)
    run_pretrain({**flags, "output": str(a)})
    # simulate a crash during step 6: the step-3 checkpoint is the latest one, metrics went on (torn last line)
    shutil.copytree(a, b)
    shutil.rmtree(b / "checkpoints" / "step-0000006")
    (b / "checkpoints" / "latest").write_text("step-0000003\n")
    lines = (a / "metrics.jsonl").read_text().splitlines()
    (b / "metrics.jsonl").write_text("".join(l + "\n" for l in lines if json.loads(l)["step"] <= 5) + '{"step": 6, "spl')
    run_pretrain({"output": str(b), "resume": True})
    ma, mb = read_metrics(a), read_metrics(b)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in rs]  # noqa: E731
    assert strip(ma) == strip(mb)
    wa = load_file(str(a / "checkpoints" / "step-0000006" / "model.safetensors"))
    wb = load_file(str(b / "checkpoints" / "step-0000006" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_time_limit_stops_at_a_checkpoint_and_resume_finishes_the_run(small_fasta, tmp_path, monkeypatch):
    """A fake clock where every step takes 10 s: with --time-limit 35s the run stops before the step that would end
    past 35 s (after 3), saves that step; --resume then gives the losses and weights of an uninterrupted run."""
    import lrgen.pretrain.loop as loop

    clock = types.SimpleNamespace(now=0.0)
    clock.perf_counter = lambda: clock.now
    step = loop._Trainer._train_step

    def slow_step(self):
        clock.now += 10.0
        return step(self)

    monkeypatch.setattr(loop, "time", clock)
    monkeypatch.setattr(loop._Trainer, "_train_step", slow_step)
    a, b = tmp_path / "a", tmp_path / "b"
    flags = dict(model="hawk-tiny", fasta=[small_fasta], context=96, steps=6, batch_size=3, save_every=100,
                 eval_every=2, val_windows=4, val_fraction=0.2, seed=3)
    run_pretrain({**flags, "output": str(a)})
    stopped = run_pretrain({**flags, "output": str(b), "time_limit": "35s"})
    assert stopped["stopped"] == "time limit" and stopped["steps"] == 3 and stopped["total_steps"] == 6
    assert (b / "checkpoints" / "latest").read_text().strip() == "step-0000003"
    assert "time_limit" not in json.loads((b / "pretrain_config.json").read_text())  # one invocation's setting
    finished = run_pretrain({"output": str(b), "resume": True})
    assert finished["stopped"] is None and finished["steps"] == 6
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in rs]  # noqa: E731
    assert strip(read_metrics(a)) == strip(read_metrics(b))
    wa = load_file(str(a / "checkpoints" / "step-0000006" / "model.safetensors"))
    wb = load_file(str(b / "checkpoints" / "step-0000006" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(LrgenError, match="cannot read duration"):
        run_pretrain({**flags, "output": str(tmp_path / "d"), "time_limit": "soon"})


def test_deterministic_runs_use_deterministic_kernels_and_restore_the_setting(small_fasta, tmp_path, monkeypatch):
    seen = []
    original = lrgen.pretrain.loop._Trainer.run
    monkeypatch.setattr(lrgen.pretrain.loop._Trainer, "run",
                        lambda self: seen.append(torch.are_deterministic_algorithms_enabled()) or original(self))
    flags = dict(model="hawk-tiny", fasta=[small_fasta], context=96, steps=2, batch_size=2, eval_every=2,
                 val_windows=2, val_fraction=0.2)
    run_pretrain({**flags, "output": str(tmp_path / "a"), "deterministic": True})
    run_pretrain({**flags, "output": str(tmp_path / "b")})
    assert seen == [True, False] and not torch.are_deterministic_algorithms_enabled()
    assert json.loads((tmp_path / "a" / "pretrain_config.json").read_text())["deterministic"] is True
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with pytest.raises(RuntimeError), deterministic_algorithms(True):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        raise RuntimeError("a failing run")
    assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_run_directory_rules(small_fasta, tmp_path):
    run = tmp_path / "run"
    flags = dict(model="hawk-tiny", fasta=[small_fasta], output=str(run), context=64, steps=1, batch_size=2)
    with pytest.raises(LrgenError, match="nothing to resume"):
        run_pretrain({**flags, "resume": True})
    with pytest.raises(LrgenError, match="validation data's longest stretch is 60 bp"):
        run_pretrain({**flags, "val_fraction": 0.01})
    run_pretrain(flags)
    with pytest.raises(LrgenError, match="already holds a run"):
        run_pretrain(flags)
    # resuming a finished run with a larger budget continues it
    summary = run_pretrain({"output": str(run), "resume": True, "steps": 2})
    assert summary["steps"] == 2 and [r["step"] for r in read_metrics(run) if r["split"] == "train"] == [1, 2]


def test_rc_augmentation_follows_the_model(small_fasta, tmp_path):
    common = dict(fasta=[small_fasta], context=32, steps=1, batch_size=2, val_windows=2)
    ps = run_pretrain({**common, "model": "caduceus-ps-tiny", "output": str(tmp_path / "ps")})
    assert ps["rc_augment"] is False and ps["family"] == "caduceus"
    forced = run_pretrain({**common, "model": "caduceus-ps-tiny", "output": str(tmp_path / "ps2"), "rc_augment": True})
    assert forced["rc_augment"] is True


def test_kmer_model_token_budget_and_tensorboard(small_fasta, tmp_path, monkeypatch):
    scalars = []

    class FakeWriter:  # stands in for torch.utils.tensorboard.SummaryWriter (tensorboard is optional)
        def __init__(self, log_dir, purge_step=None):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            scalars.append((tag, step))

        def close(self):
            scalars.append(("closed", None))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    summary = run_pretrain(dict(model="ntv2-tiny", fasta=[small_fasta], output=str(tmp_path / "nt"), context=600,
                                val_fraction=0.2, tokens="2.4k", batch_size=2, val_windows=2))
    assert summary["steps"] == 2 and summary["tokens"] == 2400  # the budget counts bases
    assert ("train/loss", 1) in scalars and ("val/perplexity_per_base", 2) in scalars and scalars[-1][0] == "closed"
    val = summary["val"]
    assert val["perplexity_per_base"] == pytest.approx(math.exp(val["loss"] / 6))
    assert val["perplexity"] == pytest.approx(math.exp(val["loss"]))


def test_lr_schedule():
    total, warmup = 100, 10
    lrs = [lr_factor(s, total, warmup, 0.1) for s in range(total + 1)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.55) and lrs[100] == pytest.approx(0.1)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:]))


def test_cli_with_config_file(small_fasta, tmp_path):
    from lrgen.cli import app

    cfg = tmp_path / "pretrain.toml"
    cfg.write_text(f'model = "hawk-tiny"\nfasta = ["{small_fasta}"]\ncontext = "64"\nsteps = 5\nbatch-size = 2\n')
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["pretrain", "--config", str(cfg), "--steps", "1", "--output", str(run)])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "pretrain_config.json").read_text())
    assert saved["steps"] == 1 and saved["context"] == 64 and saved["model"] == "hawk-tiny"
    assert "trained 1 steps" in result.output
    stopped = CliRunner().invoke(app, ["pretrain", "--config", str(cfg), "--output", str(tmp_path / "r2"),
                                       "--time-limit", "0.001s"])
    assert stopped.exit_code == 0 and "stopped at the time limit after 0 of 5 steps" in stopped.output
    assert "nothing trained yet" in stopped.output and "checkpoint saved" not in stopped.output
    assert not (tmp_path / "r2" / "checkpoints").exists()  # nothing trained, nothing saved but the configuration
