"""``lrgen plot``: a track (bigWig) and the scores of a scored VCF over the same genomic axis, to PNG, PDF or SVG.

Per region, two aligned panels: the track (per base up to :data:`PER_BASE_MAX` bp, else the mean of equal bins
with their minimum-maximum band) and the variants as stems coloured by their score. Either input may be left out.
The regions are ``--region`` texts, a BED, or by default where the bigWig has values (else the VCF's records).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lrgen.errors import LrgenError
from lrgen.io.bed import Region, merge_regions, parse_region, read_bed
from lrgen.io.bigwig import BigWigTrack
from lrgen.io.genome import same_contig
from lrgen.io.scored_vcf import ScoredAllele, ScoredVcf, pick_value
from lrgen.io.streams import is_stdio

FORMATS = (".png", ".pdf", ".svg")
MAX_REGIONS = 6
PER_BASE_MAX = 2_000  # bp drawn base by base; longer regions are drawn in bins
BINS = 500


@dataclass
class PlotOptions:
    """Everything ``lrgen plot`` takes (the CLI flags carry the same names). ``region`` holds samtools-style texts
    (``20:1,000,001-1,020,000``, 1-based inclusive), ``regions`` a BED file; ``score`` names the value to draw (its
    TSV column, ``--score`` name or INFO key; default the VCF's first). ``vcf`` ``-`` reads standard input."""

    output: Path
    bigwig: Path | None = None
    vcf: str | os.PathLike | None = None
    region: tuple[str, ...] = ()
    regions: Path | None = None
    score: str | None = None
    title: str | None = None

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        self.bigwig = Path(self.bigwig) if self.bigwig is not None else None
        self.regions = Path(self.regions) if self.regions is not None else None
        self.region = tuple(self.region)


@dataclass
class TrackProfile:
    """A region's track: values at 1-based ``positions`` (per base, or bin centres with ``low``/``high``)."""

    name: str
    positions: np.ndarray
    values: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    bin_size: float = 1.0


@dataclass
class Panel:
    """One region and what is drawn over it."""

    region: Region
    track: TrackProfile | None = None
    variants: list[ScoredAllele] = field(default_factory=list)


@dataclass
class PlotSummary:
    """What was drawn: the file, the regions, the variants with a value and those without one."""

    output: Path
    regions: list[Region]
    value: str | None
    with_value: int
    without_value: int

    def line(self) -> str:
        where = ", ".join(f"{r.chrom}:{r.start + 1:,}-{r.end:,}" for r in self.regions)
        drawn = (f"; {self.with_value:,} variants with {self.value}"
                 f"{f' ({self.without_value:,} without)' if self.without_value else ''}" if self.value else "")
        return f"wrote {self.output}: {len(self.regions)} region{'s' if len(self.regions) != 1 else ''} ({where}){drawn}"


def _check(o: PlotOptions) -> None:
    if o.bigwig is None and o.vcf is None:
        raise LrgenError("nothing to plot: give --bigwig TRACK.bw, --vcf SCORED.vcf.gz or both")
    if o.output.suffix.lower() not in FORMATS:
        raise LrgenError(f"-o {o.output}: name a {', '.join(FORMATS)} file (the format follows the extension)")
    if not o.output.parent.is_dir() or not os.access(o.output.parent, os.W_OK):
        raise LrgenError(f"-o {o.output}: the folder {o.output.parent} does not exist or is not writable")
    if o.output.is_dir():
        raise LrgenError(f"-o {o.output} is a folder: name a file in it, e.g. {o.output / 'figure.png'}")
    if o.region and o.regions is not None:
        raise LrgenError("give the regions once: as --region texts or as a --regions BED")
    if is_stdio(o.vcf) and is_stdio(o.regions):
        raise LrgenError("standard input ('-') can be read once: give the VCF or the --regions BED as a file")


def _asked_regions(o: PlotOptions, track: BigWigTrack | None) -> list[Region] | None:
    """The regions named by ``--region`` or ``--regions`` (whole contigs sized by the bigWig), or None."""
    if o.regions is not None:
        return merge_regions(read_bed(o.regions))
    regions = []
    for text in o.region:
        chrom, start, end = parse_region(text)
        if end is None:
            name = track.contig(chrom) if track is not None else None
            if name is None:
                raise LrgenError(f"--region {text}: give start-end (a whole contig needs a bigWig that has it)")
            end = track.sizes[name]
        regions.append(Region(chrom, start, end))
    return merge_regions(regions) if regions else None


def _check_count(regions: list[Region] | None) -> None:
    """Refuse more regions than one figure shows (before any VCF is read for them)."""
    if regions is not None and len(regions) > MAX_REGIONS:
        raise LrgenError(f"{len(regions)} regions to plot: choose at most {MAX_REGIONS} with --region "
                         "chrom:start-end or --regions BED")


def _inside(allele: ScoredAllele, regions: list[Region]) -> bool:
    v = allele.variant
    return any(same_contig(v.chrom, r.chrom) and v.start < r.end and max(v.end, v.start + 1) > r.start
               for r in regions)


def _variant_extents(alleles: list[ScoredAllele]) -> list[Region]:
    """Per contig, the span of the alleles and a margin (2%, at least 50 bp) that keeps the outer stems in view."""
    spans: dict[str, tuple[int, int]] = {}
    for a in alleles:
        lo, hi = spans.get(a.variant.chrom, (a.variant.start, a.variant.end))
        spans[a.variant.chrom] = min(lo, a.variant.start), max(hi, a.variant.end)
    margins = {c: max(50, (hi - lo) // 50) for c, (lo, hi) in spans.items()}
    return [Region(c, max(0, lo - margins[c]), hi + margins[c]) for c, (lo, hi) in spans.items()]


def _profile(track: BigWigTrack, region: Region) -> TrackProfile:
    name = track.path.name.removesuffix(".bw").removesuffix(".bigWig").removesuffix(".bigwig")
    contig = track.contig(region.chrom)
    end = min(region.end, track.sizes[contig]) if contig is not None else region.end
    if contig is None or region.start >= end:
        raise LrgenError(f"{track.path} has no values on {region.chrom}:{region.start + 1:,}-{region.end:,} "
                         f"(its contigs: {', '.join(list(track.sizes)[:5])}): choose a region it covers")
    length = end - region.start
    if length <= PER_BASE_MAX:
        return TrackProfile(name, np.arange(region.start + 1, end + 1), track.values(region.chrom, region.start, end))
    bins = min(BINS, length)
    mean, low, high = track.binned(region.chrom, region.start, end, bins)
    width = length / bins
    return TrackProfile(name, region.start + 0.5 + width * (np.arange(bins) + 0.5), mean, low, high, width)


def plot(options: PlotOptions) -> PlotSummary:
    """Draw the track and the variants' scores over each region and write ``options.output`` atomically."""
    from lrgen.report.figure import draw, require_matplotlib

    o = options
    _check(o)
    require_matplotlib()
    track = BigWigTrack(o.bigwig) if o.bigwig is not None else None
    try:
        regions = _asked_regions(o, track)
        if regions is None and track is not None:
            regions = [Region(*extent) for extent in track.extents()]
        _check_count(regions)
        value, alleles, vcf_name = None, [], None
        if o.vcf is not None:
            with ScoredVcf(o.vcf) as vcf:
                value, vcf_name = pick_value(o.score, vcf.values, vcf.name), vcf.name
                alleles = [a for a in vcf.alleles(regions) if regions is None or _inside(a, regions)]
        if regions is None:
            regions = _variant_extents(alleles)
        if not regions:
            raise LrgenError(f"nothing to plot: {o.bigwig or vcf_name} has no values; give --region chrom:start-end")
        _check_count(regions)
        panels = [Panel(r, _profile(track, r) if track is not None else None, [a for a in alleles if _inside(a, [r])])
                  for r in regions]
    finally:
        if track is not None:
            track.close()
    title = o.title or " and ".join(str(p.name) for p in (o.bigwig, Path(vcf_name) if vcf_name else None) if p)
    draw(panels, value, title, o.output)
    shown = [a for p in panels for a in p.variants]
    with_value = sum(1 for a in shown if value is not None and a.values.get(value) is not None)
    return PlotSummary(o.output, regions, value, with_value, len(shown) - with_value)
