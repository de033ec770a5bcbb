"""``lrgen predict``: tracks over BED regions, tiled into windows, stitched, written to bigWig or bedGraph.

Each region is tiled into windows of ``context`` bases whose ``flank``-long ends are cropped (:mod:`.tiling`); a
position's value is the model's output there in the one window where it lies in the kept interior. Values go into
memory maps of a partial folder (:mod:`.partial`), so memory stays flat at chromosome scale and an interrupted run
resumes; under ``torchrun`` rank ``r`` of ``N`` takes windows ``r, r+N, ...`` and rank 0 writes the files once all
are done. The outputs are written (atomically) only when every window is done.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from lrgen.errors import LrgenError
from lrgen.io.bed import Region, merge_regions, read_bed
from lrgen.io.bigwig import TrackWriter
from lrgen.io.genome import Genome
from lrgen.tracks.tiling import Window, tile_region

FORMATS = ("bigwig", "bedgraph")
_SUFFIX = {"bigwig": ".bw", "bedgraph": ".bedGraph"}
_WRITE_BLOCK = 1 << 22  # values handed to the writer at a time


@dataclass
class PredictSummary:
    """What a run did; ``rank`` is this process's rank (only rank 0 wrote the outputs)."""

    outputs: list[Path]
    tracks: list[str]
    regions: int
    bases: int
    windows: int
    windows_resumed: int
    seconds: float
    processes: int = 1
    rank: int = 0

    def line(self) -> str:
        from lrgen.sizes import format_size

        computed = self.bases * (self.windows - self.windows_resumed) / max(self.windows, 1)
        resumed = f", {self.windows_resumed} resumed" if self.windows_resumed else ""
        procs = f" on {self.processes} processes" if self.processes > 1 else ""
        return (f"predicted {len(self.tracks)} track(s) over {format_size(self.bases)} in {self.regions} region(s), "
                f"{self.windows} windows{resumed}{procs}, {self.seconds:.1f} s "
                f"({computed / max(self.seconds, 1e-9):,.0f} bp/s): " + ", ".join(map(str, self.outputs)))


def output_paths(output: Path | None, out_dir: Path | None, names: list[str], fmt: str) -> list[Path]:
    """One file per track: ``output`` itself for one track, else ``<stem>.<track><suffix>`` (or in ``out_dir``)."""
    if (output is None) == (out_dir is None):
        raise LrgenError("give exactly one of -o/--output (a file) or --out-dir (a folder)")
    if output is not None:
        output = Path(output)
        if not output.parent.is_dir() or not os.access(output.parent, os.W_OK):
            raise LrgenError(f"{output}: the folder {output.parent} does not exist or is not writable")
        if len(names) == 1:
            return [output]
        gz = ".gz" if fmt == "bedgraph" and output.name.endswith(".gz") else ""
        stem = output.name
        for s in (".gz", ".bw", ".bigwig", ".bigWig", ".bedGraph", ".bedgraph", ".bg"):
            stem = stem[: -len(s)] if stem.endswith(s) else stem
        return [output.with_name(f"{stem}.{n}{_SUFFIX[fmt]}{gz}") for n in names]
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LrgenError(f"--out-dir {out_dir}: cannot create the folder ({exc.strerror})") from exc
    return [out_dir / f"{n}{_SUFFIX[fmt]}" for n in names]


def _regions(genome: Genome, regions_path: Path | None, regions_all: bool) -> list[Region]:
    if regions_all:
        if regions_path is not None:
            raise LrgenError("give a BED file of regions or --regions-all, not both")
        return [Region(chrom=c, start=0, end=n, name=c, line=0) for c, n in genome.contig_sizes.items()]
    if regions_path is None:
        raise LrgenError("give a BED file of regions or --regions-all")
    regions = merge_regions(read_bed(regions_path, genome))
    if not regions:
        raise LrgenError(f"{regions_path}: no regions to predict")
    return regions


def _header(genome: Genome, regions: list[Region]) -> dict[str, int]:
    """Contig sizes from the FASTA, named as the BED names them."""
    bed_name: dict[str, str] = {}
    for r in regions:
        name = bed_name.setdefault(genome.resolve(r.chrom), r.chrom)
        if name != r.chrom:
            raise LrgenError(f"the BED names contig {genome.resolve(r.chrom)} both {name!r} and {r.chrom!r} "
                             f"(line {r.line}): use one name")
    return {bed_name.get(name, name): size for name, size in genome.contig_sizes.items()}


