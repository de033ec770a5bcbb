"""Atomic file writes: into a temporary sibling, then renamed into place, so a reader (or a resumed run) never sees
half a file. Temporary files get the mode a plain ``open`` would give (the umask is honoured)."""

from __future__ import annotations

import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def temporary_sibling(path: Path, tag: str = "tmp") -> Path:
    """A hidden name beside ``path`` that no other process uses: ``.NAME.TAG-PID``."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is removed."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
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
        dst.rename(old)
        src.rename(dst)
        shutil.rmtree(old)
    else:
        src.rename(dst)


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
