"""Batch size and peak learning rate of each model, from a short sweep (seconds per setting).

1. Throughput: a few steps at each ``--sweep-batches`` size; the rate is the median bases/s of the steps after the
   first (which compiles kernels); a batch that runs out of GPU memory is recorded as such and left out. The batch
   is the smallest whose rate is within ``--batch-tolerance`` of the best: at a fixed token budget a smaller batch
   takes more optimizer steps, which helps a short run, as long as it does not cost throughput.
2. Learning rate: one short run per ``--sweep-lrs`` value at that batch, ``--sweep-tokens`` bases each, with the
   main runs' schedule (5% warm-up, cosine to 10%); the lowest final validation loss wins. A short run favours
   larger rates a little (it rewards fast early progress); the grid keeps that in check.

The schedule shape itself is not swept: its effect shows only at the end of a full run, beyond a short sweep.
"""

from __future__ import annotations

import json
import math
import statistics

import torch

from lrgen.errors import LrgenError
from lrgen.pretrain.loop import METRICS_NAME

from suite.context import Suite, log


def run_sweep(suite: Suite) -> dict[str, dict]:
    """Each model's choice ``{"batch_size", "lr", "bases_per_s"}``, from the state or by sweeping."""
    return {name: _sweep_model(suite, name) for name in suite.names}


def _sweep_model(suite: Suite, name: str) -> dict:
    chosen = suite.state.get("sweep", name, "choice")
    if chosen is not None:
        return chosen
    a = suite.args
    measured = {batch: _throughput(suite, name, batch) for batch in a.sweep_batches}
    rates = {batch: rate for batch, rate in measured.items() if rate is not None}
    if not rates:
        raise LrgenError(f"{name}: every --sweep-batches size ran out of GPU memory; give smaller ones")
    best = max(rates.values())
    batch = min(b for b, rate in rates.items() if rate >= (1 - a.batch_tolerance) * best)
    losses = {lr: _lr_run(suite, name, batch, lr) for lr in a.sweep_lrs}
    lr = min(losses, key=lambda k: losses[k] if math.isfinite(losses[k]) else math.inf)
    chosen = {"batch_size": batch, "lr": lr, "bases_per_s": rates[batch]}
    suite.state.put("sweep", name, "choice", value=chosen)
    log(f"sweep {name}: batch {batch}, peak LR {lr:g} ({rates[batch]:,.0f} bases/s)")
    return chosen


def _throughput(suite: Suite, name: str, batch: int) -> float | None:
    """Bases/s of ``name`` at ``batch`` (None: out of GPU memory)."""
    key = ("sweep", name, "throughput", str(batch))
    probe = suite.state.get(*key)
    if probe is None:
        steps = suite.args.probe_steps
        run = suite.work / "sweep" / name / f"probe-b{batch}"
        try:
            suite.train(name, run, batch_size=batch, lr=suite.args.sweep_lrs[0], steps=steps, eval_every=steps)
        except torch.cuda.OutOfMemoryError:
            probe = {"error": "out of GPU memory"}
        if probe is None:
            records = _metrics(run)
            speeds = [r["tokens_per_s"] for r in records if r["split"] == "train" and r["step"] > 1]
            probe = {"bases_per_s": statistics.median(speeds or [r["tokens_per_s"] for r in records
                                                                   if r["split"] == "train"])}
        else:
            torch.cuda.empty_cache()
        suite.state.put(*key, value=probe)
        log(f"sweep {name}: batch {batch}: " + (f"{probe['bases_per_s']:,.0f} bases/s" if "bases_per_s" in probe
                                                 else probe["error"]))
    return probe.get("bases_per_s")


def _lr_run(suite: Suite, name: str, batch: int, lr: float) -> float:
    key = ("sweep", name, "lr", str(batch), f"{lr:g}")
    result = suite.state.get(*key)
    if result is None:
        a = suite.args
        steps = max(1, a.sweep_tokens // (batch * a.context))
        run = suite.work / "sweep" / name / f"b{batch}-lr{lr:g}"
        suite.train(name, run, batch_size=batch, lr=lr, steps=steps, eval_every=steps)
        loss = [r for r in _metrics(run) if r["split"] == "val"][-1]["loss"]
        result = {"val_loss": loss if math.isfinite(loss) else None, "steps": steps,
                  "bases": steps * batch * a.context}
        suite.state.put(*key, value=result)
        log(f"sweep {name}: batch {batch}, LR {lr:g}: validation loss {loss:.4f} after {result['bases']:,} bases")
    return result["val_loss"] if result["val_loss"] is not None else math.inf


def _metrics(run) -> list[dict]:
    """The records of a run's metrics.jsonl (those of earlier calls included)."""
    return [json.loads(line) for line in (run / METRICS_NAME).read_text().splitlines()]
