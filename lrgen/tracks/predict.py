"""``lrgen predict``: per-position tracks over BED regions, tiled into windows, stitched, written to bigWig.

Work is resumable: values go into one float32 file per track and region under ``<output>.lrgen-partial/`` (memory
maps, so memory stays flat at chromosome scale) with a record of finished windows; the bigWig / bedGraph files are
written (atomically) only when every window is done, and the partial folder is then removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lrgen.errors import LrgenError
from lrgen.io.bed import Region, merge_regions, read_bed
from lrgen.io.bigwig import TrackWriter
from lrgen.io.genome import Genome
from lrgen.tracks.lm_tracks import LM_TRACKS, lm_tracks
from lrgen.tracks.tiling import Window, count_windows, default_flank, tile_region

FORMATS = ("bigwig", "bedgraph")
_SUFFIX = {"bigwig": ".bw", "bedgraph": ".bedGraph"}


@dataclass
class PredictSummary:
    outputs: list[Path]
    bases: int
    windows: int
    seconds: float


def output_paths(output: Path | None, out_dir: Path | None, tracks: list[str], fmt: str) -> dict[str, Path]:
    """One file per track: ``output`` itself for one track, else ``<stem>.<track><suffix>`` (or in ``out_dir``)."""
    if (output is None) == (out_dir is None):
        raise LrgenError("give exactly one of -o/--output (a file) or --out-dir (a folder)")
    if output is not None and len(tracks) == 1:
        return {tracks[0]: output}
    if output is not None:
        stem, suffix = output.name, _SUFFIX[fmt]
        for s in (".bw", ".bigwig", ".bigWig", ".bedGraph", ".bedgraph", ".bg", ".gz"):
            if stem.endswith(s):
                stem = stem[: -len(s)]
        return {t: output.with_name(f"{stem}.{t}{suffix}") for t in tracks}
    return {t: out_dir / f"{t}{_SUFFIX[fmt]}" for t in tracks}


def _regions(genome: Genome, regions_path: Path | None, regions_all: bool) -> list[Region]:
    if regions_all:
        return [Region(chrom=c, start=0, end=n, name=c, line=0) for c, n in genome.contig_sizes.items()]
    if regions_path is None:
        raise LrgenError("give a BED file of regions or --regions-all")
    regions = merge_regions(read_bed(regions_path, genome))
    if not regions:
        raise LrgenError(f"{regions_path}: no regions to predict")
    return regions


def _header(genome: Genome, regions: list[Region]) -> dict[str, int]:
    """Contig sizes from the FASTA, named as the BED names them."""
    bed_name = {genome.resolve(r.chrom): r.chrom for r in regions}
    return {bed_name.get(name, name): size for name, size in genome.contig_sizes.items()}


def _settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class _Partial:
    """The resumable work folder: per-(track, region) float32 memmaps plus the finished-window flags."""

    def __init__(self, folder: Path, settings: dict, regions: list[Region], tracks: list[str], n_windows: int,
                 resume: bool) -> None:
        self.folder = folder
        digest = _settings_digest(settings)
        meta = folder / "settings.json"
        if folder.exists() and not (resume and meta.exists() and json.loads(meta.read_text()).get("digest") == digest):
            if resume and meta.exists():
                raise LrgenError(
                    f"{folder} holds a run with other settings; remove it or run without --resume to start over"
                )
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"digest": digest, "settings": settings}, indent=1))
        self.values = {
            (t, i): np.lib.format.open_memmap(
                folder / f"{t}.{i}.npy", mode="r+" if (folder / f"{t}.{i}.npy").exists() else "w+",
                dtype=np.float32, shape=(r.end - r.start,),
            )
            for t in tracks
            for i, r in enumerate(regions)
        }
        done_path = folder / "done.npy"
        self.done = np.load(done_path) if done_path.exists() else np.zeros(n_windows, dtype=bool)
        self._done_path = done_path

    def save(self) -> None:
        for array in self.values.values():
            array.flush()
        tmp = self.folder / "done.tmp.npy"
        np.save(tmp, self.done)
        tmp.replace(self._done_path)


def _binned(values: np.ndarray, bin_size: int) -> np.ndarray:
    if bin_size == 1:
        return values
    n = -(-len(values) // bin_size)
    padded = np.full(n * bin_size, np.nan, dtype=np.float32)
    padded[: len(values)] = values
    blocks = padded.reshape(n, bin_size)
    with np.errstate(invalid="ignore"):
        counts = (~np.isnan(blocks)).sum(1)
        sums = np.nansum(blocks, 1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)


def _write_region(writer: TrackWriter, region: Region, values: np.ndarray, bin_size: int) -> None:
    """Write one region's values, binned from the region start; a last, shorter bin is clipped to the region."""
    binned = _binned(values, bin_size)
    full = len(values) // bin_size
    writer.add(region.chrom, region.start, binned[:full], span=bin_size)
    if len(values) % bin_size:
        writer.add(region.chrom, region.start + full * bin_size, binned[full:], span=len(values) % bin_size)


