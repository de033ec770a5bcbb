"""`lrgen embed`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lrgen.cli.app import app


@app.command("embed")
def embed_command(
    bed: Path = typer.Argument(..., help="BED file of regions to embed."),
    model: str = typer.Option(..., "--model", help="Preset name, checkpoint folder or hub id."),
    genome: Path = typer.Option(..., "--genome", help="Indexed FASTA (plain or bgzip)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file: *.safetensors or *.npz."),
    context: str = typer.Option(None, "--context", help="Window length centred on each region, e.g. 12kb."),
    chunk_size: Optional[str] = typer.Option(
        None, "--chunk-size", help="Positions per chunk of the streamed scans [65536 on a GPU, 4096 on a CPU]."),
    pool: str = typer.Option("mean", "--pool", help="mean: one vector per region; none: one per position."),
    conjoin: bool = typer.Option(False, "--conjoin", help="Average with the reverse-complement strand."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows of equal length evaluated together."),
    cuda_graphs: bool = typer.Option(
        True, "--cuda-graphs/--no-cuda-graphs", help="On a GPU, replay equal batches of windows from a CUDA graph."
    ),
) -> None:
    """Per-region embeddings of a BED file's regions through the streaming engine."""
    from lrgen.embedding import embed_regions
    from lrgen.sizes import parse_size

    meta = embed_regions(
        bed,
        model,
        genome,
        output,
        context=parse_size(context) if context is not None else None,
        chunk_size=None if chunk_size is None else parse_size(chunk_size),
        pool=pool,
        conjoin=conjoin,
        device=device,
        batch_size=batch_size,
        cuda_graphs=cuda_graphs,
    )
    typer.echo(f"wrote {len(meta['regions'])} region embeddings (hidden size {meta['hidden_size']}) to {output}")
