"""The learning-rate schedule of every training job: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math
from typing import Callable


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Learning-rate multiplier after ``step`` optimizer steps: linear warm-up over ``warmup`` steps, then cosine
    down to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(total: int, warmup: int, min_ratio: float) -> Callable[[int], float]:
    """:func:`lr_factor` as a ``LambdaLR`` function of the step."""
    return lambda step: lr_factor(step, total, warmup, min_ratio)


def default_warmup(total: int, fraction: float = 0.05) -> int:
    """Warm-up steps when none are given: a fraction of the run (at least one step)."""
    return max(1, int(round(fraction * total)))
