"""`lrgen info`: versions, device and kernel backends (model presets with ``--models``; one model with ``--model``)."""

from __future__ import annotations

from typing import Optional

import typer

from lrgen.cli.app import app


@app.command("info")
def info_command(
    models: bool = typer.Option(False, "--models", help="List the bundled trained models and the presets (architecture "
                                                        "only, random weights) with parameter counts."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Describe one model as --model resolves it (folder, bundled, preset or hub id)."
    ),
) -> None:
    """Show versions, the torch device and which kernel backends are available, or what lrgen sees in a model."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if model is not None:
        from lrgen.models.describe import describe_model
        from lrgen.models.resolve import resolve_model

        table = Table(title=f"model {escape(model)}", show_header=False)
        for key, value in describe_model(resolve_model(model)).items():
            if value is not None:
                table.add_row(key.replace("_", " "), escape(_cell(value)))
        console.print(table)
        return

    from lrgen.runtime.environment import describe_environment

    env = describe_environment()
    table = Table(title="lrgen", show_header=False)
    for key, value in env["versions"].items():
        table.add_row(key, escape(value))
    table.add_row("device", env["device"])
    for name, state in env["backends"].items():
        table.add_row(f"backend {name}", escape(state))
    table.add_row("active backend (GPU tensors)", env["active_backend"])
    console.print(table)
    if models:
        from lrgen.models.registry import list_bundled, list_presets

        for title, rows in (("bundled trained models", list_bundled()),
                            ("model presets: architecture only, random weights", list_presets())):
            table = Table(title=title)
            for col in ("model", "family", "parameters", "description"):
                table.add_column(col)
            for p in rows:
                table.add_row(p["name"], p["family"], f"{p['parameters'] / 1e6:.2f}M", escape(p["description"]))
            console.print(table)


def _cell(value) -> str:
    """One table cell: yes/no, counts with thousands separators, ``key value`` pairs (ids), one fact per line."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return "\n".join(value) or "not stated"
    return str(value)
