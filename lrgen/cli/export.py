"""`lrgen export`."""

from __future__ import annotations

from pathlib import Path

import typer

from lrgen.cli.app import app
from lrgen.cli.common import model_option, output_option


@app.command("export")
def export_command(
    model: str = model_option("Caduceus model: checkpoint or fine-tuned folder (its backbone), bundled model, "
                              "preset or hub id."),
    output: Path = output_option("New folder to write the model to, in the official Caduceus hub layout."),
) -> None:
    """Write a Caduceus model in the official Caduceus hub layout (config.json, model.safetensors, tokenizer files)."""
    from lrgen.models.export import export_model

    resolved = export_model(model, output)
    typer.echo(f"wrote {resolved.description} to {output} in the official Caduceus hub layout")
