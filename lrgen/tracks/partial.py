"""The resumable work folder of ``lrgen predict`` (``<first output>.lrgen-partial/``), shared by ``torchrun`` ranks.

It holds ``settings.json`` (a digest of everything that fixes the values), one float32 ``.npy`` memory map per
track (the regions one after another) that every rank writes its windows into, and one ``done.rank<r>.npy`` flag
array per rank. Windows
done by any rank of any earlier run count as done, so a run may resume with another number of processes. Memory
maps are shared between processes of one host.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from lrgen.errors import LrgenError

SETTINGS = "settings.json"


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class Partial:
    """Values and finished-window flags of one run; see the module docstring."""

    def __init__(self, folder: Path, settings: dict, n_tracks: int, lengths: list[int], n_windows: int,
                 resume: bool, rank: int = 0, barrier: Callable[[], None] = lambda: None) -> None:
        """``lengths`` are the regions' value counts; ``barrier`` waits for every rank (a no-op for one)."""
        self.folder = folder
        self.rank = rank
        digest = settings_digest(settings)
        meta = folder / SETTINGS
        same = meta.is_file() and json.loads(meta.read_text()).get("digest") == digest
        if resume and folder.exists() and not same:
            raise LrgenError(f"{folder} holds a run with other settings; remove it or run without --resume "
                             "to start over")
        self.resumed = resume and same
        barrier()  # every rank has read the folder before rank 0 changes it
        if rank == 0 and not self.resumed:
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            for t in range(n_tracks):
                np.lib.format.open_memmap(self._values_path(t), mode="w+", dtype=np.float32,
                                          shape=(sum(lengths),)).flush()
            (folder / SETTINGS).write_text(json.dumps({"digest": digest, "settings": settings}, indent=1))
        barrier()  # the folder is ready
        self._values = [np.lib.format.open_memmap(self._values_path(t), mode="r+") for t in range(n_tracks)]
        self._offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        self.done = self.done_union(n_windows)
        self._done_path = folder / f"done.rank{rank}.npy"

    def _values_path(self, track: int) -> Path:
        return self.folder / f"values.{track}.npy"

    def values(self, track: int, region: int) -> np.ndarray:
        """The writable values of one track over one region."""
        return self._values[track][self._offsets[region] : self._offsets[region + 1]]

    def done_union(self, n_windows: int) -> np.ndarray:
        """Windows finished by any rank so far."""
        done = np.zeros(n_windows, dtype=bool)
        for path in sorted(self.folder.glob("done.rank*.npy")):
            flags = np.load(path)
            if flags.shape != done.shape:
                raise LrgenError(f"{path}: {flags.size} window flags for {n_windows} windows; remove {self.folder}")
            done |= flags
        return done

    def save(self) -> None:
        """Flush the values, then record this rank's finished windows (atomically)."""
        for array in self._values:
            array.flush()
        tmp = self.folder / f".done.rank{self.rank}.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, self.done)
        tmp.replace(self._done_path)

    def remove(self) -> None:
        self._values.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