def predict(
    regions_path: Path | None,
    genome_path: Path,
    model: str,
    output: Path | None = None,
    out_dir: Path | None = None,
    tracks: list[str] | None = None,
    context: int = 131_072,
    flank: int | None = None,
    chunk_size: int = 16_384,
    bin_size: int = 1,
    fmt: str = "bigwig",
    batch_size: int = 1,
    conjoin: bool = False,
    device: str = "auto",
    regions_all: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> PredictSummary:
    """Predict tracks over regions and write one bigWig (or bedGraph) per track; returns what was written."""
    from lrgen import load_model
    from lrgen.engine import stream
    from lrgen.tokenizer import encode_batch

    if fmt not in FORMATS:
        raise LrgenError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if bin_size < 1:
        raise LrgenError(f"--bin-size must be ≥ 1, got {bin_size}")
    tracks = list(tracks or ["logprob"])
    unknown = [t for t in tracks if t not in LM_TRACKS]
    if unknown:
        raise LrgenError(f"unknown track {unknown[0]!r}: a language model writes {', '.join(LM_TRACKS)}")
    flank = default_flank(context) if flank is None else flank
    paths = output_paths(output, out_dir, tracks, fmt)
    genome = Genome(genome_path)
    regions = _regions(genome, regions_path, regions_all)

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    net = load_model(model).to(dev).eval()
    if not net.streamable or net.tokenizer_kind != "char":
        raise LrgenError(f"{model}: predict needs a per-base model that streams (Caduceus or Hawk), not {net.family}")
    dtype = torch.bfloat16 if dev.type == "cuda" else None

    windows: list[tuple[int, Window]] = [
        (i, w) for i, r in enumerate(regions) for w in tile_region(r.chrom, r.start, r.end, context, flank)
    ]
    settings = {"model": str(model), "genome": str(genome_path), "context": context, "flank": flank,
                "tracks": tracks, "conjoin": conjoin,
                "regions": [(r.chrom, r.start, r.end) for r in regions]}
    first_path = next(iter(paths.values()))
    partial = _Partial(first_path.with_name(first_path.name + ".lrgen-partial"), settings, regions, tracks,
                       len(windows), resume)
    todo = [k for k in range(len(windows)) if not partial.done[k]]

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("predict"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} bp"),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    total_bases = sum(w.keep_end - w.keep_start for _, w in windows)
    done_bases = total_bases - sum(windows[k][1].keep_end - windows[k][1].keep_start for k in todo)
    started = time.perf_counter()
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("predict", total=total_bases, completed=done_bases, rate="")
        for b in range(0, len(todo), batch_size):
            batch = todo[b : b + batch_size]
            seqs = [genome.fetch(windows[k][1].chrom, windows[k][1].start, windows[k][1].end) for k in batch]
            ids = encode_batch(seqs)
            logits = stream(net, ids.to(dev), chunk_size=chunk_size, output="logits", conjoin=conjoin, dtype=dtype)
            values = {name: v.float().cpu().numpy() for name, v in lm_tracks(logits, ids.to(dev), tuple(tracks)).items()}
            for row, k in enumerate(batch):
                region_index, w = windows[k]
                region = regions[region_index]
                lo, hi = w.keep_start - region.start, w.keep_end - region.start
                for name in tracks:
                    partial.values[(name, region_index)][lo:hi] = values[name][row, w.keep_slice]
                partial.done[k] = True
                bar.advance(task, w.keep_end - w.keep_start)
            partial.save()
            elapsed = time.perf_counter() - started
            bar.update(task, rate=f"{(bar.tasks[0].completed - done_bases) / max(elapsed, 1e-9):,.0f} bp/s")

    header = _header(genome, regions)
    for name, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with TrackWriter(path, header, format=fmt) as writer:
            for i, region in sorted(enumerate(regions), key=lambda p: (list(header).index(p[1].chrom), p[1].start)):
                _write_region(writer, region, np.asarray(partial.values[(name, i)]), bin_size)
    del partial.values
    shutil.rmtree(partial.folder)
    return PredictSummary(outputs=list(paths.values()), bases=total_bases, windows=len(windows),
                          seconds=time.perf_counter() - started)
