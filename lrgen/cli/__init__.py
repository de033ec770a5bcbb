"""Command-line interface: a thin layer that parses options and calls one library function per command."""

from __future__ import annotations

import sys

from lrgen.cli.app import app
from lrgen.cli import (  # noqa: F401  (registers the commands)
    info, pretrain, finetune, evaluate, score_vcf, predict, embed, glrb, export, stats, plot,
)
from lrgen.errors import LrgenError


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lrgen`` console script: user errors become one line on stderr and exit code 1."""
    try:
        app(args=argv, prog_name="lrgen", standalone_mode=True)
    except LrgenError as exc:
        print(f"lrgen: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("lrgen: interrupted", file=sys.stderr)
        sys.exit(130)
