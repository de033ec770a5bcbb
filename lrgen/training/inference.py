"""Running a fine-tuned model over labelled windows: batches, pooled features and scores."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader

from lrgen.models.finetuned import FinetunedModel
from lrgen.runtime.device import autocast
from lrgen.tokenizer import CharTokenizer, KmerTokenizer, Tokens
from lrgen.training.batches import WindowDataset, collate, to_device
from lrgen.training.windows import Windows


def loader(
    windows: Windows,
    tokenizer: CharTokenizer | KmerTokenizer,
    batch_size: int,
    tissues: list[str] | None = None,
    batch_sampler=None,
    num_workers: int = 0,
) -> DataLoader:
    """Collated batches of ``windows`` in the ids of the model's ``tokenizer``."""
    tokens = Tokens(tokenizer)
    dataset = WindowDataset(windows, tokens, tissues)
    fn = partial(collate, pad_id=tokens.pad_id, context=windows.context)
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=fn, num_workers=num_workers)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=fn, num_workers=num_workers)


def batch_inputs(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and positions of a collated batch; variant batches stack the REF rows, then the ALT rows."""
    if "alt_ids" in batch:
        return (torch.cat([batch["ids"], batch["alt_ids"]]), torch.cat([batch["positions"], batch["alt_positions"]]))
    return batch["ids"], batch["positions"]


def features(model: FinetunedModel, batch: dict, chunk_size: int | None = None) -> torch.Tensor:
    """Pooled features of a collated batch, the hidden states computed under the engine's chunk policy."""
    from lrgen.engine import forward

    ids, positions = batch_inputs(batch)
    hidden = forward(model.backbone, ids, "hidden", chunk_size=chunk_size, conjoin=model.spec.conjoin)
    return model.pool(hidden, positions, batch["context"])


@torch.no_grad()
def pooled_features(model: FinetunedModel, data: DataLoader, device: torch.device, chunk_size: int | None = None,
                    progress=None) -> dict:
    """Pooled features, labels and tissue ids of every window in ``data`` (in order), on the CPU."""
    model.eval()
    feats, labels, tissues = [], [], []
    task_id = progress.add_task("features", total=len(data), info="") if progress is not None else None
    for batch in data:
        batch = to_device(batch, device)
        with autocast(device):
            f = features(model, batch, chunk_size)
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
def scores_from_features(model: FinetunedModel, cached: dict, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """The model's scores (probabilities / predictions / zero-shot distances) for cached pooled features."""
    model.eval()
    out = []
    for i in range(0, len(cached["features"]), batch_size):
        batch = {k: v[i : i + batch_size].to(device) for k, v in cached.items()}
        out.append(model.scores(batch["features"], batch.get("tissue")).float().cpu())
    return torch.cat(out).numpy()
