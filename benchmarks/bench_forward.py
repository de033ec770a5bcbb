"""Whole forward over 1,048,576 tokens of Caduceus models on one GPU: time and peak memory, streamed through the
engine (``lrgen.engine.stream``, bf16 activations, float32 scan states) and, as the baseline measured in the same
run, the plain full-sequence ``model.embed`` under the same autocast. Prints a Markdown table.

    python benchmarks/bench_forward.py
    python benchmarks/bench_forward.py --models caduceus-ps-131k --chunk-sizes 65536,262144 --tokens 1048576

Models: ``caduceus-ps-131k`` (PS, d_model 256 × 16 layers), ``caduceus-ph-131k`` (the same size without RC
parameter sharing, i.e. Ph's backbone, built from the PS-131k config with ``rcps=False``), ``caduceus-ps-50m``,
``plantcaduceus-l32`` (PlantCaduceus's largest shape: PS, d_model 1024 × 32 layers, its 8-token vocabulary and
complement map, residuals in float32; random weights).
Peak memory is ``torch.cuda.max_memory_allocated`` over the pass, model weights included. Times are medians.
``--graphs`` adds, per chunk size, the pass replayed from a CUDA graph (``lrgen.engine.graphs``: a plain warm-up
pass and the capture are not timed; the peak covers them).
Targets (docs/benchmarks.md): PS-131k ≤ 0.5 s and ≤ 4 GB; Ph ≤ 0.25 s; PS-50m ≤ 2 s. Peer (official Caduceus on
mamba-ssm, H100, bf16): PS 1.62 s / 18.3 GB, Ph 0.75 s / 10.3 GB.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from mdtable import print_table

from lrgen.engine import stream
from lrgen.errors import LrgenError
from lrgen.engine.graphs import GraphedStream
from lrgen.models.registry import build_model, preset_config
from lrgen.ops.backend import select_backend
from lrgen.sizes import parse_size

PEER = {"caduceus-ps-131k": "1.62 s / 18.3 GB", "caduceus-ph-131k": "0.75 s / 10.3 GB"}


#: PlantCaduceus's vocabulary ([PAD] [MASK] [UNK] a c g t, padded to 8) and complement map, from its config.json
PLANT = {"vocab_size": 8, "complement_map": {str(i): c for i, c in enumerate((0, 1, 2, 6, 5, 4, 3, 7))},
         "residual_in_fp32": True}


def make_model(name: str):
    if name == "caduceus-ph-131k":
        config = dataclasses.replace(preset_config("caduceus-ps-131k"), rcps=False)
    elif name == "plantcaduceus-l32":
        config = dataclasses.replace(preset_config("caduceus-ps-131k"), d_model=1024, n_layer=32, **PLANT)
    else:
        config = preset_config(name)
    return build_model(config).cuda().eval()


def measure(fn, repeats: int) -> tuple[float, float]:
    """(median seconds, peak GB) of fn() after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    times = []
    torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        del out
    return statistics.median(times), torch.cuda.max_memory_allocated() / 1e9


def measure_graphed(fn, repeats: int) -> tuple[float, float]:
    """(median seconds of the replays, peak GB from the warm-up on) of a GraphedStream."""
    torch.cuda.reset_peak_memory_stats()
    fn()
    fn()  # captured
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 1e9
    seconds, replay_peak = measure(fn, repeats)
    return seconds, max(peak, replay_peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="caduceus-ps-131k,caduceus-ph-131k,caduceus-ps-50m")
    parser.add_argument("--tokens", default="1048576")
    parser.add_argument("--chunk-sizes", default="131072,1048576")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-full", action="store_true", help="skip the full-sequence baseline")
    parser.add_argument("--graphs", action="store_true", help="also time passes replayed from a CUDA graph")
    args = parser.parse_args()
    length = parse_size(args.tokens)
    torch.manual_seed(0)
    base_ids = torch.randint(7, 11, (1, length), device="cuda")
    plant_ids = torch.randint(3, 7, (1, length), device="cuda")  # a c g t of PlantCaduceus's vocabulary
    props = torch.cuda.get_device_properties(0)
    print(f"device: {props.name}; torch {torch.__version__}; kernels: {select_backend(base_ids.device)}")
    rows = []
    for name in args.models.split(","):
        model = make_model(name)
        params = model.num_parameters() / 1e6
        ids = plant_ids if name.startswith("plant") else base_ids
        results = {}
        for cs in (int(c) for c in args.chunk_sizes.split(",")):
            def run(cs=cs, ids=ids):
                return stream(model, ids, chunk_size=cs, output="hidden", dtype=torch.bfloat16)

            results[f"stream chunk_size {cs:,}"] = measure(run, args.repeats)
            torch.cuda.empty_cache()
            if args.graphs:
                graphed = GraphedStream(model, chunk_size=cs, output="hidden", dtype=torch.bfloat16)
                results[f"stream chunk_size {cs:,}, CUDA graph"] = measure_graphed(lambda: graphed(ids), args.repeats)
                del graphed
                torch.cuda.empty_cache()
        if not args.no_full:
            def full(ids=ids):
                with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                    return model.embed(ids)

            try:
                results["full sequence (baseline)"] = measure(full, args.repeats)
            except torch.cuda.OutOfMemoryError:
                print(f"{name}: the full-sequence baseline ran out of GPU memory", flush=True)
            except LrgenError as err:  # e.g. past the kernels' 32-bit addressing: refused before any launch
                print(f"{name}: no full-sequence baseline: {err}", flush=True)
            torch.cuda.empty_cache()
        base = results.get("full sequence (baseline)")
        for mode, (sec, gb) in results.items():
            ratio = f"{base[0] / sec:.2f}×" if base else ""
            rows.append([name, f"{params:.1f}M", mode, f"{sec:.3f}", f"{gb:.2f}", ratio, PEER.get(name, "")])
            print("measured", rows[-1], flush=True)
        del model
        torch.cuda.empty_cache()
    print(f"\nForward over {length:,} tokens, batch 1, bf16 autocast, fp32 scan states, output='hidden'\n")
    header = ["model", "params", "mode", "seconds", "peak GB", "speed-up vs full", "peer (official, H100)"]
    print_table(header, rows)


if __name__ == "__main__":
    main()
