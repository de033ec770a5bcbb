"""Time and peak memory of full versus streamed evaluation as the sequence grows; prints a Markdown table.

Every (mode, length) runs in a fresh process so that one measurement's cached memory cannot hide another's: on
CUDA the peak is ``torch.cuda.max_memory_allocated`` above the memory held before the pass, on CPU the rise of the
peak resident set size (``ru_maxrss``). Each process warms up on one chunk first (kernel compilation, thread
pools). A mode that fails (out of memory) or takes longer than ``--max-seconds`` is not tried at longer lengths.

    python benchmarks/bench_engine.py --device cuda --preset caduceus-ps-131k --lengths 1k,4k,16k,64k,256k,1M \
        --chunk-size 65536 --dtype bfloat16
    python benchmarks/bench_engine.py --device cpu --preset caduceus-ps-tiny --lengths 1k,4k,16k,64k
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from mdtable import print_table


def measure(mode: str, preset: str, length: int, device: str, chunk_size: int, dtype: str | None) -> dict:
    """One pass in this process; returns seconds and peak bytes above the pre-pass level."""
    import resource
    import time

    import torch

    from lrgen import load_model
    from lrgen.engine import stream

    torch.manual_seed(0)
    dev = torch.device(device)
    model = load_model(preset).to(dev).eval()
    autocast = getattr(torch, dtype) if dtype else None
    ids = torch.randint(7, 11, (1, length), device=dev)

    def run(x):
        if mode == "stream":
            return stream(model, x, chunk_size=chunk_size, dtype=autocast)
        with torch.no_grad(), torch.autocast(dev.type, dtype=autocast, enabled=autocast is not None):
            return model(x)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    run(ids[:, : min(length, chunk_size)])
    sync()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    out = run(ids)
    sync()
    seconds = time.perf_counter() - start
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    del out
    return {"seconds": seconds, "peak_bytes": peak}


def run_one(mode: str, args, length: int) -> dict | str:
    """Measure in a child process; a string says why there is no number."""
    cmd = [sys.executable, __file__, "--one", mode, "--preset", args.preset, "--device", args.device,
           "--lengths", str(length), "--chunk-size", str(args.chunk_size)]
    if args.dtype:
        cmd += ["--dtype", args.dtype]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.max_seconds * 4 + 120)
    except subprocess.TimeoutExpired:
        return "timeout"
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["failed"]
        return "OOM" if "out of memory" in proc.stderr.lower() else tail[0][:60]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--preset", default="caduceus-ps-tiny")
    parser.add_argument("--lengths", default="1k,4k,16k,64k", help="comma-separated, e.g. 1k,16k,256k,1M")
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--dtype", default=None, help="autocast dtype, e.g. bfloat16")
    parser.add_argument("--modes", default="full,stream")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop a mode after a pass this long")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from lrgen.sizes import parse_size_list

    lengths = parse_size_list(args.lengths)
    if args.one:
        print(json.dumps(measure(args.one, args.preset, lengths[0], args.device, args.chunk_size, args.dtype)))
        return

    modes = args.modes.split(",")
    stopped: dict[str, str] = {}
    rows = []
    for length in lengths:
        row = [f"{length:,}"]
        for mode in modes:
            if mode in stopped:
                row += ["—", ""]
                continue
            result = run_one(mode, args, length)
            if isinstance(result, str):
                stopped[mode] = result
                row += [result, ""]
            else:
                row += [f"{result['seconds']:.2f}", f"{result['peak_bytes'] / 2**20:,.0f}"]
                if result["seconds"] > args.max_seconds:
                    stopped[mode] = "slow"
        rows.append(row)
        print("measured " + " | ".join(row), file=sys.stderr, flush=True)

    title = (f"{args.preset} on {args.device}, chunk_size {args.chunk_size}"
             f"{', autocast ' + args.dtype if args.dtype else ''}: seconds and peak MiB above the model")
    header = ["length"] + [f"{m} {what}" for m in modes for what in ("s", "MiB")]
    print(f"\n{title}\n")
    print_table(header, rows, align="---:")


if __name__ == "__main__":
    main()
