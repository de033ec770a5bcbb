"""Running a :class:`~lrgen.glrb.heads.GlrbModel` over windows: batches, pooled features and scores."""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader

from lrgen.glrb.batches import Tokens, WindowDataset, collate, to_device
from lrgen.glrb.data import WindowSet

#: contexts above this are streamed through the chunk-state engine by streamable models when no chunk_size is given
AUTO_STREAM_BP = 131_072


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def loader(
    windows: WindowSet,
    tokenizer_kind: str,
    batch_size: int,
    tissues: list[str] | None = None,
    batch_sampler=None,
    num_workers: int = 0,
) -> DataLoader:
    tokens = Tokens(tokenizer_kind)
    dataset = WindowDataset(windows, tokens, tissues)
    fn = partial(collate, pad_id=tokens.pad_id, context=windows.context)
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=fn, num_workers=num_workers)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=fn, num_workers=num_workers)


def stream_chunk(model, context: int, chunk_size: int | None) -> int | None:
    """The chunk size to stream with: the given one, or :data:`AUTO_STREAM_BP` for long contexts of SSMs."""
    if chunk_size is not None:
        return chunk_size
    if getattr(model.backbone, "streamable", False) and context > AUTO_STREAM_BP:
        return AUTO_STREAM_BP
    return None


@torch.no_grad()
def pooled_features(model, data: DataLoader, device: torch.device, chunk_size: int | None = None, progress=None) -> dict:
    """Pooled features, labels and tissue ids of every window in ``data`` (in order), on the CPU."""
    model.eval()
    feats, labels, tissues = [], [], []
    task_id = progress.add_task("features", total=len(data), info="") if progress is not None else None
    for batch in data:
        batch = to_device(batch, device)
        with autocast(device):
            f = model.features(batch, stream_chunk(model, batch["context"], chunk_size))
        feats.append(f.float().cpu())
        labels.append(batch["label"].cpu())
        if "tissue" in batch:
            tissues.append(batch["tissue"].cpu())
        if progress is not None:
            progress.advance(task_id)
    out = {"features": torch.cat(feats), "label": torch.cat(labels)}
    if tissues:
        out["tissue"] = torch.cat(tissues)
    return out


@torch.no_grad()
def scores_from_features(model, cached: dict, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """The model's scores (probabilities / predictions / zero-shot distances) for cached pooled features."""
    model.eval()
    out = []
    for i in range(0, len(cached["features"]), batch_size):
        batch = {k: v[i : i + batch_size].to(device) for k, v in cached.items()}
        out.append(model.scores(batch["features"], batch).float().cpu())
    return torch.cat(out).numpy()


def new_progress():
    """A rich progress bar (transient, on stderr)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        transient=True,
    )
