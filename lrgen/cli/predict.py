"""`lrgen predict`."""

from lrgen.cli.app import app, not_available


@app.command("predict", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def predict_command() -> None:
    """Not available yet."""
    not_available("predict", "issue #9")
