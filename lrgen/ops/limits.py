"""Limits of the GPU kernels that callers must not cross."""

from __future__ import annotations

from torch import Tensor

from lrgen.errors import LrgenError

#: the Triton kernels address their tensors with 32-bit offsets
MAX_ELEMENTS = 2**31 - 1
#: conv widths the fused conv + SiLU backward handles (one accumulator per tap); wider convs take the general path
CONV_SILU_BACKWARD_MAX_WIDTH = 4


def check_addressable(kernel: str, *tensors: Tensor | None) -> None:
    """Refuse (one line, before any launch) a tensor too large for 32-bit offsets; a launch would read out of bounds
    and poison the CUDA context. Streaming through :mod:`lrgen.engine` keeps every call small."""
    for t in tensors:
        if t is not None and extent(t) > MAX_ELEMENTS:
            raise LrgenError(f"{kernel}: a tensor of shape {tuple(t.shape)} spans {extent(t):,} elements, more than "
                             f"the GPU kernels address ({MAX_ELEMENTS:,}); stream the sequence in chunks "
                             "(lrgen.engine, --chunk-size) or shorten it")


def extent(t: Tensor) -> int:
    """Elements from a tensor's first to its last addressed one (a strided view may span more than it holds)."""
    if t.numel() == 0:
        return 0
    return 1 + sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
