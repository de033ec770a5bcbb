"""`lrgen finetune`."""

from lrgen.cli.app import app, not_available


@app.command("finetune", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def finetune_command() -> None:
    """Not available yet."""
    not_available("finetune", "issue #7")
