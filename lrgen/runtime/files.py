"""Atomic file writes: into a temporary sibling, then renamed into place, so a reader (or a resumed run) never sees
half a file. Temporary files get the mode a plain ``open`` would give (the umask is honoured).

Every durable step of a resumable job (a rename into place, a synced append) passes through :func:`wrote`, the
crash-test hook: with ``LRGEN_TEST_STOP_AFTER_WRITES=k`` in the environment the process ends abruptly, as under
``kill -9``, right after its ``k``-th such step (the crash-safety tests resume from every such point).
"""

from __future__ import annotations

import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

STOP_AFTER_WRITES = "LRGEN_TEST_STOP_AFTER_WRITES"
_writes = 0


def wrote() -> None:
    """Count one durable write; under ``LRGEN_TEST_STOP_AFTER_WRITES=k`` the ``k``-th ends the process (status 9)."""
    global _writes
    limit = os.environ.get(STOP_AFTER_WRITES)
    if not limit:
        return
    _writes += 1
    if _writes >= int(limit):
        os._exit(9)


def temporary_sibling(path: Path, tag: str = "tmp") -> Path:
    """A hidden name beside ``path`` that no other process uses: ``.NAME.TAG-PID``."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}")


def replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``src`` to ``dst`` (a file, or a folder onto an absent name), replacing a file ``dst``."""
    os.replace(src, dst)
    wrote()


def sync(fh: IO) -> None:
    """Flush an open file to disk (an appended piece becomes durable)."""
    fh.flush()
    os.fsync(fh.fileno())
    wrote()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is removed."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def replace_dir(src: Path, dst: Path) -> None:
    """Move the folder ``src`` to ``dst``, replacing an existing ``dst`` (the old one is renamed aside first)."""
    if dst.exists():
        old = temporary_sibling(dst, "old")
        replace(dst, old)
        replace(src, dst)
        shutil.rmtree(old)
    else:
        replace(src, dst)


def json_safe(x: Any) -> Any:
    """A JSON-safe copy: NaN and infinities become None (null), numpy scalars Python numbers, tuples lists."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.integer, np.floating)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
