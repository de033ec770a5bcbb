"""The Typer application object shared by the command modules."""

import typer

app = typer.Typer(
    name="lrgen",
    help="State-space DNA language models for long-range genomics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from lrgen.version import __version__

        typer.echo(f"lrgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """State-space DNA language models for long-range genomics."""
