"""``--batch-size auto``: the largest batch whose training step fits on the GPU, found by trying it."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from torch import nn

from lrgen.errors import LrgenError

HEADROOM = 0.9  # of the GPU's memory a step may use: fragmentation and the data loader need the rest
LIMIT = 1024  # windows: beyond this a larger batch does not train faster


def largest_batch(model: nn.Module, context: int, autocast: AbstractContextManager,
                  device: torch.device, ddp: bool = False) -> tuple[int, float]:
    """(the largest power-of-two batch of ``context``-base windows whose forward + backward + AdamW state fits in
    :data:`HEADROOM` of ``device``'s memory, its peak GB), tried with copies of one ACGT window on the unwrapped
    model; gradients are cleared after. ``ddp`` counts DDP's gradient buckets (one float32 copy of the gradients)
    too; under FSDP the unsharded probe overestimates each rank's memory, so the choice is on the safe side."""
    if device.type != "cuda":
        raise LrgenError("--batch-size auto sizes the batch to the GPU's memory: on a CPU give a number "
                         "(e.g. --batch-size 8)")
    total = torch.cuda.get_device_properties(device).total_memory
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer_bytes = (2 + ddp) * 4 * trained  # AdamW's two moments (+ DDP's gradient buckets)
    row = model.tokenizer.encode("ACGT" * (context // 4) + "ACGT"[: context % 4]).to(device)
    best: tuple[int, float] | None = None
    batch = 1
    while batch <= LIMIT:
        peak = _step_peak(model, row, batch, autocast, device)
        if peak is None or peak + optimizer_bytes > HEADROOM * total:
            break
        best = (batch, peak / 1e9)
        batch *= 2
    if best is None:
        raise LrgenError(f"one window of {context:,} bases does not fit in the GPU's memory for training: "
                         "lower --context")
    return best


def _step_peak(model: nn.Module, row: torch.Tensor, batch: int, autocast: AbstractContextManager,
               device: torch.device) -> int | None:
    """Peak bytes of one forward + backward on ``batch`` copies of ``row``; ``None`` when it runs out of memory."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    try:
        with autocast:
            logits = model(row[None].expand(batch, -1))
        logits.float().logsumexp(-1).mean().backward()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    except torch.cuda.OutOfMemoryError:
        return None
    finally:
        logits = None
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
