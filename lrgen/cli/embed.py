"""`lrgen embed`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lrgen.cli.app import app
from lrgen.cli.common import (at_least_one, bed_input, chunk_size_option, device_option, genome_option, length,
                              model_option, output_option, regions_option)


@app.command("embed")
def embed_command(
    bed: Optional[Path] = typer.Argument(
        None, help="BED file of regions to embed (shorthand for --regions; - reads standard input)."
    ),
    regions: Optional[Path] = regions_option("BED file of regions to embed (- reads standard input)."),
    model: str = model_option(),
    genome: Path = genome_option(),
    output: Path = output_option("Output file: *.safetensors or *.npz."),
    context: Optional[str] = typer.Option(None, "--context", "-c", help="Window length centred on each region, e.g. 12kb."),
    chunk_size: Optional[str] = chunk_size_option(),
    pool: str = typer.Option("mean", "--pool", help="mean: one vector per region; none: one per position."),
    conjoin: bool = typer.Option(False, "--conjoin", help="Average with the reverse-complement strand."),
    device: str = device_option(),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows of equal length evaluated together."),
    cuda_graphs: bool = typer.Option(
        True, "--cuda-graphs/--no-cuda-graphs", help="On a GPU, replay equal batches of windows from a CUDA graph."
    ),
) -> None:
    """Per-region embeddings of a BED file's regions through the streaming engine."""
    from lrgen.embed import EmbedOptions, embed_regions

    meta = embed_regions(EmbedOptions(
        regions=bed_input(bed, regions), genome=genome, model=model, output=output,
        context=length(context, "--context"), chunk_size=length(chunk_size, "--chunk-size"), pool=pool,
        conjoin=conjoin, device=device, batch_size=at_least_one(batch_size, "--batch-size"), cuda_graphs=cuda_graphs,
    ))
    weights = f" ({meta['weights']})" if "weights" in meta else ""
    done = (f"wrote {len(meta['regions'])} region embeddings (hidden size {meta['hidden_size']}) to {output}"
            if meta["regions"] else f"no regions to embed: wrote {output} without embeddings")
    typer.echo(done + weights)
