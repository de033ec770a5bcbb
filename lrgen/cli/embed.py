"""`lrgen embed`."""

from lrgen.cli.app import app, not_available


@app.command("embed", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def embed_command() -> None:
    """Not available yet."""
    not_available("embed", "issue #4")
