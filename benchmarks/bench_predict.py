"""``lrgen predict`` end to end: bases/s and peak memory for regions of given lengths (or whole contigs), per
device and context. Prints a Markdown table and writes JSON.

GPU, the issue's target (a per-position LM track over all of human chr20, 63 Mbp, with the caduceus-ps-131k-sized
model, ≤ 10 minutes, flat GPU memory)::

    python benchmarks/bench_predict.py --genome ../shared/data/human/20.fa.gz --model caduceus-ps-131k \\
        --contexts 131072 --lengths 1Mbp,8Mbp --regions-all --devices cuda --batch-size 4 --json bench_predict.json

CPU (1 Mbp with the small model)::

    python benchmarks/bench_predict.py --genome examples/data/chr20_1-1.2Mb.fa.gz --model caduceus-ps-tiny \\
        --contexts 32768 --lengths 1Mbp --devices cpu

Regions start at ``--start`` on the first contig. Timings are end to end (FASTA reading, model passes, track
computation, bigWig writing); a short warm-up run per device is left out. Peak GPU memory is
``torch.cuda.max_memory_allocated`` over a run; peak RSS is the process's high-water mark so far (it only grows).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
from pathlib import Path


def run(args, folder: Path, device: str, context: int, length: int | None) -> dict:
    """One ``predict`` run over ``length`` bases from ``--start`` of the first contig (``None``: every contig)."""
    import torch

    from lrgen.io.genome import Genome
    from lrgen.tracks.predict import PredictOptions, predict

    bed = None
    if length is not None:
        genome = Genome(args.genome)
        chrom, size = next(iter(genome.contig_sizes.items()))
        end = min(args.start + length, size)
        bed = folder / f"region-{length}.bed"
        bed.write_text(f"{chrom}\t{args.start}\t{end}\n")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    summary = predict(PredictOptions(regions=bed, genome=args.genome, model=args.model, output=folder / "track.bw", tracks=[args.track], context=context, chunk_size=args.chunk_size, batch_size=args.batch_size, device=device, regions_all=length is None, progress=args.progress, cuda_graphs=not args.no_cuda_graphs))
    peak = torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else float("nan")
    return {"device": device, "context": context, "bases": summary.bases, "windows": summary.windows,
            "seconds": summary.seconds, "bases_per_s": summary.bases / summary.seconds, "peak_gpu_gb": peak,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genome", type=Path, required=True)
    parser.add_argument("--model", required=True, help="preset, checkpoint or lrgen finetune folder")
    parser.add_argument("--contexts", default="131072", help="comma-separated window lengths")
    parser.add_argument("--lengths", default="1Mbp", help="comma-separated region lengths (empty: none)")
    parser.add_argument("--regions-all", action="store_true", help="also run over every contig of the genome")
    parser.add_argument("--start", type=int, default=100_000, help="0-based start of the regions on the first contig")
    parser.add_argument("--devices", default="cuda,cpu")
    parser.add_argument("--chunk-size", default="16Ki")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--track", default="0", help="track name or index (default: the model's first)")
    parser.add_argument("--progress", action="store_true", help="show predict's progress bar")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="run every batch without CUDA-graph replay")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from lrgen.sizes import format_size, parse_size, parse_size_list

    args.chunk_size = parse_size(args.chunk_size)
    contexts = parse_size_list(args.contexts)
    lengths: list[int | None] = parse_size_list(args.lengths) if args.lengths.strip() else []
    if args.regions_all:
        lengths.append(None)
    devices = [d for d in args.devices.split(",") if d and (not d.startswith("cuda") or torch.cuda.is_available())]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for device in devices:
            run(args, folder, device, contexts[0], min(contexts[0], 4096))  # warm-up: kernels, allocator
            for context in contexts:
                for length in lengths:
                    rows.append(run(args, folder, device, context, length))
                    rows[-1]["model"] = args.model
    print(f"\n### predict, {args.model}, track {args.track}, chunk {args.chunk_size:,}, batch {args.batch_size}\n")
    print("| device | context | bases | windows | seconds | bases/s | peak GPU GB | peak RSS GB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        gpu = "–" if r["peak_gpu_gb"] != r["peak_gpu_gb"] else f"{r['peak_gpu_gb']:.2f}"
        print(f"| {r['device']} | {r['context']:,} | {format_size(r['bases'])} | {r['windows']:,} | {r['seconds']:.1f} "
              f"| {r['bases_per_s']:,.0f} | {gpu} | {r['peak_rss_gb']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
