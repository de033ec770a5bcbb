"""`lrgen score-vcf`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from lrgen.cli.app import app


@app.command("score-vcf")
def score_vcf_command(
    vcf: Path = typer.Argument(..., help="Input VCF or BCF (plain or bgzipped)."),
    genome: Path = typer.Option(..., "--genome", help="Indexed FASTA of the VCF's genome (plain or bgzip)."),
    model: str = typer.Option(..., "--model", help="Preset name or model folder (Caduceus or Hawk)."),
    context: str = typer.Option(..., "--context", help="Context window length, e.g. 131kb or 1Mbp."),
    output: Path = typer.Option(..., "-o", "--output", help="Output VCF: *.vcf, or *.vcf.gz (bgzip + tabix)."),
    score: List[str] = typer.Option(["llr"], "--score", help="llr, wt-marginal, embedding or head; repeatable."),
    tsv: Optional[Path] = typer.Option(None, "--tsv", help="Also write a table: one row per ALT allele."),
    exact: bool = typer.Option(False, "--exact", help="Full passes for every allele (no local recomputation)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run with the same options."),
    regions: Optional[Path] = typer.Option(None, "--regions", help="BED file: score only records overlapping it."),
    recompute_span: str = typer.Option("8192", "--recompute-span", help="bp recomputed around each allele."),
    embedding_span: str = typer.Option("1536", "--embedding-span", help="bp around the allele for embedding."),
    on_ref_mismatch: str = typer.Option("skip", "--on-ref-mismatch", help="error, skip or score."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Passes per batch (16; 1 with --exact)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    chunk_size: Optional[str] = typer.Option(None, "--chunk-size", help="Positions per scan chunk [65536 on a GPU, 4096 on a CPU]."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, or bfloat16/float16 autocast on GPU."),
) -> None:
    """Score every variant of a VCF with a DNA language model and megabase context (docs/score-vcf.md)."""
    from lrgen.variants import score_vcf

    score_vcf(
        vcf,
        genome,
        model,
        context,
        output,
        scores=tuple(score),
        tsv=tsv,
        exact=exact,
        resume=resume,
        regions=regions,
        recompute_span=recompute_span,
        embedding_span=embedding_span,
        on_ref_mismatch=on_ref_mismatch,
        batch_size=batch_size,
        device=None if device == "auto" else device,
        chunk_size=chunk_size,
        dtype=dtype,
        command=shlex.join(["lrgen", *sys.argv[1:]]),
    )
