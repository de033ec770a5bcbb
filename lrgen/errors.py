"""The one exception type whose message is shown to users as a one-line error, and the one way to warn them."""

import sys


class LrgenError(Exception):
    """A user-facing error: bad input, missing file, impossible request.

    The message names the file, line or record and says what to do. The CLI prints it on one line
    (``lrgen: error: ...``) and exits with code 1, without a traceback.
    """


def warn(message: str) -> None:
    """One line on stderr, ``lrgen: warning: ...``, printed where it stays (not inside a transient progress bar)."""
    print(f"lrgen: warning: {message}", file=sys.stderr, flush=True)
