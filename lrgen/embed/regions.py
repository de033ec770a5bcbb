"""Per-region embeddings of a BED file's regions, computed through the streaming engine.

Each region is evaluated inside a *window*: ``context`` is the window's total length, centred on the region (the
extra bases split evenly, the odd one on the right); a region longer than ``context``, or any region when
``context`` is not given, is its own window. Bases past a contig end are N. The model sees the whole window; the
embedding is taken over the region's positions only: their mean (``pool="mean"``, shape ``(H,)``) or all of them
(``pool="none"``, shape ``(region length, H)``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from torch import Tensor

from lrgen.errors import LrgenError, warn

POOLS = ("mean", "none")
METADATA_KEY = "__metadata__"
FORMATS = (".safetensors", ".npz")


@dataclass(frozen=True)
class Window:
    """One region and the window evaluated around it (0-based half-open, window may pass contig ends)."""

    key: str
    chrom: str
    start: int
    end: int
    window_start: int
    window_end: int

    @property
    def offset(self) -> int:
        """Position of the region's first base inside the window."""
        return self.start - self.window_start


def region_window(start: int, end: int, context: int | None) -> tuple[int, int]:
    """The window of ``context`` bases centred on ``[start, end)``; the region itself when it is as long."""
    if context is None or end - start >= context:
        return start, end
    extra = context - (end - start)
    return start - extra // 2, end + extra - extra // 2


def region_keys(regions) -> list[str]:
    """Output keys: the BED names when every region has a distinct one, else ``chrom:start-end`` (0-based start)."""
    names = [r.name for r in regions]
    if all(n and n != "." for n in names) and len(set(names)) == len(names):
        return list(names)
    keys, seen = [], {}
    for r in regions:
        key = f"{r.chrom}:{r.start}-{r.end}"
        if key in seen:
            raise LrgenError(f"BED line {r.line}: region {key} repeats line {seen[key]}; list each region once")
        seen[key] = r.line
        keys.append(key)
    return keys


def group_windows(windows: list[Window], batch_size: int) -> list[list[Window]]:
    """Consecutive windows of equal length, at most ``batch_size`` to a group."""
    groups: list[list[Window]] = []
    for w in windows:
        last = groups[-1] if groups else None
        if last and len(last) < batch_size and _width(last[0]) == _width(w):
            last.append(w)
        else:
            groups.append([w])
    return groups


def _width(w: Window) -> int:
    return w.window_end - w.window_start


@dataclass
class EmbedOptions:
    """Everything ``lrgen embed`` takes (the CLI flags carry the same names); lengths in bp.

    ``model`` is a name for :func:`lrgen.models.resolve_model` or a loaded model; ``output`` is ``.safetensors``
    or ``.npz``; ``context`` is the window centred on each region (default: the region itself); ``chunk_size``
    defaults to the engine's chunk policy. On a GPU equal batches replay one CUDA graph unless ``cuda_graphs`` is
    off (:mod:`lrgen.engine.graphs`).
    """

    regions: Path
    genome: Path
    model: Any
    output: Path
    context: int | None = None
    chunk_size: int | None = None
    pool: str = "mean"
    conjoin: bool = False
    device: str = "auto"
    batch_size: int = 8
    progress: bool = True
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        self.regions, self.genome, self.output = Path(self.regions), Path(self.genome), Path(self.output)


def _write(output: Path, tensors: dict[str, Tensor], metadata: dict) -> None:
    """Write ``tensors`` and ``metadata`` to ``output`` atomically."""
    from lrgen.runtime.files import atomic_path

    with atomic_path(output) as tmp:
        if output.suffix == ".safetensors":
            from lrgen.models.weights import write_safetensors

            write_safetensors({k: v.contiguous() for k, v in tensors.items()}, tmp,
                              metadata={"lrgen": json.dumps(metadata)})
        else:
            import numpy as np

            arrays = {k: v.numpy() for k, v in tensors.items()}
            with open(tmp, "wb") as fh:
                np.savez(fh, **{METADATA_KEY: np.array(json.dumps(metadata))}, **arrays)


