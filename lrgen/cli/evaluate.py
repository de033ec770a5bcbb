"""`lrgen evaluate`."""

from lrgen.cli.app import app, not_available


@app.command("evaluate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def evaluate_command() -> None:
    """Not available yet."""
    not_available("evaluate", "issues #6 and #7")
