"""Triton RMSNorm for inference: one pass over ``(batch, length, channels)`` with any row strides, in and out.

Each program normalises ``ROWS`` positions: the row is read once (float32), ``x · rsqrt(mean(x²) + eps) · weight``
is written in the output dtype. It replaces the PyTorch composite (a float32 copy, a square, a mean and two products,
each a whole pass over memory) where no gradient is needed.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from lrgen.ops.limits import check_addressable

ROWS = 16  # positions per program


@triton.jit
def _rms_norm_kernel(x_ptr, w_ptr, y_ptr, R, L, C, eps, s_xb, s_xl, s_yb, s_yl, ROWS: tl.constexpr,
                     BC: tl.constexpr):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BC)
    mask = (rows < R)[:, None] & (cols < C)[None, :]
    src = (rows // L) * s_xb + (rows % L) * s_xl
    x = tl.load(x_ptr + src[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=cols < C, other=0.0).to(tl.float32)
    inv = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / C + eps)
    y = x * inv[:, None] * w[None, :]
    dst = (rows // L) * s_yb + (rows % L) * s_yl
    tl.store(y_ptr + dst[:, None] + cols[None, :], y.to(y_ptr.dtype.element_ty), mask=mask)


def rms_norm_triton(x: Tensor, weight: Tensor, eps: float, dtype: torch.dtype, out: Tensor | None = None) -> Tensor:
    """``x / rms(x) · weight`` of a CUDA tensor ``(B, L, C)`` whose channels are contiguous, in ``dtype``; written
    into ``out`` when given (x's shape, channels contiguous, any row strides)."""
    batch, length, channels = x.shape
    check_addressable("rms norm", x, out)
    if x.stride(2) != 1:
        x = x.contiguous()
    y = torch.empty(batch, length, channels, device=x.device, dtype=dtype) if out is None else out
    rows = batch * length
    if rows:
        _rms_norm_kernel[(triton.cdiv(rows, ROWS),)](
            x, weight.contiguous(), y, rows, length, channels, eps, x.stride(0), x.stride(1), y.stride(0),
            y.stride(1), ROWS=ROWS, BC=triton.next_power_of_2(channels), num_warps=4,
        )
    return y
