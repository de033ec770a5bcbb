"""`lrgen info`: versions, device and kernel backends (and model presets with ``--models``)."""

from __future__ import annotations

import typer

from lrgen.cli.app import app


@app.command("info")
def info_command(
    models: bool = typer.Option(False, "--models", help="List the bundled trained models and the presets (architecture "
                                                        "only, random weights) with parameter counts."),
) -> None:
    """Show versions, the torch device and which kernel backends are available."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from lrgen.runtime.environment import describe_environment

    console = Console()
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
