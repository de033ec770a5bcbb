"""Batch size and peak learning rate of each model, from a short sweep (seconds per setting).

1. Throughput: a few steps at each ``--sweep-batches`` size; the rate is the median bases/s of the steps after the
   first (which compiles kernels). The batch is the smallest whose rate is within ``--batch-tolerance`` of the best:
   at a fixed token budget a smaller batch takes more optimizer steps, which helps a short run, as long as it does
   not cost throughput.
2. Learning rate: one short run per ``--sweep-lrs`` value at that batch, ``--sweep-tokens`` bases each, with the
   main runs' schedule (5% warm-up, cosine to 10%); the lowest final validation loss wins. A short run favours
   larger rates a little (it rewards fast early progress); the grid keeps that in check.

The schedule shape itself is not swept: its effect shows only at the end of a full run, beyond a short sweep.
"""

from __future__ import annotations

import json
import math
import statistics

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
    rates = {batch: _throughput(suite, name, batch) for batch in a.sweep_batches}
    best = max(rates.values())
    batch = min(b for b, rate in rates.items() if rate >= (1 - a.batch_tolerance) * best)
    losses = {lr: _lr_run(suite, name, batch, lr) for lr in a.sweep_lrs}
    lr = min(losses, key=lambda k: losses[k] if math.isfinite(losses[k]) else math.inf)
    chosen = {"batch_size": batch, "lr": lr, "bases_per_s": rates[batch]}
    suite.state.put("sweep", name, "choice", value=chosen)
    log(f"sweep {name}: batch {batch}, peak LR {lr:g} ({rates[batch]:,.0f} bases/s)")
    return chosen


def _throughput(suite: Suite, name: str, batch: int) -> float:
    key = ("sweep", name, "throughput", str(batch))
    rate = suite.state.get(*key)
    if rate is None:
        steps = suite.args.probe_steps
        run = suite.work / "sweep" / name / f"probe-b{batch}"
        suite.train(name, run, batch_size=batch, lr=suite.args.sweep_lrs[0], steps=steps, eval_every=steps)
        records = [json.loads(line) for line in (run / METRICS_NAME).read_text().splitlines()]
        speeds = [r["tokens_per_s"] for r in records if r["split"] == "train" and r["step"] > 1]
        rate = statistics.median(speeds or [r["tokens_per_s"] for r in records if r["split"] == "train"])
        suite.state.put(*key, value=rate)
        log(f"sweep {name}: batch {batch}: {rate:,.0f} bases/s")
    return rate


def _lr_run(suite: Suite, name: str, batch: int, lr: float) -> float:
    key = ("sweep", name, "lr", str(batch), f"{lr:g}")
    result = suite.state.get(*key)
    if result is None:
        a = suite.args
        steps = max(1, a.sweep_tokens // (batch * a.context))
        run = suite.work / "sweep" / name / f"b{batch}-lr{lr:g}"
        summary = suite.train(name, run, batch_size=batch, lr=lr, steps=steps, eval_every=steps)
        loss = summary["val"]["loss"]
        result = {"val_loss": loss if math.isfinite(loss) else None, "steps": steps,
                  "bases": steps * batch * a.context}
        suite.state.put(*key, value=result)
        log(f"sweep {name}: batch {batch}, LR {lr:g}: validation loss {loss:.4f} after {result['bases']:,} bases")
    return result["val_loss"] if result["val_loss"] is not None else math.inf
