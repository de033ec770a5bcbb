"""Where the time of one training step goes: torch.profiler over a forward + backward + AdamW step of a model at
12 kbp, bf16 autocast, masked-LM loss on 15% of positions (as ``benchmarks/bench_train.py``).

    python benchmarks/profile_train.py --model caduceus-ps-50m --context 12kbp --batch 4
    python benchmarks/profile_train.py --model ntv2-50m --context 2kbp --batch 64 --compile

Prints the step's wall time, tokens/s and peak memory, the CUDA time by kind of work (attention, conv1d, selective
and RG-LRU scans, matrix products, norms, optimizer, elementwise and copies, inductor's fused kernels with
``--compile``, other) and the top ops by CUDA time. Warm-up steps run first (they also compile), and the profiled
steps' times are divided by their number.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from lrgen.models.compiled import compile_position_wise
from lrgen.models.registry import build_model, preset_config
from lrgen.sizes import parse_size
from lrgen.tokenizer import MASK_ID

#: kind of work -> pattern over kernel / op names (first match wins)
KINDS = (
    ("compiled fusions (inductor)", r"^triton_(poi|red|per)_"),
    ("attention", r"flash|fmha|sdpa|attention|efficient_attention"),
    ("conv1d", r"^_conv\w*_kernel$|convolution|conv1d|conv_depthwise"),
    ("selective scan and RG-LRU scan", r"^_(fwd|bwd|local_checkpoints|adjoint_segment|state_pass|segment_state|scan)"
                                       r"_kernel$|selective_scan|linear_scan"),
    ("matrix products", r"gemm|matmul|mm_|cutlass|sm90_xmma|nvjet|addmm|\bmm\b|linear"),
    ("norms", r"norm|rms"),
    ("optimizer", r"adam|foreach|multi_tensor"),
    ("elementwise, casts and copies", r"elementwise|vectorized|copy|cat|fill|reduce|softplus|silu|sigmoid|exp|mul|add|"
                                      r"index|gather|scatter|flip|where|cast|to_copy|unrolled"),
)


def step(model, opt, ids: torch.Tensor) -> torch.Tensor:
    mask = torch.rand(ids.shape, device=ids.device) < 0.15
    inputs = torch.where(mask, torch.full_like(ids, MASK_ID), ids)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(inputs)
        loss = F.cross_entropy(logits[mask].float(), ids[mask])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="caduceus-ps-50m")
    parser.add_argument("--context", default="12kbp")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the position-wise parts (Hawk, NTv2), as lrgen pretrain --compile")
    args = parser.parse_args()
    model = build_model(preset_config(args.model)).cuda().train()
    if args.compile:
        compile_position_wise(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    length = parse_size(args.context)
    ids = torch.randint(7, 11, (args.batch, length), device="cuda")
    for _ in range(2):
        step(model, opt, ids)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(args.steps):
            step(model, opt, ids)
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / args.steps
    peak = torch.cuda.max_memory_allocated() / 1e9
    print(f"{args.model} at {length:,} bp, batch {args.batch}: {seconds * 1e3:.1f} ms per step (profiled), "
          f"{args.batch * length / seconds:,.0f} tokens/s, peak {peak:.1f} GB")
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    total = sum(e.device_time for e in kernels) / args.steps
    by_kind: dict[str, float] = defaultdict(float)
    for e in kernels:
        kind = next((k for k, pattern in KINDS if re.search(pattern, e.name, re.IGNORECASE)), "other")
        by_kind[kind] += e.device_time / args.steps
    print(f"\nCUDA time per step: {total / 1e3:.1f} ms of {seconds * 1e3:.1f} ms wall\n")
    print("| kind of work | ms per step | share |\n| --- | ---: | ---: |")
    for kind, us in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {us / 1e3:.1f} | {us / total:.0%} |")
    print()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
