"""`lrgen score-vcf`."""

from lrgen.cli.app import app, not_available


@app.command("score-vcf", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def score_vcf_command() -> None:
    """Not available yet."""
    not_available("score-vcf", "issue #8")