def _binned(values: np.ndarray, factor: int) -> np.ndarray:
    """Means over consecutive groups of ``factor`` values, NaN ignored (a last group may be shorter)."""
    if factor == 1:
        return values
    n = -(-len(values) // factor)
    padded = np.full(n * factor, np.nan, dtype=np.float32)
    padded[: len(values)] = values
    blocks = padded.reshape(n, factor)
    with np.errstate(invalid="ignore"):
        counts = (~np.isnan(blocks)).sum(1)
        sums = np.nansum(blocks, 1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)


def _write_region(writer: TrackWriter, region: Region, values: np.ndarray, resolution: int, bin_size: int,
                  advance: Callable[[int], None] = lambda bases: None) -> None:
    """Write one region's values (one per ``resolution`` bp from the region start) in bins of ``bin_size`` bp; the
    last bin is clipped to the region end. Values go to the writer in blocks, so memory stays flat; ``advance`` is
    told the bases of each block."""
    factor = bin_size // resolution
    block = max(_WRITE_BLOCK // factor, 1) * factor
    for lo in range(0, len(values), block):
        binned = _binned(np.asarray(values[lo : lo + block]), factor)
        start = region.start + lo * resolution
        bins_end = min(start + len(binned) * bin_size, region.end)
        full = (bins_end - start) // bin_size
        writer.add(region.chrom, start, binned[:full], span=bin_size)
        if full < len(binned):
            writer.add(region.chrom, start + full * bin_size, binned[full:], span=bins_end - start - full * bin_size)
        advance(bins_end - start)


class _Group:
    """Barriers between the ranks of a torchrun job (nothing for one process), on a gloo group with a 30-day
    timeout: ranks may reach the final barrier hours apart (e.g. a resumed run whose done windows fell unevenly)."""

    def __init__(self, info) -> None:
        self.info = info
        self._group = None
        if info.distributed:
            from datetime import timedelta

            import torch.distributed as dist

            self._group = dist.new_group(backend="gloo", timeout=timedelta(days=30))

    def barrier(self) -> None:
        if self._group is not None:
            import torch.distributed as dist

            dist.barrier(group=self._group)


def predict(
    regions_path: Path | None,
    genome_path: Path,
    model,
    output: Path | None = None,
    out_dir: Path | None = None,
    tracks: list[str] | None = None,
    context: int | None = None,
    flank: int | None = None,
    chunk_size: int = 16_384,
    bin_size: int | None = None,
    fmt: str = "bigwig",
    batch_size: int = 1,
    conjoin: bool = False,
    device: str = "auto",
    regions_all: bool = False,
    resume: bool = False,
    progress: bool = True,
    cuda_graphs: bool = True,
) -> PredictSummary:
    """Predict tracks over regions and write one bigWig (or bedGraph) per track; returns what was done.

    ``model`` is a preset, checkpoint or ``lrgen finetune`` directory, or a loaded model (a language model or a
    :class:`~lrgen.glrb.heads.GlrbModel`). ``tracks`` picks tracks by name or index (default: ``logprob`` of a
    language model, every track of a fine-tuned one). ``context`` defaults to 131,072 for a language model and to
    the training context of a fine-tuned one; ``flank`` to an eighth of it; ``bin_size`` to the model's resolution.
    ``cuda_graphs``: a language model's equal batches of windows replay one CUDA graph on a GPU
    (:mod:`lrgen.engine.graphs`). Under ``torchrun`` every process calls this; windows are shared out and rank 0
    writes the files.
    """
    from lrgen.pretrain.distributed import cleanup, init_distributed

    if fmt not in FORMATS:
        raise LrgenError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if batch_size < 1:
        raise LrgenError(f"--batch-size must be at least 1, got {batch_size}")
    if chunk_size < 1:
        raise LrgenError(f"--chunk-size must be at least 1, got {chunk_size}")
    info = init_distributed(device)
    try:
        return _predict(info, regions_path, genome_path, model, output, out_dir, tracks, context, flank, chunk_size,
                        bin_size, fmt, batch_size, conjoin, regions_all, resume, progress, cuda_graphs)
    finally:
        cleanup(info)


def _predict(info, regions_path, genome_path, model, output, out_dir, tracks, context, flank, chunk_size, bin_size,
             fmt, batch_size, conjoin, regions_all, resume, progress, cuda_graphs) -> PredictSummary:
    from lrgen.tracks.partial import Partial
    from lrgen.tracks.sources import load_source, select_tracks, track_file_names

    started = time.perf_counter()
    genome = Genome(genome_path)
    regions = _regions(genome, regions_path, regions_all)
    header = _header(genome, regions)
    source = load_source(model, info.device, conjoin, cuda_graphs)
    columns = select_tracks(source.names, tracks or source.default_names, source.label)
    res = source.resolution
    bin_size = res if bin_size is None else bin_size
    if bin_size < 1 or bin_size % res:
        raise LrgenError(f"--bin-size {bin_size} must be a positive multiple of the model's {res} bp resolution")
    context = source.default_context() if context is None else context
    flank = source.default_flank(context) if flank is None else flank
    source.check_window(context, flank)
    windows: list[tuple[int, Window]] = [
        (i, w) for i, r in enumerate(regions) for w in tile_region(r.chrom, r.start, r.end, context, flank)
    ]
    paths = output_paths(output, out_dir, track_file_names(source, columns), fmt)
    settings = {"model": source.label, "genome": str(Path(genome_path).resolve()), "context": context,
                "flank": flank, "tracks": [source.names[c] for c in columns], "conjoin": conjoin,
                "resolution": res, "regions": [(r.chrom, r.start, r.end) for r in regions]}
    lengths = [-(-len(r) // res) for r in regions]
    group = _Group(info)
    partial = Partial(paths[0].with_name(paths[0].name + ".lrgen-partial"), settings, len(columns), lengths,
                      len(windows), resume, info.rank, group.barrier)
    resumed = int(partial.done.sum())
    mine = [k for k in range(info.rank, len(windows), info.world_size) if not partial.done[k]]
    try:
        _run_windows(source, genome, regions, windows, mine, columns, partial, chunk_size, batch_size,
                     progress and info.is_main)
        partial.save()
    except LrgenError:
        partial.remove()
        raise
    except BaseException:
        if info.is_main:
            from rich.console import Console

            Console(stderr=True).print(f"[yellow]stopped; progress kept in {partial.folder}: "
                                       "rerun with --resume to continue[/]")
        raise
    group.barrier()  # every rank's windows are in the memory maps
    summary = PredictSummary(outputs=paths, tracks=[source.names[c] for c in columns], regions=len(regions),
                             bases=sum(len(r) for r in regions), windows=len(windows), windows_resumed=resumed,
                             seconds=0.0, processes=info.world_size, rank=info.rank)
    if info.is_main:
        missing = np.flatnonzero(~partial.done_union(len(windows)))
        if missing.size:
            raise LrgenError(f"{missing.size} windows were not computed (first: {missing[0]}); rerun with --resume")
        _write_outputs(paths, header, regions, partial, res, bin_size, fmt, progress)
        partial.remove()
    group.barrier()  # rank 0 has written the outputs before any process leaves the group
    summary.seconds = time.perf_counter() - started
    return summary


def _run_windows(source, genome, regions, windows, mine, columns, partial, chunk_size, batch_size, show) -> None:
    """Compute this rank's windows ``mine`` into the partial's memory maps, saving after every batch."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    res = source.resolution
    bar_columns = [TextColumn("predict"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} bp"),
                   TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    total = sum(windows[k][1].keep_end - windows[k][1].keep_start for k in mine)
    started = time.perf_counter()
    with Progress(*bar_columns, console=Console(stderr=True), disable=not show, transient=True) as bar:
        task = bar.add_task("predict", total=total, rate="")
        for b in range(0, len(mine), batch_size):
            batch = mine[b : b + batch_size]
            seqs = [genome.fetch(windows[k][1].chrom, windows[k][1].start, windows[k][1].end) for k in batch]
            values = source.window_values(seqs, columns, chunk_size)
            for row, k in enumerate(batch):
                region_index, w = windows[k]
                first = (w.keep_start - w.start) // res
                last = -(-(w.keep_end - w.start) // res)
                lo = (w.keep_start - regions[region_index].start) // res
                for c in range(len(columns)):
                    partial.values(c, region_index)[lo : lo + last - first] = values[row, first:last, c]
                partial.done[k] = True
                bar.advance(task, w.keep_end - w.keep_start)
            partial.save()
            rate = bar.tasks[0].completed / max(time.perf_counter() - started, 1e-9)
            bar.update(task, rate=f"{rate:,.0f} bp/s")


def _write_outputs(paths, header, regions, partial, res, bin_size, fmt, progress) -> None:
    """One file per track, regions in header order; on failure no output of this run is left behind."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    rank = {c: i for i, c in enumerate(header)}
    order = sorted(range(len(regions)), key=lambda i: (rank[regions[i].chrom], regions[i].start))
    written: list[Path] = []
    bar = Progress(TextColumn("write"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} bp"),
                   TimeRemainingColumn(), console=Console(stderr=True), disable=not progress, transient=True)
    try:
        with bar:
            task = bar.add_task("write", total=len(paths) * sum(len(r) for r in regions))
            for c, path in enumerate(paths):
                with TrackWriter(path, header, format=fmt) as writer:
                    for i in order:
                        _write_region(writer, regions[i], partial.values(c, i), res, bin_size,
                                      lambda bases: bar.advance(task, bases))
                written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
