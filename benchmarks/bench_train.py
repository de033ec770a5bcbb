"""Training-step throughput of caduceus-ps-50m, hawk-50m and ntv2-50m at 12 kbp on one GPU, bf16 autocast, AdamW,
masked-LM loss on 15% of positions; the batch is doubled until the GPU is full (out of memory) or ``--max-batch``.
Prints one Markdown table: the best batch per model with tokens/s and bases/s (NTv2 reads 6-mers: 6 bp per token).

    python benchmarks/bench_train.py
    python benchmarks/bench_train.py --models hawk-50m --context 12kbp --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from mdtable import print_table

from lrgen.models.registry import build_model, preset_config
from lrgen.ops.backend import select_backend
from lrgen.sizes import parse_size
from lrgen.tokenizer import MASK_ID, KmerTokenizer


def batch_ids(model, bases: int, batch: int) -> tuple[torch.Tensor, int]:
    """Random DNA of ``bases`` bp as the model's tokens (batch, tokens), and the mask token id."""
    if model.tokenizer_kind == "kmer":
        tok = KmerTokenizer()
        seq = "".join(np.random.default_rng(0).choice(list("ACGT"), bases))
        ids = tok.encode(seq)[None].repeat(batch, 1)
        return ids.cuda(), tok.token_to_id["<mask>"]
    return torch.randint(7, 11, (batch, bases), device="cuda"), MASK_ID


def step_seconds(model, opt, bases: int, batch: int, steps: int) -> tuple[float, int]:
    """(median seconds per training step, tokens per sequence)."""
    ids, mask_id = batch_ids(model, bases, batch)
    masked = torch.rand(ids.shape, device="cuda") < 0.15
    inputs = ids.masked_fill(masked, mask_id)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(inputs)
        loss = F.cross_entropy(logits[masked].float(), ids[masked])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), ids.shape[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="caduceus-ps-50m,hawk-50m,ntv2-50m")
    parser.add_argument("--context", default="12kbp")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--start-batch", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=256)
    args = parser.parse_args()
    bases = parse_size(args.context)
    torch.manual_seed(0)
    props = torch.cuda.get_device_properties(0)
    print(f"device: {props.name}; torch {torch.__version__}; kernels: {select_backend('cuda')}")
    rows = []
    for name in args.models.split(","):
        model = build_model(preset_config(name)).cuda().train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        best = None
        batch = args.start_batch
        while batch <= args.max_batch:
            torch.cuda.reset_peak_memory_stats()
            try:
                sec, tokens = step_seconds(model, opt, bases, batch, args.steps)
            except torch.cuda.OutOfMemoryError:
                opt.zero_grad(set_to_none=True)
                break
            finally:
                torch.cuda.empty_cache()
            peak = torch.cuda.max_memory_allocated() / 1e9
            print(f"measured {name} batch {batch}: {sec:.3f} s/step, peak {peak:.1f} GB", flush=True)
            if best is None or batch * tokens / sec > best[0]:
                best = (batch * tokens / sec, batch, tokens, sec, peak)
            batch *= 2
        if best is None:
            rows.append([name, "out of memory at the first batch", "", "", "", "", ""])
        else:
            tps, b, tokens, sec, peak = best
            rows.append([name, f"{model.num_parameters() / 1e6:.1f}M", str(b), f"{tokens:,}", f"{sec:.3f}",
                         f"{tps:,.0f}", f"{b * bases / sec:,.0f}", f"{peak:.1f}"])
        del model, opt
        torch.cuda.empty_cache()
    print(f"\nTraining step at {bases:,} bp, bf16 autocast, AdamW (fused), MLM loss on 15% of positions\n")
    header = ["model", "params", "batch", "tokens/seq", "s/step", "tokens/s", "bp/s", "peak GB"]
    print_table(header, rows)


if __name__ == "__main__":
    main()
