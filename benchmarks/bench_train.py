"""Training-step throughput of caduceus-ps-50m, hawk-50m and ntv2-50m at 12 kbp on one GPU, bf16 autocast, AdamW,
masked-LM loss on 15% of positions; the batch is doubled until the GPU is full (out of memory) or ``--max-batch``.
Prints one Markdown table: the best batch per model with tokens/s and bases/s (NTv2 reads 6-mers: 6 bp per token).

    python benchmarks/bench_train.py
    python benchmarks/bench_train.py --models hawk-50m --context 12kbp --steps 5
    python benchmarks/bench_train.py --compile      # each model also with --compile, ratio to eager in this run

Caduceus runs twice, the unfused path (every Mamba direction under autograd through the scan runner, the baseline)
and the default fused one (:mod:`lrgen.ops.bimamba`); the last column is each row's
tokens/s over its model's first row, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from mdtable import print_table

from lrgen.models.caduceus import BiMamba
from lrgen.models.compiled import compile_position_wise
from lrgen.models.registry import build_model, family_module, preset_config
from lrgen.ops.backend import select_backend
from lrgen.sizes import parse_size


def batch_ids(model, bases: int, batch: int) -> tuple[torch.Tensor, int]:
    """Random DNA of ``bases`` bp as the model's tokens (batch, tokens), and its mask token id."""
    tok = model.tokenizer
    if not tok.per_base:
        seq = "".join(np.random.default_rng(0).choice(list("ACGT"), bases))
        ids = tok.encode(seq)[None].repeat(batch, 1)
        return ids.cuda(), tok.mask_id
    nucleotides = torch.tensor(tok.nucleotide_ids, device="cuda")
    return nucleotides[torch.randint(0, 4, (batch, bases), device="cuda")], tok.mask_id


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


def measure_model(name: str, variant: str, bases: int, args) -> tuple | None:
    """The best (tokens/s, batch, tokens/seq, s/step, peak GB, parameters) over doubling batches; None if even the
    first batch does not fit. ``variant``: ``eager``, ``compiled`` or ``unfused`` (Caduceus without the fused
    BiMamba function)."""
    model = build_model(preset_config(name)).cuda().train()
    if variant == "compiled":
        compile_position_wise(model)
    for module in model.modules():
        if isinstance(module, BiMamba):
            module.fused = variant != "unfused"
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
        print(f"measured {name} {variant} batch {batch}: {sec:.3f} s/step, peak {peak:.1f} GB",
              flush=True)
        if best is None or batch * tokens / sec > best[0]:
            best = (batch * tokens / sec, batch, tokens, sec, peak, model.num_parameters())
        batch *= 2
    del model, opt
    torch.cuda.empty_cache()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="caduceus-ps-50m,hawk-50m,ntv2-50m")
    parser.add_argument("--context", default="12kbp")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--start-batch", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--compile", action="store_true", help="also measure each model with --compile")
    args = parser.parse_args()
    bases = parse_size(args.context)
    torch.manual_seed(0)
    props = torch.cuda.get_device_properties(0)
    print(f"device: {props.name}; torch {torch.__version__}; kernels: {select_backend('cuda')}")
    rows = []
    for name in args.models.split(","):
        baseline_tps = None
        config = preset_config(name)
        variants = ["unfused", "eager"] if config.model_type == "caduceus" else ["eager"]
        if args.compile and family_module(config.model_type).MODEL_CLASS.position_wise:
            variants.append("compiled")
        for variant in variants:
            best = measure_model(name, variant, bases, args)
            label = {"eager": name, "compiled": f"{name} (--compile)", "unfused": f"{name} (unfused)"}[variant]
            if best is None:
                rows.append([label, "out of memory at the first batch", "", "", "", "", "", "", ""])
                continue
            tps, b, tokens, sec, peak, params = best
            baseline_tps = baseline_tps or tps
            rows.append([label, f"{params / 1e6:.1f}M", str(b), f"{tokens:,}", f"{sec:.3f}", f"{tps:,.0f}",
                         f"{b * bases / sec:,.0f}", f"{peak:.1f}", f"{tps / baseline_tps:.2f}×"])
    print(f"\nTraining step at {bases:,} bp, bf16 autocast, AdamW (fused), MLM loss on 15% of positions\n")
    header = ["model", "params", "batch", "tokens/seq", "s/step", "tokens/s", "bp/s", "peak GB", "vs first row"]
    print_table(header, rows)


if __name__ == "__main__":
    main()
