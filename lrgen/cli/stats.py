"""`lrgen stats`."""

from __future__ import annotations

from typing import Optional

import typer

from lrgen.cli.app import app


@app.command("stats")
def stats_command(
    vcf: str = typer.Argument(..., help="A VCF written by lrgen score-vcf (plain, gzip or bgzip); - reads standard "
                                        "input."),
    score: Optional[str] = typer.Option(None, "--score", help="The score that ranks the top variants, e.g. "
                                                              "wt_marginal, llr or emb_l2 (default: the file's first)."),
    top: int = typer.Option(10, "--top", "-n", help="How many of the most extreme variants to list (0: none)."),
) -> None:
    """Sum up a scored VCF: alleles scored and skipped (by reason), each score's quantiles, the most extreme variants."""
    from lrgen.report.stats import StatsOptions, vcf_stats
    from lrgen.report.table import stats_table

    typer.echo(stats_table(vcf_stats(StatsOptions(vcf=vcf, score=score, top=top))), nl=False)
