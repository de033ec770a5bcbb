"""The same pretraining run twice from the same seed, with Caduceus' unfused path (every Mamba direction under
autograd, the reference) and with the fused BiMamba function (the default): the loss curves must agree within noise.

    python benchmarks/train_curve.py --fasta G1.fa.gz --fasta G2.fa.gz --steps 300

Prints a Markdown table of training loss (mean over each stretch of steps), validation loss at every evaluation and
seconds per run; the runs live in ``--work-dir`` (removed first).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mdtable import print_table  # noqa: E402

from lrgen.models.caduceus import BiMamba  # noqa: E402
from lrgen.pretrain.config import resolve_config  # noqa: E402
from lrgen.pretrain.loop import train  # noqa: E402


def run(fused: bool, args) -> tuple[list[dict], dict]:
    BiMamba.fused = fused
    out = Path(args.work_dir) / ("fused" if fused else "unfused")
    shutil.rmtree(out, ignore_errors=True)
    summary = train(resolve_config(dict(
        model=args.model, output=str(out), fasta=args.fasta, val_fraction=0.02, context=args.context,
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every, val_windows=32,
        save_every=args.steps, keep_checkpoints=1, seed=args.seed, device=args.device,
    )))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return records, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fasta", action="append", required=True)
    p.add_argument("--model", default="caduceus-ps-131k")
    p.add_argument("--context", default="2kb")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--work-dir", default="runs/train-curve")
    args = p.parse_args()
    results = {fused: run(fused, args) for fused in (False, True)}
    rows = []
    for step in range(args.eval_every, args.steps + 1, args.eval_every):
        row = [str(step)]
        for fused in (False, True):
            records = results[fused][0]
            train_losses = [r["loss"] for r in records
                            if r["split"] == "train" and step - args.eval_every < r["step"] <= step]
            val = [r["loss"] for r in records if r["split"] == "val" and r["step"] == step]
            row += [f"{statistics.mean(train_losses):.4f}" if train_losses else "-", f"{val[0]:.4f}" if val else "-"]
        rows.append(row)
    print(f"\n{args.model}, {args.context} windows × {args.batch_size}, lr {args.lr}, seed {args.seed}\n")
    print_table(["step", "train loss (unfused)", "val loss (unfused)", "train loss (fused)", "val loss (fused)"], rows)
    for fused in (False, True):
        s = results[fused][1]
        print(f"\n{'fused' if fused else 'unfused'}: {s['seconds']:.1f} s, {s['tokens_per_s']:,.0f} tokens/s, "
              f"best val loss {s['best_val_loss']:.4f}")


if __name__ == "__main__":
    main()
