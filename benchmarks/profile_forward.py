"""Where the time of a streamed forward goes: the CUDA kernels and PyTorch ops of one pass, from torch.profiler.

    python benchmarks/profile_forward.py --model caduceus-ps-131k --tokens 1M --chunk-size 131072

Prints the wall time of the pass and the ops sorted by their total CUDA time (a warm-up pass runs first).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from lrgen.engine import stream
from lrgen.models.registry import build_model, preset_config
from lrgen.sizes import parse_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="caduceus-ps-131k")
    parser.add_argument("--tokens", default="1M")
    parser.add_argument("--chunk-size", default="131072")
    parser.add_argument("--rows", type=int, default=30)
    args = parser.parse_args()
    model = build_model(preset_config(args.model)).cuda().eval()
    ids = torch.randint(7, 11, (1, parse_size(args.tokens)), device="cuda")
    chunk = parse_size(args.chunk_size)

    def run():
        return stream(model, ids, chunk_size=chunk, output="hidden", dtype=torch.bfloat16)

    run()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run()
    torch.cuda.synchronize()
    print(f"{args.model}: {ids.shape[1]:,} tokens, chunk {chunk:,}: {time.perf_counter() - start:.3f} s, "
          f"peak {torch.cuda.max_memory_allocated() / 1e9:.2f} GB")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
