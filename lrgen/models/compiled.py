"""Optional ``torch.compile`` of a model's position-wise parts: the work between its scans or attention that fuses
well (gates, MLPs, norms under autograd), compiled in place with dynamic shapes so streamed chunks of any length
reuse one graph. Weights, state-dict keys and checkpoints are unchanged; the scans keep their own kernels."""

from __future__ import annotations

import torch

from lrgen.models.base import LanguageModel


def compile_position_wise(model: LanguageModel, backend: str = "inductor") -> list[str]:
    """Compile, in place, every submodule method that ``model.position_wise`` names; returns their qualified names
    (``[]`` for a family with nothing to gain, e.g. Caduceus, whose position-wise work is already Triton kernels)."""
    compiled = []
    for name, module in model.named_modules():
        for cls, method in model.position_wise:
            if isinstance(module, cls):
                setattr(module, method, torch.compile(getattr(module, method), dynamic=True, backend=backend))
                compiled.append(f"{name}.{method}" if name else method)
    return compiled
