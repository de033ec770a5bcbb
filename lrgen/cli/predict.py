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
    model: str = typer.Option(..., "--model", "-m",
                              help="Preset, checkpoint, hub repo id, or a folder written by lrgen finetune (cage)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file (one track), or the stem for several."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Write one file per track into this folder."),
    track: Optional[list[str]] = typer.Option(
        None, "--track", "-t",
        help="Track by name or index; repeatable. Language model: logprob (default), entropy, max-alt-llr. "
             "Fine-tuned model: its output tracks (default: all).",
    ),
    context: Optional[str] = typer.Option(
        None, "--context", "-c", help="Window length fed to the model (default: 131072; a fine-tuned model's training context)."
    ),
    flank: Optional[str] = typer.Option(None, "--flank", help="Context cropped on each side of a window (default: context/8)."),
    chunk_size: str = typer.Option("16Ki", "--chunk-size", help="Streaming chunk length inside a window."),
    bin_size: Optional[str] = typer.Option(
        None, "--bin-size", help="Average values over bins of this many bases (default: 1; a per-bin model's bin, 128)."
    ),
    fmt: str = typer.Option("bigwig", "--format", help="bigwig or bedgraph."),
    batch_size: int = typer.Option(1, "--batch-size", help="Windows per model pass."),
    conjoin: bool = typer.Option(False, "--conjoin", help="Average with the reverse-complement pass (post-hoc)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (torchrun: each rank's GPU)."),
    regions_all: bool = typer.Option(False, "--regions-all", help="Predict every contig of the genome."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run with the same settings."),
    cuda_graphs: bool = typer.Option(
        True, "--cuda-graphs/--no-cuda-graphs", help="On a GPU, replay equal batches of windows from a CUDA graph."
    ),
) -> None:
    """Predict tracks over BED regions and write them to bigWig (or bedGraph); run under torchrun to shard windows."""
    from rich.console import Console

    from lrgen.sizes import parse_size
    from lrgen.tracks.predict import predict

    summary = predict(
        regions, genome, model, output=output, out_dir=out_dir, tracks=track,
        context=None if context is None else parse_size(context),
        flank=None if flank is None else 0 if flank.strip() == "0" else parse_size(flank),
        chunk_size=parse_size(chunk_size), bin_size=None if bin_size is None else parse_size(bin_size), fmt=fmt,
        batch_size=batch_size, conjoin=conjoin, device=device, regions_all=regions_all, resume=resume,
        cuda_graphs=cuda_graphs,
    )
    if summary.rank == 0:
        Console(stderr=True).print(summary.line(), highlight=False, soft_wrap=True)
