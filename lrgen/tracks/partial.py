"""The values of an unfinished ``lrgen predict`` run, kept in its partial folder (:mod:`lrgen.runtime.partial`).

The folder holds one float32 ``.npy`` memory map per track (the regions one after another), made before the folder
appears, that every ``torchrun`` rank writes its windows into, and one ``done.npy`` flag array per rank
(``rank<R>/``). Windows done by any rank of any earlier run count as done, so a run may resume with another number
of processes. Memory maps are shared between the processes of one host.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrgen.runtime.files import atomic_path
from lrgen.runtime.partial import PartialFolder


class TrackValues:
    """Values and finished-window flags of one run in ``partial``; see the module docstring."""

    def __init__(self, partial: PartialFolder, n_tracks: int, lengths: list[int], n_windows: int,
                 resume: bool) -> None:
        """``lengths`` are the regions' value counts."""
        self.partial = partial

        def make_maps(folder: Path) -> None:
            for t in range(n_tracks):
                np.lib.format.open_memmap(folder / self._name(t), mode="w+", dtype=np.float32,
                                          shape=(sum(lengths),)).flush()

        partial.open(resume, populate=make_maps)
        try:
            self._values = [np.lib.format.open_memmap(partial.root / self._name(t), mode="r+")
                            for t in range(n_tracks)]
        except (OSError, ValueError):
            raise partial.damaged(partial.root / "values.*.npy", "cannot be read") from None
        self._offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        self.done = self.done_union(n_windows)
        self._done_path = partial.rank_folder / "done.npy"

    @staticmethod
    def _name(track: int) -> str:
        return f"values.{track}.npy"

    def values(self, track: int, region: int) -> np.ndarray:
        """The writable values of one track over one region."""
        return self._values[track][self._offsets[region] : self._offsets[region + 1]]

    def done_union(self, n_windows: int) -> np.ndarray:
        """Windows finished by any rank so far."""
        done = np.zeros(n_windows, dtype=bool)
        for path in sorted(self.partial.root.glob("rank*/done.npy")):
            try:
                flags = np.load(path)
            except (OSError, ValueError):
                raise self.partial.damaged(path) from None
            if flags.shape != done.shape:
                raise self.partial.damaged(path, f"has {flags.size} window flags for {n_windows} windows")
            done |= flags
        return done

    def save(self) -> None:
        """Flush the values, then record this rank's finished windows (atomically)."""
        for array in self._values:
            array.flush()
        with atomic_path(self._done_path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, self.done)

    def close(self) -> None:
        self._values.clear()
