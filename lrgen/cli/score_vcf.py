"""`lrgen score-vcf`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from lrgen.cli.app import app
from lrgen.cli.common import (at_least_one, chunk_size_option, device_option, genome_option, length, model_option,
                              output_option, regions_option)


@app.command("score-vcf")
def score_vcf_command(
    vcf: Path = typer.Argument(..., help="Input VCF or BCF (plain, gzip or bgzip); - reads standard input."),
    genome: Path = genome_option("Indexed FASTA of the VCF's genome (plain or bgzip)."),
    model: str = model_option("Bundled model, preset, checkpoint or fine-tuned folder, or hub id (Caduceus or Hawk)."),
    context: str = typer.Option(..., "--context", "-c", help="Window length around the variants, e.g. 131kb or 1Mbp."),
    output: Path = output_option("Output VCF: *.vcf, *.vcf.gz (bgzip + tabix), or - (plain VCF on standard output)."),
    score: List[str] = typer.Option(["llr"], "--score", help="llr, wt-marginal, embedding or head; repeatable."),
    tsv: Optional[Path] = typer.Option(None, "--tsv", help="Also write a table: one row per ALT allele (- for standard output)."),
    exact: bool = typer.Option(False, "--exact", help="Full passes for every allele (no local recomputation)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run with the same options."),
    regions: Optional[Path] = regions_option(
        "BED file: score only records overlapping it (- reads standard input)."
    ),
    recompute_span: str = typer.Option("8192", "--recompute-span", help="bp recomputed around each allele."),
    embedding_span: str = typer.Option("1536", "--embedding-span", help="bp around the allele for embedding."),
    on_ref_mismatch: str = typer.Option("skip", "--on-ref-mismatch", help="error, skip or score."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Passes per batch [16; 1 with --exact]."),
    device: str = device_option(),
    chunk_size: Optional[str] = chunk_size_option(),
    dtype: str = typer.Option("float32", "--dtype", help="float32, or bfloat16/float16 autocast on a GPU."),
) -> None:
    """Score every variant of a VCF with a DNA language model and megabase context (docs/score-vcf.md)."""
    from lrgen.variants.score_vcf import ScoreVcfOptions, score_vcf

    score_vcf(ScoreVcfOptions(
        vcf=vcf, genome=genome, model=model, context=length(context, "--context"), output=output,
        scores=tuple(score), tsv=tsv, exact=exact, resume=resume, regions=regions,
        recompute_span=length(recompute_span, "--recompute-span"),
        embedding_span=length(embedding_span, "--embedding-span"), on_ref_mismatch=on_ref_mismatch,
        batch_size=at_least_one(batch_size, "--batch-size"), device=device,
        chunk_size=length(chunk_size, "--chunk-size"), dtype=dtype,
        command=shlex.join(["lrgen", *(a for a in sys.argv[1:] if a != "--resume")]),  # as an uninterrupted run
    ))
