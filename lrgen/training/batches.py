"""Token batches of labelled windows: a torch ``Dataset`` over :class:`~lrgen.training.windows.Windows` and its collate.

An example holds the window's token ids and ``positions`` (the window offset in bp at which each token starts),
for variants also the ALT window's, the labels, and the eQTL tissue id. Character tokens are one per base; NTv2
6-mer rows are padded to the longest row with the pad id and position ``-1``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from lrgen.tokenizer import Tokens
from lrgen.training.windows import Windows


class WindowDataset(Dataset):
    """Tokenised windows of one split; item ``i`` is a dict (see the module docstring)."""

    def __init__(self, windows: Windows, tokens: Tokens, tissues: list[str] | None = None) -> None:
        self.windows = windows
        self.tokens = tokens
        self.tissue_ids = {t: i + 1 for i, t in enumerate(tissues or [])}  # 0: a tissue unseen in training

    def __len__(self) -> int:
        return len(self.windows.records)

    def __getitem__(self, i: int) -> dict:
        rec = self.windows.records[i]
        seq = self.windows.sequence(rec)
        ids, positions = self.tokens(seq)
        item = {
            "ids": ids,
            "positions": positions,
            "label": torch.from_numpy(np.asarray(self.windows.labels(rec), dtype=np.float32)),
            "index": i,
        }
        if self.windows.variant:
            item["alt_ids"], item["alt_positions"] = self.tokens(self.windows.alt_sequence(seq, rec))
            item["tissue"] = self.tissue_ids.get(rec.tissue, 0)
        return item


def _pad(rows: list[torch.Tensor], value: int, width: int) -> torch.Tensor:
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def collate(items: list[dict], pad_id: int, context: int) -> dict:
    """Stack examples into a batch dict; ``batch["context"]`` is the window length in bp."""
    keys = ("ids", "alt_ids") if "alt_ids" in items[0] else ("ids",)
    width = max(len(it[k]) for it in items for k in keys)  # ref and alt rows share one width
    batch = {
        "ids": _pad([it["ids"] for it in items], pad_id, width),
        "positions": _pad([it["positions"] for it in items], -1, width),
        "label": torch.stack([it["label"] for it in items]),
        "index": torch.tensor([it["index"] for it in items]),
        "context": context,
    }
    if "alt_ids" in items[0]:
        batch["alt_ids"] = _pad([it["alt_ids"] for it in items], pad_id, width)
        batch["alt_positions"] = _pad([it["alt_positions"] for it in items], -1, width)
        batch["tissue"] = torch.tensor([it["tissue"] for it in items])
    return batch


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
