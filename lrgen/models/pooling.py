"""Parameter-free pooling of backbone hidden states over base-pair regions of a window.

``positions`` ``(B, T)`` gives the window offset (bp) at which each token starts, ``-1`` for padding, so the same
code pools one-token-per-base models and NTv2's 6-mers.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rc_invariant(hidden: Tensor) -> Tensor:
    """RC-invariant features ``(B, T, H/2)`` of a parameter-sharing (Caduceus-PS) model.

    A PS model satisfies ``embed(rc(x)) = flip(embed(x))`` along length and channels; averaging the forward half
    with the flipped reverse half, ``f[i, c] = (h[i, c] + h[T-1-i, H-1-c]) / 2``, gives ``f(rc(x)) = f(x)``.
    Position ``i`` is mixed with its mirror ``T-1-i``, which suits pooling over a centred region.
    """
    half = hidden.shape[-1] // 2
    return (hidden[..., :half] + hidden[..., half:].flip(1, 2)) / 2


def centre_mean(hidden: Tensor, positions: Tensor, start: int, end: int) -> Tensor:
    """Mean ``(B, H)`` over the tokens that start in ``[start, end)`` bp of the window."""
    inside = (positions >= start) & (positions < end)
    cols = inside.any(0).nonzero()
    lo, hi = int(cols.min()), int(cols.max()) + 1  # slice first: the region is small, the window may be 1 Mbp
    mask = inside[:, lo:hi].unsqueeze(-1).to(hidden.dtype)
    return (hidden[:, lo:hi] * mask).sum(1) / mask.sum(1).clamp_min(1)


def bin_mean(hidden: Tensor, positions: Tensor, start: int, n_bins: int, bin_bp: int) -> Tensor:
    """Mean ``(B, n_bins, H)`` over the tokens starting in each ``bin_bp`` bin of ``[start, start + n_bins·bin_bp)``."""
    b, t, h = hidden.shape
    rel = positions - start
    valid = (rel >= 0) & (rel < n_bins * bin_bp)
    index = torch.where(valid, rel // bin_bp, 0)
    index = index + torch.arange(b, device=hidden.device).unsqueeze(1) * n_bins
    weight = valid.to(hidden.dtype)
    sums = hidden.new_zeros(b * n_bins, h).index_add_(0, index.reshape(-1), (hidden * weight.unsqueeze(-1)).reshape(-1, h))
    counts = hidden.new_zeros(b * n_bins).index_add_(0, index.reshape(-1), weight.reshape(-1))
    return (sums / counts.clamp_min(1).unsqueeze(-1)).view(b, n_bins, h)
