"""The figure of docs/predict.md: a predicted track over a genome region next to GC content.

Top panel: the track's mean in windows of ``--window`` bases (per-base values vary far more than the window means,
so they are not drawn); bottom panel: the GC
fraction of the same windows (over A/C/G/T only; windows that are all N are left out). A last window shorter
than ``--window`` is left out of both. The title gives the Pearson
correlation of the two window series. The region is written ``chrom:start-end``, 1-based and inclusive as in
genome browsers (commas allowed); the bigWig must name the contig as the region does::

    lrgen predict r.bed --genome examples/data/chr20_1-1.2Mb.fa.gz --model caduceus-ps-tiny --context 32768 \\
        --device cpu -o logprob.bw          # r.bed: "20  999999  1050000"
    python benchmarks/plot_predict_example.py logprob.bw examples/data/chr20_1-1.2Mb.fa.gz \\
        20:1,000,000-1,050,000 -o predict_example.png
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np


def parse_region(text: str) -> tuple[str, int, int]:
    """``chrom:start-end`` (1-based, inclusive) → 0-based half-open ``(chrom, start, end)``."""
    m = re.fullmatch(r"\s*([^:\s]+):([\d,]+)-([\d,]+)\s*", text)
    if not m:
        raise SystemExit(f"region {text!r}: write chrom:start-end, e.g. 20:1,000,000-1,050,000")
    start, end = int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))
    if not 1 <= start <= end:
        raise SystemExit(f"region {text!r}: start must be ≥ 1 and not after end")
    return m.group(1), start - 1, end


def window_means(track: np.ndarray, seq: str, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window starts (offsets), the track's mean and the GC fraction per whole window (NaN where undefined)."""
    bases = np.frombuffer(seq.encode(), dtype=np.uint8)
    gc = np.isin(bases, np.frombuffer(b"GC", dtype=np.uint8))
    acgt = np.isin(bases, np.frombuffer(b"ACGT", dtype=np.uint8))
    starts = np.arange(0, len(track), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_track = np.add.reduceat(~np.isnan(track), starts)
        mean = np.add.reduceat(np.nan_to_num(track), starts) / n_track
        fraction = np.add.reduceat(gc, starts) / np.add.reduceat(acgt, starts)
    whole = starts + window <= len(track) if len(track) >= window else np.ones(len(starts), dtype=bool)
    return starts[whole], np.where(n_track > 0, mean, np.nan)[whole], fraction[whole]


def plot(bigwig: Path, genome: Path, region: str, out: Path, window: int = 1000, label: str | None = None) -> float:
    """Write the figure to ``out``; returns the Pearson r of the window means and GC fractions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lrgen.io.bigwig import BigWigTrack
    from lrgen.io.genome import Genome

    chrom, start, end = parse_region(region)
    with BigWigTrack(bigwig) as bw:
        track = bw.values(chrom, start, end)
    seq = Genome(genome).fetch(chrom, start, end)
    starts, mean, gc = window_means(track, seq, window)
    ok = ~np.isnan(mean) & ~np.isnan(gc)
    r = float(np.corrcoef(mean[ok], gc[ok])[0, 1]) if ok.sum() > 2 else float("nan")

    centres = (start + starts + np.minimum(window, len(track) - starts) / 2) / 1e6
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4.8), sharex=True, height_ratios=[3, 2])
    top.plot(centres, mean, lw=1.6, color="tab:blue")
    top.set_ylabel(f"{label or bigwig.stem}\n(mean per {window:,} bp)")
    bottom.plot(centres, gc, lw=1.6, color="tab:green")
    bottom.set_ylabel(f"GC fraction\n({window:,} bp)")
    bottom.set_xlabel(f"{chrom} position (Mb)")
    top.set_title(f"{label or bigwig.stem} over {chrom}:{start + 1:,}-{end:,}; Pearson r with GC = {r:.2f}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=150)
    plt.close(fig)
    tmp.replace(out)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bigwig", type=Path)
    parser.add_argument("genome", type=Path, help="indexed FASTA the track was predicted on")
    parser.add_argument("region", help="chrom:start-end, 1-based inclusive (e.g. 20:1,000,000-1,050,000)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--window", type=int, default=1000, help="bases per window for the means and GC")
    parser.add_argument("--label", default=None, help="track name on the plot (default: the bigWig's stem)")
    args = parser.parse_args()
    r = plot(args.bigwig, args.genome, args.region, args.out, args.window, args.label)
    print(f"wrote {args.out} (Pearson r of the {args.window:,} bp means with GC: {r:.3f})")


if __name__ == "__main__":
    main()
