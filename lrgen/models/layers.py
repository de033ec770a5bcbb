"""Position-wise building blocks shared by the model families."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lrgen.ops.backend import select_backend


def rms_norm(x: Tensor, weight: Tensor, eps: float, dtype: torch.dtype | None = None,
             out: Tensor | None = None) -> Tensor:
    """``x / rms(x) * weight`` computed in float32, returned in ``dtype`` (default x's), or written into ``out``
    (outside autograd). Outside autograd on a GPU with the Triton backend, one fused kernel
    (:mod:`lrgen.ops.triton_norm`); else PyTorch ops."""
    dtype = dtype or x.dtype
    if x.dim() == 3 and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        if select_backend(x.device, ("reference", "triton")) == "triton" and (out is None or out.stride(2) == 1):
            from lrgen.ops.triton_norm import rms_norm_triton

            return rms_norm_triton(x, weight, eps, dtype, out)
    xf = x.float()
    y = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight.float()).to(dtype)
    return y if out is None else out.copy_(y)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm, computed in float32 and returned in the input dtype."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)
