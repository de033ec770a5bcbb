"""CPU fast path of the causal depthwise conv (backend ``cpu``): one multiply-add per tap over channels-last rows.

The models hand the conv channels-contiguous activations (the transpose of a linear layer's output) and read its
output back channels-contiguous, so it works in ``(b, l, d)`` throughout: ``width`` shifted multiply-adds instead
of a channels-first convolution and the transposes around it. ``reverse`` reads the taps mirrored rather than
flipping the sequence. Differentiable (plain PyTorch ops).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def causal_conv1d_cpu(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    state: Tensor | None = None,
    activation: str | None = "silu",
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """:func:`lrgen.ops.reference.causal_conv1d_ref` with ``reverse``; y is returned as a ``(b, d, l)`` view of a
    channels-last tensor."""
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"causal_conv1d: activation must be None or 'silu', got {activation!r}")
    batch, dim, length = x.shape
    width = weight.shape[-1]
    past = x.new_zeros(batch, width - 1, dim, dtype=torch.float32) if state is None else state.float().transpose(1, 2)
    xt = x.transpose(1, 2).float()
    if reverse:  # the state holds the inputs to the right of the chunk, nearest last
        padded = torch.cat([xt, past.flip(1)], dim=1)
        taps = [(width - 1 - k, k) for k in range(width)]
    else:
        padded = torch.cat([past, xt], dim=1)
        taps = [(k, k) for k in range(width)]
    w = weight.float()
    first, k = taps[0]
    y = padded[:, first : first + length] * w[:, k]
    for offset, k in taps[1:]:
        y = y.addcmul_(padded[:, offset : offset + length], w[:, k])
    if bias is not None:
        y = y.add_(bias.float())
    if activation is not None:
        y = F.silu(y)
    new_state = padded[:, : width - 1].flip(1) if reverse else padded[:, length:]
    return y.to(x.dtype).transpose(1, 2), new_state.transpose(1, 2).contiguous()
