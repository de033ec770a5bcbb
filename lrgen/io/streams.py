"""Standard input and output, named ``-`` on the command line as in bcftools and samtools.

A stream is read to its end once: a VCF into a temporary file (htslib, the record locator and the progress bar's
count read a file), a BED into memory (it is small). Messages name standard input ``<stdin>``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
import tempfile
from pathlib import Path

from lrgen.errors import LrgenError

STDIO = "-"
STDIN_NAME = "<stdin>"
STDOUT_NAME = "<stdout>"
_GZIP_MAGIC = b"\x1f\x8b"


def is_stdio(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is ``-`` (standard input where read, standard output where written)."""
    return path is not None and os.fspath(path) == STDIO


def _stdin(what: str):
    """The binary standard input, refused when it is a terminal (nothing piped in: reading would hang)."""
    if sys.stdin is None or sys.stdin.isatty():
        raise LrgenError(f"'-' reads {what} from standard input, but nothing is piped in: pipe it in "
                         f"(e.g. `zcat in.gz | lrgen ... -`) or give a file name")
    return sys.stdin.buffer


def spool_stdin(what: str, suffix: str = "") -> Path:
    """Standard input copied into a new temporary file (in ``$TMPDIR``), byte for byte; the caller removes it."""
    source = _stdin(what)
    fd, name = tempfile.mkstemp(prefix="lrgen-stdin-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def read_stdin_text(what: str) -> str:
    """All of standard input as text (gzip or bgzip decompressed)."""
    data = _stdin(what).read()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise LrgenError(f"{STDIN_NAME}: cannot decompress the gzip stream ({exc})") from None
    return data.decode("utf-8", errors="replace")
