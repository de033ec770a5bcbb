"""score-vcf end to end: wt-marginal over a whole VCF, llr with local recomputation versus --exact, and the error of
local recomputation against --exact for a list of recompute spans. Prints Markdown tables and writes JSON.

GPU (the issue's targets: caduceus-ps-131k, 1 Mbp, the 24,978 variants of chr20:1-4 Mb)::

    python benchmarks/bench_score_vcf.py --vcf data/chr20_1-4Mb.sites.vcf.gz --genome data/20.fa.gz \\
        --model caduceus-ps-131k --context 1Mbp --device cuda --llr-variants 2000 --exact-variants 10 \\
        --span-variants 0 --json bench_score_vcf.json
    python benchmarks/bench_score_vcf.py --vcf data/chr20_1-4Mb.sites.vcf.gz --genome data/20.fa.gz \\
        --model caduceus-ps-131k --context 1Mbp --device cuda --wt-variants 0 --llr-variants 0 \\
        --exact-variants 0 --spans 1k,2k,4k,8k,16k,32k --span-variants 30 --json bench_score_vcf_spans.json

CPU smoke run (small settings)::

    python benchmarks/bench_score_vcf.py --vcf examples/data/example.vcf.gz \\
        --genome examples/data/chr20_1-1.2Mb.fa.gz --model caduceus-ph-tiny --context 16kb --device cpu \\
        --llr-variants 100 --exact-variants 10 --spans 512,1k,2k,4k,8k --span-variants 100

Timings are end to end (VCF reading, reference passes, edited passes, writing); variants/s counts scored ALT
alleles. Peak GPU memory is ``torch.cuda.max_memory_allocated`` over each run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import tempfile
from pathlib import Path


def subset(vcf: Path, n: int | None, folder: Path, snv_only: bool = False) -> Path:
    """The header and the first ``n`` data records (SNV-only records when asked) as a plain VCF."""
    opener = gzip.open if vcf.read_bytes()[:2] == b"\x1f\x8b" else open
    out = folder / f"first{n}{'-snv' if snv_only else ''}.vcf"
    kept = 0
    with opener(vcf, "rt") as src, open(out, "w") as dst:
        for line in src:
            if line.startswith("#"):
                dst.write(line)
                continue
            if n is not None and kept >= n:
                break
            ref, alts = line.split("\t")[3:5]
            if snv_only and not (len(ref) == 1 and all(len(a) == 1 for a in alts.split(","))):
                continue
            dst.write(line)
            kept += 1
    return out


def run(vcf: Path, args, folder: Path, name: str, **options) -> dict:
    import torch

    from lrgen.variants import ScoreVcfOptions, score_vcf

    if torch.cuda.is_available() and args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    tsv = folder / f"{name}.tsv"
    summary = score_vcf(ScoreVcfOptions(vcf=vcf, genome=args.genome, model=args.model, context=args.context, output=folder / f"{name}.vcf.gz", tsv=tsv, device=args.device, chunk_size=args.chunk_size, batch_size=options.pop("batch_size", None), dtype=args.dtype, progress=False, **options))
    peak = torch.cuda.max_memory_allocated() / 1e9 if args.device.startswith("cuda") else float("nan")
    print(f"{name}: {summary.alleles:,} alleles, {summary.windows:,} windows, {summary.seconds:.1f} s, "
          f"{summary.rate:.1f} variants/s, peak GPU {peak:.2f} GB", flush=True)
    return {"name": name, "scored": summary.outcomes.get("scored", 0), "alleles": summary.alleles,
            "seconds": summary.seconds, "variants_per_s": summary.rate, "windows": summary.windows,
            "peak_gpu_gb": peak, "tsv": str(tsv)}


def values(tsv: str, column: str) -> list[float | None]:
    rows = Path(tsv).read_text().splitlines()
    index = rows[0].split("\t").index(column)
    return [None if r.split("\t")[index] == "." else float(r.split("\t")[index]) for r in rows[1:]]


def compare(exact: list, local: list) -> dict:
    pairs = [(a, b) for a, b in zip(exact, local) if a is not None and b is not None]
    if not pairs:
        return {}
    errors = [abs(a - b) for a, b in pairs]
    scale = max(abs(a) for a, _ in pairs) or 1.0
    xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    r = sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")
    return {"n": len(pairs), "max_abs": max(errors), "mean_abs": sum(errors) / len(errors),
            "max_rel": max(errors) / scale, "pearson": r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vcf", type=Path, required=True)
    parser.add_argument("--genome", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--context", default="1Mbp")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--chunk-size", default=None, help="default: score-vcf's (65536)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--dtype", default=None, help="bfloat16 or float16 autocast (default float32)")
    parser.add_argument("--wt-variants", type=int, default=None, help="records for wt-marginal (default: all)")
    parser.add_argument("--llr-variants", type=int, default=2000, help="records for the local llr rate (0: skip)")
    parser.add_argument("--exact-variants", type=int, default=20, help="records for the --exact llr rate (0: skip)")
    parser.add_argument("--spans", default="2k,4k,8k,16k,32k", help="recompute spans compared with --exact")
    parser.add_argument("--span-variants", type=int, default=30, help="SNV records for the span comparison (0: skip)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from lrgen.sizes import parse_size_list

    results: dict = {"model": args.model, "context": args.context, "device": args.device, "runs": [], "spans": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # warm-up (kernel compilation, allocator): one window, not in the tables
        results["warmup"] = run(subset(args.vcf, 2, folder), args, folder, "warm-up", scores=("llr",))
        if args.wt_variants != 0:
            whole = subset(args.vcf, args.wt_variants, folder)
            results["runs"].append(run(whole, args, folder, "wt-marginal", scores=("wt-marginal",)))
        if args.llr_variants:
            llr_vcf = subset(args.vcf, args.llr_variants, folder)
            results["runs"].append(run(llr_vcf, args, folder, "llr-local", scores=("llr",),
                                       batch_size=args.batch_size))
        if args.exact_variants:
            exact_vcf = subset(args.vcf, args.exact_variants, folder)
            results["runs"].append(run(exact_vcf, args, folder, "llr-exact", scores=("llr",), exact=True,
                                       batch_size=1))
        if args.span_variants:
            snvs = subset(args.vcf, args.span_variants, folder, snv_only=True)
            spans = parse_size_list(args.spans)
            embedding_span = min(1536, min(spans))  # one embedding definition for every span
            truth = run(snvs, args, folder, "span-exact", scores=("llr", "embedding"), exact=True, batch_size=1,
                        embedding_span=embedding_span)
            for span in spans:
                local = run(snvs, args, folder, f"span-{span}", scores=("llr", "embedding"), recompute_span=span,
                            batch_size=args.batch_size, embedding_span=embedding_span)
                row = {"span": span, "variants_per_s": local["variants_per_s"]}
                for column in ("llr", "emb_l2"):
                    row[column] = compare(values(truth["tsv"], column), values(local["tsv"], column))
                results["spans"].append(row)
    print(f"\n### score-vcf, {args.model}, context {args.context}, {args.device} "
          f"(warm-up run: {results['warmup']['seconds']:.1f} s)\n")
    print("| run | scored alleles | windows | seconds | variants/s | peak GPU GB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results["runs"]:
        print(f"| {r['name']} | {r['scored']:,} | {r['windows']:,} | {r['seconds']:.1f} | {r['variants_per_s']:.1f} "
              f"| {r['peak_gpu_gb']:.2f} |")
    if results["spans"]:
        print("\n| recompute span | llr max abs err | llr mean abs err | llr r | emb_l2 max rel err | variants/s |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in results["spans"]:
            llr, emb = row["llr"], row["emb_l2"]
            print(f"| {row['span']:,} | {llr.get('max_abs', float('nan')):.2e} | {llr.get('mean_abs', float('nan')):.2e} "
                  f"| {llr.get('pearson', float('nan')):.6f} | {emb.get('max_rel', float('nan')):.2e} "
                  f"| {row['variants_per_s']:.1f} |")
    if args.json:
        for r in [*results["runs"], results["warmup"]]:
            r.pop("tsv")
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
