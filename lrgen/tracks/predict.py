"""``lrgen predict``: tracks over BED regions, tiled into windows, stitched, written to bigWig or bedGraph.

Each region is tiled into windows of ``context`` bases whose ``flank``-long ends are cropped (:mod:`.tiling`); a
position's value is the model's output there in the one window where it lies in the kept interior. Values go into
memory maps of the run's partial folder (:mod:`.partial`), so memory stays flat at chromosome scale and an interrupted run
resumes; under ``torchrun`` rank ``r`` of ``N`` takes windows ``r, r+N, ...`` and rank 0 writes the files once all
are done. The outputs are written (atomically) only when every window is done.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lrgen.errors import LrgenError, warn
from lrgen.io.bed import Region, ignored_note, merge_regions, read_bed
from lrgen.io.bigwig import TrackWriter
from lrgen.io.genome import Genome
from lrgen.io.streams import is_stdio
from lrgen.tracks.tiling import Window, tile_region

FORMATS = ("bigwig", "bedgraph")
_SUFFIX = {"bigwig": ".bw", "bedgraph": ".bedGraph"}
_WRITE_BLOCK = 1 << 22  # values handed to the writer at a time


@dataclass
class PredictSummary:
    """What a run did; ``rank`` is this process's rank (only rank 0 wrote the outputs); ``untrained`` names a preset
    model (random weights: a bigWig has no header to say so, the summary line does)."""

    outputs: list[Path]
    tracks: list[str]
    regions: int
    bases: int
    windows: int
    windows_resumed: int
    seconds: float
    processes: int = 1
    rank: int = 0
    untrained: str | None = None

    def line(self) -> str:
        from lrgen.sizes import format_size

        computed = self.bases * (self.windows - self.windows_resumed) / max(self.windows, 1)
        resumed = f", {self.windows_resumed} resumed" if self.windows_resumed else ""
        procs = f" on {self.processes} processes" if self.processes > 1 else ""
        weights = f" (model {self.untrained!r}: architecture only, random weights)" if self.untrained else ""
        if not self.regions:
            return f"no regions to predict: wrote {len(self.tracks)} empty track(s): " + ", ".join(
                map(str, self.outputs)) + weights
        return (f"predicted {len(self.tracks)} track(s) over {format_size(self.bases)} in {self.regions} region(s), "
                f"{self.windows} windows{resumed}{procs}, {self.seconds:.1f} s "
                f"({computed / max(self.seconds, 1e-9):,.0f} bp/s): " + ", ".join(map(str, self.outputs)) + weights)


@dataclass
class PredictOptions:
    """Everything ``lrgen predict`` takes (the CLI flags carry the same names); lengths in bp.

    ``model`` is a name for :func:`lrgen.models.resolve_model` or a loaded model (a language model or a
    :class:`~lrgen.models.finetuned.FinetunedModel`). ``output`` is a file (one track; with several tracks the stem
    of ``<stem>.<track>.bw``) or a folder (an existing one, or a name ending in ``/``) that gets one file per track.
    ``tracks`` picks tracks by name or index (default: ``logprob`` of a language model, every track of a fine-tuned
    one). ``context`` defaults to 131,072 for a language model and to the training context of a fine-tuned one;
    ``flank`` to an eighth of it; ``bin_size`` to the model's resolution; ``chunk_size`` to the engine's chunk
    policy; ``format`` to the output's extension (``.bedGraph``/``.bg`` and ``.gz`` of those: bedgraph, else
    bigwig). ``cuda_graphs``: a language model's equal batches of windows replay one CUDA graph on a GPU.
    """

    regions: Path | None
    genome: Path
    model: Any
    output: str | os.PathLike
    tracks: list[str] | None = None
    context: int | None = None
    flank: int | None = None
    chunk_size: int | None = None
    bin_size: int | None = None
    format: str | None = None
    batch_size: int = 1
    conjoin: bool = False
    device: str = "auto"
    regions_all: bool = False
    resume: bool = False
    progress: bool = True
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        self.genome = Path(self.genome)
        self.regions = Path(self.regions) if self.regions is not None else None


def output_format(output: Path, folder: bool, format: str | None) -> str:
    """The format to write: ``format`` when given (it must agree with a file's extension), else the extension's."""
    if format is not None and format not in FORMATS:
        raise LrgenError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if is_stdio(output):
        raise LrgenError("-o -: predict writes files (a bigWig is written by seeking, and each track is a file of its "
                         "own): name a file, e.g. -o track.bw or -o track.bedGraph")
    if folder:
        return format or "bigwig"
    name = output.name.lower().removesuffix(".gz")
    implied = "bedgraph" if name.endswith((".bedgraph", ".bg")) else "bigwig" if name.endswith((".bw", ".bigwig")) else None
    if format is not None and implied is not None and implied != format:
        raise LrgenError(f"-o {output}: the extension says {implied}, --format says {format}; make them agree")
    if output.name.endswith(".gz") and (format or implied) != "bedgraph":
        raise LrgenError(f"-o {output}: only bedGraph output can be gzipped (name it *.bedGraph.gz)")
    return format or implied or "bigwig"


def output_paths(output: str | os.PathLike, names: list[str], fmt: str) -> list[Path]:
    """One file per track: ``output`` itself for one track, ``<stem>.<track><suffix>`` for several, or
    ``output/<track><suffix>`` when ``output`` is a folder."""
    folder = is_folder(output)
    output = Path(output)
    if folder:
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LrgenError(f"-o {output}: cannot create the folder ({exc.strerror})") from None
        return [output / f"{n}{_SUFFIX[fmt]}" for n in names]
    if not output.parent.is_dir() or not os.access(output.parent, os.W_OK):
        raise LrgenError(f"{output}: the folder {output.parent} does not exist or is not writable")
    if len(names) == 1:
        return [output]
    gz = ".gz" if fmt == "bedgraph" and output.name.endswith(".gz") else ""
    stem = output.name
    for s in (".gz", ".bw", ".bigwig", ".bigWig", ".bedGraph", ".bedgraph", ".bg"):
        stem = stem[: -len(s)] if stem.endswith(s) else stem
    return [output.with_name(f"{stem}.{n}{_SUFFIX[fmt]}{gz}") for n in names]


def is_folder(output: str | os.PathLike) -> bool:
    """``-o`` names a folder: an existing one, or a name written with a trailing slash."""
    return Path(output).is_dir() or str(output).endswith(os.sep)


def _regions(genome: Genome, regions_path: Path | None, regions_all: bool, show: bool) -> list[Region]:
    """Every contig, or the BED's merged regions (none: empty tracks, as bcftools gives an empty result); regions on
    contigs the FASTA lacks are ignored, in one warning when ``show``."""
    if regions_all:
        if regions_path is not None:
            raise LrgenError("give a BED file of regions or --regions-all, not both")
        return [Region(chrom=c, start=0, end=n, name=c, line=0) for c, n in genome.contig_sizes.items()]
    if regions_path is None:
        raise LrgenError("give a BED file of regions or --regions-all")
    ignored: Counter = Counter()
    regions = merge_regions(read_bed(regions_path, genome, ignored))
    if ignored and show:
        warn(ignored_note(regions_path, ignored))
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


def predict(options: PredictOptions) -> PredictSummary:
    """Predict tracks over regions and write one bigWig (or bedGraph) per track; returns what was done. Under
    ``torchrun`` every process calls this; windows are dealt out and rank 0 writes the files."""
    from lrgen.runtime.distributed import LONG_TIMEOUT, processes

    o = options
    if o.batch_size < 1:
        raise LrgenError(f"--batch-size must be at least 1, got {o.batch_size}")
    fmt = output_format(Path(o.output), is_folder(o.output), o.format)
    with processes(o.device, timeout=LONG_TIMEOUT) as procs:
        return _predict(o, fmt, procs)


def _predict(o: PredictOptions, fmt: str, procs) -> PredictSummary:
    from lrgen.engine import default_chunk_size
    from lrgen.models.resolve import resolve_model
    from lrgen.runtime.partial import PartialFolder
    from lrgen.tracks.partial import TrackValues
    from lrgen.tracks.sources import load_source, select_tracks, track_file_names

    started = time.perf_counter()
    genome = Genome(o.genome)
    regions = _regions(genome, o.regions, o.regions_all, procs.is_main)
    header = _header(genome, regions)
    resolved = resolve_model(o.model)
    source = load_source(resolved, procs.device, o.conjoin, o.cuda_graphs)
    columns = select_tracks(source.names, o.tracks or source.default_names, source.label)
    res = source.resolution
    bin_size = res if o.bin_size is None else o.bin_size
    if bin_size < 1 or bin_size % res:
        raise LrgenError(f"--bin-size {bin_size} must be a positive multiple of the model's {res} bp resolution")
    context = source.default_context() if o.context is None else o.context
    flank = source.default_flank(context) if o.flank is None else o.flank
    source.check_window(context, flank)
    chunk_size = o.chunk_size or default_chunk_size(procs.device)
    windows: list[tuple[int, Window]] = [
        (i, w) for i, r in enumerate(regions) for w in tile_region(r.chrom, r.start, r.end, context, flank)
    ]
    paths = output_paths(o.output, track_file_names(source, columns), fmt)
    settings = {"model": source.label, "genome": str(o.genome.resolve()), "context": context,
                "flank": flank, "tracks": [source.names[c] for c in columns], "conjoin": o.conjoin,
                "resolution": res, "regions": [(r.chrom, r.start, r.end) for r in regions]}
    lengths = [-(-len(r) // res) for r in regions]
    partial = PartialFolder(paths[0], settings, procs)
    values = TrackValues(partial, len(columns), lengths, len(windows), o.resume)
    if resolved.warning and procs.is_main:  # the work starts: nothing is refused from here on
        warn(resolved.warning)
    resumed = int(values.done.sum())
    mine = [k for k in range(len(windows)) if procs.owns(k) and not values.done[k]]
    try:
        _run_windows(source, genome, regions, windows, mine, columns, values, chunk_size, o.batch_size,
                     o.progress and procs.is_main)
        values.save()
    except LrgenError:
        values.close()
        partial.remove()
        raise
    except BaseException:
        if procs.is_main:
            from rich.console import Console

            Console(stderr=True).print(f"[yellow]stopped; progress kept in {partial.root}: "
                                       "rerun with --resume to continue[/]")
        raise
    procs.barrier()  # every rank's windows are in the memory maps
    summary = PredictSummary(outputs=paths, tracks=[source.names[c] for c in columns], regions=len(regions),
                             bases=sum(len(r) for r in regions), windows=len(windows), windows_resumed=resumed,
                             seconds=0.0, processes=procs.world_size, rank=procs.rank,
                             untrained=None if resolved.trained else resolved.label)
    if procs.is_main:
        missing = np.flatnonzero(~values.done_union(len(windows)))
        if missing.size:
            raise LrgenError(f"{missing.size} windows were not computed (first: {missing[0]}); rerun with --resume")
        _write_outputs(paths, header, regions, values, res, bin_size, fmt, o.progress)
        values.close()
        partial.remove()
    summary.seconds = time.perf_counter() - started
    return summary


def _run_windows(source, genome, regions, windows, mine, columns, values, chunk_size, batch_size, show) -> None:
    """Compute this rank's windows ``mine`` into the memory maps of ``values``, saving after every batch."""
    from lrgen.runtime.progress import progress_bar

    res = source.resolution
    total = sum(windows[k][1].keep_end - windows[k][1].keep_start for k in mine)
    started = time.perf_counter()
    with progress_bar("predict", unit="bp", fields=("rate",), show=show) as bar:
        task = bar.add_task("predict", total=total, rate="")
        for b in range(0, len(mine), batch_size):
            batch = mine[b : b + batch_size]
            seqs = [genome.fetch(windows[k][1].chrom, windows[k][1].start, windows[k][1].end) for k in batch]
            computed = source.window_values(seqs, columns, chunk_size)
            for row, k in enumerate(batch):
                region_index, w = windows[k]
                first = (w.keep_start - w.start) // res
                last = -(-(w.keep_end - w.start) // res)
                lo = (w.keep_start - regions[region_index].start) // res
                for c in range(len(columns)):
                    values.values(c, region_index)[lo : lo + last - first] = computed[row, first:last, c]
                values.done[k] = True
                bar.advance(task, w.keep_end - w.keep_start)
            values.save()
            rate = bar.tasks[0].completed / max(time.perf_counter() - started, 1e-9)
            bar.update(task, rate=f"{rate:,.0f} bp/s")


def _write_outputs(paths, header, regions, values, res, bin_size, fmt, progress) -> None:
    """One file per track, regions in header order; on failure no output of this run is left behind."""
    from lrgen.runtime.files import wrote
    from lrgen.runtime.progress import progress_bar

    rank = {c: i for i, c in enumerate(header)}
    order = sorted(range(len(regions)), key=lambda i: (rank[regions[i].chrom], regions[i].start))
    written: list[Path] = []
    bar = progress_bar("write", unit="bp", fields=(), show=progress)
    try:
        with bar:
            task = bar.add_task("write", total=len(paths) * sum(len(r) for r in regions))
            for c, path in enumerate(paths):
                with TrackWriter(path, header, format=fmt) as writer:
                    for i in order:
                        _write_region(writer, regions[i], values.values(c, i), res, bin_size,
                                      lambda bases: bar.advance(task, bases))
                wrote()  # renamed into place by the writer
                written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