def embed_regions(options: EmbedOptions) -> dict:
    """Embed every region of ``options.regions`` and write the embeddings to ``options.output``; returns the
    metadata.

    Keys are region names (:func:`region_keys`); float32 tensors ``(H,)`` for ``pool="mean"`` or ``(length, H)``
    for ``"none"``. The file carries a JSON metadata record (model — with ``weights`` saying "architecture only,
    random weights" for a preset —, context, chunk_size, pool, conjoin, genome and each key's region and window):
    in safetensors' header under ``lrgen``, in npz as the ``__metadata__`` entry. Regions on contigs the FASTA
    lacks are ignored (one warning); an empty BED gives a file without embeddings. Regions whose windows have the
    same length are evaluated ``batch_size`` at a time.
    """
    from lrgen.engine import default_chunk_size, stream
    from lrgen.engine.graphs import GraphedStream
    from lrgen.io.bed import ignored_note, read_bed
    from lrgen.io.genome import Genome
    from lrgen.models.resolve import resolve_model
    from lrgen.runtime.device import resolve_device
    from lrgen.runtime.progress import progress_bar

    o = options
    output = o.output
    if output.suffix not in FORMATS:
        raise LrgenError(f"output {output}: name it *.safetensors or *.npz")
    if not output.parent.is_dir():
        raise LrgenError(f"output folder {output.parent} does not exist")
    if o.pool not in POOLS:
        raise LrgenError(f"--pool must be one of {', '.join(POOLS)}, got {o.pool!r}")
    if o.batch_size < 1:
        raise LrgenError(f"--batch-size must be at least 1, got {o.batch_size}")
    device = resolve_device(o.device)

    fasta = Genome(o.genome)
    ignored: Counter = Counter()
    regions = read_bed(o.regions, fasta, ignored)  # none: an empty file, as bcftools gives an empty result
    if ignored:
        warn(ignored_note(o.regions, ignored))
    keys = region_keys(regions)
    if output.suffix == ".npz" and METADATA_KEY in keys:
        raise LrgenError(f"{o.regions}: the region name {METADATA_KEY!r} is reserved in .npz output; rename it")
    windows = [Window(key, r.chrom, r.start, r.end, *region_window(r.start, r.end, o.context))
               for key, r in zip(keys, regions)]
    resolved = resolve_model(o.model).require("per_base", "streamable", command="embed").to(device)
    if resolved.warning:
        warn(resolved.warning)
    net = resolved.model
    chunk_size = o.chunk_size or default_chunk_size(device)

    stream_options = dict(chunk_size=chunk_size, output="hidden", conjoin=o.conjoin)
    run = GraphedStream(net, **stream_options) if o.cuda_graphs else partial(stream, net, **stream_options)
    tensors: dict[str, Tensor] = {}
    with progress_bar("embed", show=o.progress, fields=()) as bar:
        task = bar.add_task("embedding regions", total=len(windows))
        for batch in group_windows(windows, o.batch_size):
            ids = net.tokenizer.encode_batch([fasta.fetch(w.chrom, w.window_start, w.window_end) for w in batch])
            hidden = run(ids).float().cpu()  # a replay's buffer, copied out before the next batch
            for row, w in zip(hidden, batch):
                values = row[w.offset : w.offset + w.end - w.start]
                tensors[w.key] = values.mean(0) if o.pool == "mean" else values.clone()
            bar.advance(task, len(batch))

    metadata = {
        "model": resolved.label,
        **({} if resolved.trained else {"weights": "architecture only, random weights"}),
        "family": net.family,
        "hidden_size": int(net.hidden_size),
        "genome": str(o.genome),
        "context": o.context,
        "chunk_size": chunk_size,
        "pool": o.pool,
        "conjoin": o.conjoin,
        "regions": {
            w.key: {"chrom": w.chrom, "start": w.start, "end": w.end, "window": [w.window_start, w.window_end]}
            for w in windows
        },
    }
    _write(output, tensors, metadata)
    return metadata
