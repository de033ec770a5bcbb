"""The embed job: per-region embeddings of a BED file's regions, computed through the streaming engine.

Each region is evaluated inside a *window*: ``context`` is the window's total length, centred on the region (the
extra bases split evenly, the odd one on the right); a region longer than ``context``, or any region when
``context`` is not given, is its own window. Bases past a contig end are N. The model sees the whole window; the
embedding is taken over the region's positions only: their mean (``pool="mean"``, shape ``(H,)``) or all of them
(``pool="none"``, shape ``(region length, H)``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from lrgen.errors import LrgenError

POOLS = ("mean", "none")
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


def pick_device(device: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LrgenError(f"--device {device}: no CUDA GPU is available; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise LrgenError(f"--device {device!r} is not a device: use auto, cpu or cuda") from None


def _write(output: Path, tensors: dict[str, Tensor], metadata: dict) -> None:
    """Write ``tensors`` and ``metadata`` to ``output`` through a temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(fd)
    try:
        if output.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata={"lrgen": json.dumps(metadata)})
        else:
            import numpy as np

            with open(tmp, "wb") as fh:
                np.savez(fh, __metadata__=np.array(json.dumps(metadata)), **{k: v.numpy() for k, v in tensors.items()})
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def embed_regions(
    bed: str | os.PathLike,
    model,
    genome: str | os.PathLike,
    output: str | os.PathLike,
    context: int | None = None,
    chunk_size: int | None = None,
    pool: str = "mean",
    conjoin: bool = False,
    device: str = "auto",
    batch_size: int = 8,
    progress: bool = True,
    cuda_graphs: bool = True,
) -> dict:
    """Embed every region of ``bed`` with ``model`` (a preset, checkpoint or hub id, or a loaded model) and write the
    embeddings to ``output`` (.safetensors or .npz).

    Keys are region names (:func:`region_keys`); float32 tensors ``(H,)`` for ``pool="mean"`` or ``(length, H)``
    for ``"none"``. The file carries a JSON metadata record (model, context, chunk_size, pool, conjoin, genome and
    each key's region and window): in safetensors' header under ``lrgen``, in npz as the ``__metadata__`` entry.
    Regions whose windows have the same length are evaluated ``batch_size`` at a time; on a GPU, equal batches
    replay one CUDA graph unless ``cuda_graphs`` is off (:mod:`lrgen.engine.graphs`). Returns the metadata.
    """
    from lrgen import load_model
    from lrgen.engine import stream
    from lrgen.engine.chunks import check_positive, default_chunk_size
    from lrgen.engine.graphs import GraphedStream
    from lrgen.io.bed import read_bed
    from lrgen.io.genome import Genome
    from lrgen.tokenizer import encode_batch
    from rich.progress import Progress

    output = Path(output)
    if output.suffix not in FORMATS:
        raise LrgenError(f"output {output}: name it *.safetensors or *.npz")
    if not output.parent.is_dir():
        raise LrgenError(f"output folder {output.parent} does not exist")
    if pool not in POOLS:
        raise LrgenError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    check_positive("batch_size", batch_size)
    if context is not None:
        check_positive("context", context)
    torch_device = pick_device(device)

    fasta = Genome(genome)
    regions = read_bed(bed, fasta)
    if not regions:
        raise LrgenError(f"{bed}: no regions to embed")
    windows = [
        Window(key, r.chrom, r.start, r.end, *region_window(r.start, r.end, context))
        for key, r in zip(region_keys(regions), regions)
    ]
    net = (load_model(model) if isinstance(model, (str, os.PathLike)) else model).to(torch_device).eval()
    chunk_size = check_positive("chunk_size", default_chunk_size(torch_device) if chunk_size is None else chunk_size)
    model_name = str(model) if isinstance(model, (str, os.PathLike)) else net.family
    if getattr(net, "tokenizer_kind", "char") != "char":
        raise LrgenError(f"model {model_name}: embed needs a single-nucleotide model (caduceus or hawk)")

    options = dict(chunk_size=chunk_size, output="hidden", conjoin=conjoin)
    run = GraphedStream(net, **options) if cuda_graphs else partial(stream, net, **options)
    tensors: dict[str, Tensor] = {}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("embedding regions", total=len(windows))
        for batch in group_windows(windows, batch_size):
            ids = encode_batch([fasta.fetch(w.chrom, w.window_start, w.window_end) for w in batch])
            hidden = run(ids).float().cpu()  # a replay's buffer, copied out before the next batch
            for row, w in zip(hidden, batch):
                values = row[w.offset : w.offset + w.end - w.start]
                tensors[w.key] = values.mean(0) if pool == "mean" else values.clone()
            bar.advance(task, len(batch))

    metadata = {
        "model": model_name,
        "family": net.family,
        "hidden_size": int(net.hidden_size),
        "genome": str(genome),
        "context": context,
        "chunk_size": chunk_size,
        "pool": pool,
        "conjoin": conjoin,
        "regions": {
            w.key: {"chrom": w.chrom, "start": w.start, "end": w.end, "window": [w.window_start, w.window_end]}
            for w in windows
        },
    }
    _write(output, tensors, metadata)
    return metadata
