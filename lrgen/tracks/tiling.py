"""Tiling a region into model windows whose cropped interiors stitch together seamlessly.

A window is ``context`` bases long; its first and last ``flank`` bases are context only and are cropped, so the kept
interiors (``context - 2*flank`` long) tile the region exactly once. Windows may reach past the region and past the
contig ends (the genome pads with N); the output is clipped to the region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from lrgen.errors import LrgenError


@dataclass(frozen=True)
class Window:
    """One model window: ``[start, start + context)`` on the contig, keeping ``[keep_start, keep_end)``."""

    chrom: str
    start: int
    keep_start: int
    keep_end: int
    context: int

    @property
    def end(self) -> int:
        return self.start + self.context


def tile_region(chrom: str, start: int, end: int, context: int, flank: int) -> Iterator[Window]:
    """Windows of length ``context`` whose interiors ``context - 2*flank`` long cover ``[start, end)`` once."""
    if context <= 0:
        raise LrgenError(f"context must be positive, got {context}")
    if flank < 0 or 2 * flank >= context:
        raise LrgenError(f"flank {flank} must be ≥ 0 and leave an interior inside context {context}")
    if end <= start:
        raise LrgenError(f"empty region {chrom}:{start}-{end}")
    interior = context - 2 * flank
    pos = start
    while pos < end:
        keep_end = min(pos + interior, end)
        yield Window(chrom=chrom, start=pos - flank, keep_start=pos, keep_end=keep_end, context=context)
        pos = keep_end

