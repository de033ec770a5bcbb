"""The main runs: one token budget for every model, each at its swept batch size and learning rate.

The budget is ``--tokens`` bases, or what the three models train in ``--train-seconds`` together at the sweep's
measured rates, rounded down to whole steps of every model's batch. A run validates ``--eval-points`` times and
keeps its best checkpoint (lowest validation loss), which is exported in bfloat16 and is what every evaluation
reads. Reported speed is bases over the summed step times (validation and checkpoints excluded), so a run split
over several calls reports what one call would.
"""

from __future__ import annotations

import json
import math

from lrgen.models.checkpoint import CHECKPOINTS_DIR
from lrgen.pretrain.checkpoints import BEST
from lrgen.pretrain.loop import METRICS_NAME

from suite.context import Suite, log
from suite.family import export


def token_budget(suite: Suite, recipe: dict[str, dict]) -> int:
    """Bases per model (fixed once chosen, so a continued suite keeps it)."""
    budget = suite.state.get("budget")
    if budget is not None:
        return budget["tokens"]
    a = suite.args
    unit = math.lcm(*(r["batch_size"] for r in recipe.values())) * a.context
    wanted = a.tokens if a.tokens is not None else a.train_seconds / sum(1 / r["bases_per_s"] for r in recipe.values())
    tokens = max(unit, int(wanted // unit) * unit)
    estimated = {name: tokens / r["bases_per_s"] for name, r in recipe.items()}
    suite.state.put("budget", value={"tokens": tokens, "estimated_seconds": estimated})
    log(f"token budget {tokens:,} bases per model; estimated training time "
        + ", ".join(f"{name} {s:,.0f} s" for name, s in estimated.items()))
    return tokens


def train_models(suite: Suite, recipe: dict[str, dict], tokens: int) -> None:
    for name in suite.names:
        if suite.state.get("train", name) is not None:
            continue
        a, r = suite.args, recipe[name]
        steps = tokens // (r["batch_size"] * a.context)
        run = suite.work / "runs" / name
        log(f"training {name}: {steps:,} steps × {r['batch_size']} windows × {a.context:,} bp, peak LR {r['lr']:g}")
        summary = suite.train(name, run, batch_size=r["batch_size"], lr=r["lr"], steps=steps,
                              eval_every=max(1, steps // a.eval_points))
        export(run / CHECKPOINTS_DIR / BEST, suite.work / "models" / name)
        record = _record(run, summary, steps * r["batch_size"] * a.context)
        suite.state.put("train", name, value=record)
        log(f"{name}: {record['parameters']:,} parameters, {record['bases_per_s']:,.0f} bases/s, best validation "
            f"loss {record['best_val_loss']:.4f} ({record['val_perplexity_per_base']:.3f} per base)")


def _record(run, summary: dict, tokens: int) -> dict:
    """What the report needs of a finished run: sizes, speed, losses and the validation curve."""
    records = [json.loads(line) for line in (run / METRICS_NAME).read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    step_seconds = sum(tokens / len(train) / r["tokens_per_s"] for r in train)
    best = min(val, key=lambda r: r["loss"])
    return {
        "parameters": summary["parameters"], "rc_augment": summary["rc_augment"], "dtype": summary["dtype"],
        "steps": summary["steps"], "tokens": tokens, "step_seconds": step_seconds,
        "bases_per_s": tokens / step_seconds, "final_train_loss": train[-1]["loss"],
        "best_val_loss": best["loss"], "best_val_step": best["step"],
        "val_perplexity_per_base": best["perplexity_per_base"], "val_accuracy": best["accuracy"],
        "val_curve": [[r["tokens"], r["loss"], r["perplexity_per_base"], r["accuracy"]] for r in val],
        "train_curve": [[r["tokens"], r["loss"]] for r in train],
    }
