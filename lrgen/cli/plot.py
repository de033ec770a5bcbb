"""`lrgen plot`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from lrgen.cli.app import app
from lrgen.cli.common import output_option, regions_option


@app.command("plot")
def plot_command(
    output: Path = output_option("Figure file: *.png, *.pdf or *.svg."),
    bigwig: Optional[Path] = typer.Option(None, "--bigwig", "-b", help="Track to draw (e.g. from lrgen predict)."),
    vcf: Optional[str] = typer.Option(None, "--vcf", "-v", help="VCF written by lrgen score-vcf (- reads standard "
                                                                "input): its scores are drawn as stems."),
    region: Optional[List[str]] = typer.Option(None, "--region", "-r", help="chrom:start-end (1-based, inclusive) "
                                                                            "or chrom; repeatable."),
    regions: Optional[Path] = regions_option("BED file of regions to draw (at most 6)."),
    score: Optional[str] = typer.Option(None, "--score", help="The score to draw, e.g. wt_marginal (default: the VCF's first)."),
    title: Optional[str] = typer.Option(None, "--title", help="Figure title (default: the input files' names)."),
) -> None:
    """Draw a track and the variants' scores over the same regions (needs matplotlib: the plot extra)."""
    from lrgen.report.plot import PlotOptions, plot

    summary = plot(PlotOptions(output=output, bigwig=bigwig, vcf=vcf, region=tuple(region or ()), regions=regions,
                               score=score, title=title))
    typer.echo(summary.line())
