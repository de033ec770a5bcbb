"""The drawing of ``lrgen plot``, with matplotlib's object API (no pyplot, no change of the global backend): per
region a track panel above a variant panel, on one x axis, and one colour scale for every region's scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrgen.errors import LrgenError
from lrgen.io.scored_vcf import SIGNED, ScoredAllele
from lrgen.report.table import change
from lrgen.runtime.files import atomic_path

TRACK_HEIGHT, VARIANT_HEIGHT, WIDTH = 2.2, 1.8, 11.0  # inches
DPI = 150
LABELLED = 3  # the most extreme variants of each region get their REF>ALT written beside them


def require_matplotlib() -> None:
    """matplotlib is the optional extra ``plot``: one line saying how to install it when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LrgenError("lrgen plot needs matplotlib, which is not installed: pip install 'lrgen[plot]'") from None


def _scale(panels, value: str):
    """The colour map and its norm, shared by every region: diverging around 0 for a signed score."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    numbers = [a.values[value] for p in panels for a in p.variants if a.values.get(value) is not None]
    if value in SIGNED:
        reach = max((abs(x) for x in numbers), default=1.0) or 1.0
        return colormaps["RdBu"], Normalize(-reach, reach)
    return colormaps["viridis"], Normalize(0.0, max(numbers, default=1.0) or 1.0)


def _track(ax, track) -> None:
    short = track.name.rsplit(".", 1)[-1]
    if np.isnan(track.values).all():
        ax.text(0.5, 0.5, f"{track.name} has no values in this region", transform=ax.transAxes, ha="center",
                va="center", color="0.4", fontsize=8)
    if track.low is not None:
        ax.fill_between(track.positions, track.low, track.high, color="C0", alpha=0.25, linewidth=0,
                        label=f"min–max per {track.bin_size:,.0f} bp")
        ax.plot(track.positions, track.values, color="C0", linewidth=0.8, label=f"mean per {track.bin_size:,.0f} bp")
        ax.legend(loc="lower right", fontsize=7, frameon=False, ncols=2)
    else:
        ax.plot(track.positions, track.values, color="C0", linewidth=0.6)
    ax.set_ylabel(short, fontsize=8)


def _variants(ax, alleles: list[ScoredAllele], value: str, cmap, norm) -> None:
    scored = [a for a in alleles if a.values.get(value) is not None]
    blank = [a for a in alleles if a.values.get(value) is None]
    ax.axhline(0, color="0.5", linewidth=0.6)
    ax.margins(y=0.18)  # room for the labels of the extreme variants
    if scored:
        x = np.array([a.variant.pos for a in scored], dtype=float)
        y = np.array([a.values[value] for a in scored])
        ax.vlines(x, 0, y, colors=cmap(norm(y)), linewidth=0.9)
        ax.scatter(x, y, c=y, cmap=cmap, norm=norm, s=16, edgecolors="0.25", linewidths=0.3, zorder=3)
        extreme = np.argsort(-(np.abs(y) if value in SIGNED else y))[:LABELLED]
        for i in extreme:
            ax.annotate(change(scored[i]), (x[i], y[i]), xytext=(3, 3 if y[i] >= 0 else -9),
                        textcoords="offset points", fontsize=7)
    if blank:
        ax.plot([a.variant.pos for a in blank], [0] * len(blank), "|", color="0.55", markersize=7,
                label=f"no {value}: {len(blank):,}")
        ax.legend(loc="upper right", fontsize=7, frameon=False)
    if not alleles:
        ax.text(0.5, 0.5, "no variants in this region", transform=ax.transAxes, ha="center", va="center",
                color="0.4", fontsize=8)
    ax.set_ylabel(value, fontsize=8)


def draw(panels, value: str | None, title: str, output: Path) -> None:
    """Draw ``panels`` (the track and/or the variants' ``value`` per region) and write ``output`` atomically in the
    format of its extension."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    heights = []
    for panel in panels:
        heights += ([TRACK_HEIGHT] if panel.track is not None else []) + ([VARIANT_HEIGHT] if value else [])
    fig = Figure(figsize=(WIDTH, sum(heights) + 0.5), layout="constrained")
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    cmap, norm = _scale(panels, value) if value else (None, None)
    row = 0
    for panel in panels:
        r = panel.region
        axes = []
        if panel.track is not None:
            axes.append(fig.add_subplot(grid[row]))
            _track(axes[-1], panel.track)
            row += 1
        if value:
            axes.append(fig.add_subplot(grid[row], sharex=axes[0] if axes else None))
            _variants(axes[-1], panel.variants, value, cmap, norm)
            fig.colorbar(ScalarMappable(norm, cmap), ax=axes, label=value, pad=0.01, fraction=0.02)
            row += 1
        axes[0].set_title(f"{r.chrom}:{r.start + 1:,}-{r.end:,}", loc="left", fontsize=9)
        for ax in axes:
            ax.set_xlim(r.start + 0.5, r.end + 0.5)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
            ax.tick_params(labelsize=7)
            if ax is not axes[-1]:
                ax.tick_params(labelbottom=False)
        axes[-1].set_xlabel(f"position on {r.chrom} (1-based)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format=output.suffix[1:].lower(), dpi=DPI)
