"""`lrgen pretrain`."""

from lrgen.cli.app import app, not_available


@app.command("pretrain", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def pretrain_command() -> None:
    """Not available yet."""
    not_available("pretrain", "issue #6")
