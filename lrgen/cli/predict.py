"""`lrgen predict`: tracks over BED regions written to bigWig or bedGraph."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lrgen.cli.app import app


@app.command("predict")
def predict_command(
    regions: Optional[Path] = typer.Argument(None, help="BED file of regions (BED3+); overlapping regions are merged."),
    genome: Path = typer.Option(..., "--genome", "-g", help="Indexed FASTA (plain or bgzip)."),
    model: str = typer.Option(..., "--model", "-m", help="Preset, checkpoint directory or hub repo id."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file (one track), or the stem for several."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Write one file per track into this folder."),
    track: Optional[list[str]] = typer.Option(
        None, "--track", "-t", help="Track to write: logprob (default), entropy, max-alt-llr. Repeatable."
    ),
    context: str = typer.Option("131kb", "--context", "-c", help="Window length fed to the model."),
    flank: Optional[str] = typer.Option(None, "--flank", help="Context cropped on each side of a window [context/8]."),
    chunk_size: str = typer.Option("16kb", "--chunk-size", help="Streaming chunk length inside a window."),
    bin_size: str = typer.Option("1", "--bin-size", help="Average values over bins of this many bases."),
    fmt: str = typer.Option("bigwig", "--format", help="bigwig or bedgraph."),
    batch_size: int = typer.Option(1, "--batch-size", help="Windows per model pass."),
    conjoin: bool = typer.Option(False, "--conjoin", help="Average with the reverse-complement pass (post-hoc)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    regions_all: bool = typer.Option(False, "--regions-all", help="Predict every contig of the genome."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run with the same settings."),
) -> None:
    """Predict per-position tracks over BED regions and write them to bigWig (or bedGraph)."""
    from rich.console import Console

    from lrgen.sizes import format_size, parse_size
    from lrgen.tracks.predict import predict

    summary = predict(
        regions, genome, model, output=output, out_dir=out_dir, tracks=track, context=parse_size(context),
        flank=None if flank is None else parse_size(flank), chunk_size=parse_size(chunk_size),
        bin_size=parse_size(bin_size), fmt=fmt, batch_size=batch_size, conjoin=conjoin, device=device,
        regions_all=regions_all, resume=resume,
    )
    Console(stderr=True).print(
        f"predicted {format_size(summary.bases)} in {summary.windows} windows, {summary.seconds:.1f} s "
        f"({summary.bases / max(summary.seconds, 1e-9):,.0f} bp/s): " + ", ".join(map(str, summary.outputs))
    )
