"""`lrgen predict`: tracks over BED regions written to bigWig or bedGraph."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lrgen.cli.app import app
from lrgen.cli.common import (at_least_one, bed_input, chunk_size_option, deprecated_option, device_option,
                              genome_option, length, model_option, output_option, regions_option, renamed)


@app.command("predict")
def predict_command(
    bed: Optional[Path] = typer.Argument(
        None, help="BED file of regions (shorthand for --regions; - reads standard input)."
    ),
    regions: Optional[Path] = regions_option(
        "BED file of regions (BED3+; - reads standard input); overlapping regions are merged."
    ),
    genome: Path = genome_option(),
    model: str = model_option("Bundled model, preset, checkpoint, hub id, or a folder written by lrgen finetune "
                              "whose head writes tracks (per bin or per window)."),
    output: Optional[str] = output_option("Output file (one track; the stem for several), or a folder "
                                           "(existing, or ending in /) for one file per track.", required=False),
    out_dir: Optional[str] = deprecated_option("--out-dir"),
    track: Optional[list[str]] = typer.Option(
        None, "--track", "-t",
        help="Track by name or index; repeatable. Language model: logprob (default), entropy, max-alt-llr. "
             "Fine-tuned model: its output tracks (default: all).",
    ),
    context: Optional[str] = typer.Option(
        None, "--context", "-c", help="Window length fed to the model [131072; a fine-tuned model's training context]."
    ),
    flank: Optional[str] = typer.Option(None, "--flank", help="Context cropped on each side of a window \\[context/8; "
                                                              "a per-window head: all but its pooled centre]."),
    chunk_size: Optional[str] = chunk_size_option(),
    bin_size: Optional[str] = typer.Option(
        None, "--bin-size", help="Average values over bins of this many bases [1; a per-bin model's bin, 128]."
    ),
    format: Optional[str] = typer.Option(None, "--format", help="bigwig or bedgraph \\[from the output's extension]."),
    batch_size: int = typer.Option(1, "--batch-size", help="Windows per model pass."),
    conjoin: bool = typer.Option(False, "--conjoin", help="Average with the reverse-complement pass (post-hoc)."),
    device: str = device_option(),
    regions_all: bool = typer.Option(False, "--regions-all", help="Predict every contig of the genome."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run with the same settings."),
    cuda_graphs: bool = typer.Option(
        True, "--cuda-graphs/--no-cuda-graphs", help="On a GPU, replay equal batches of windows from a CUDA graph."
    ),
) -> None:
    """Predict tracks over BED regions and write them to bigWig (or bedGraph); run under torchrun to shard windows."""
    from rich.console import Console

    from lrgen.errors import LrgenError
    from lrgen.tracks.predict import PredictOptions, predict

    if out_dir is not None:  # the old spelling names a folder
        output = renamed(output, out_dir.rstrip("/") + "/", "--out-dir", "-o/--output")
    if output is None:
        raise LrgenError("no output: pass -o/--output FILE (or a folder for one file per track)")
    summary = predict(PredictOptions(
        regions=bed_input(bed, regions, required=not regions_all), genome=genome, model=model, output=output,
        tracks=track, context=length(context, "--context"),
        flank=None if flank is None else 0 if flank.strip() == "0" else length(flank, "--flank"),
        chunk_size=length(chunk_size, "--chunk-size"), bin_size=length(bin_size, "--bin-size"), format=format,
        batch_size=at_least_one(batch_size, "--batch-size"), conjoin=conjoin, device=device,
        regions_all=regions_all, resume=resume, cuda_graphs=cuda_graphs,
    ))
    if summary.rank == 0:
        Console(stderr=True).print(summary.line(), highlight=False, soft_wrap=True)
