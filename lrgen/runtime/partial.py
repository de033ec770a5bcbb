"""The resumable work folder of a job's output: ``<output>.lrgen-partial/`` beside the output.

It holds ``settings.json`` (everything that fixes the result: inputs, model and options) and whatever the job keeps
there as it goes (per-rank subfolders, memory maps, appended bodies, JSON state written atomically). A run started
with ``resume`` continues the folder when the settings match, and refuses it, naming what changed, when they do not;
a run without ``resume`` starts over. The folder appears and disappears by renames, so a kill at any moment leaves
either a whole folder or none (and at most a hidden sibling half made or half removed, which the next run removes).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from lrgen.errors import LrgenError
from lrgen.runtime.distributed import Processes
from lrgen.runtime.files import atomic_write_text, replace, temporary_sibling

SUFFIX = ".lrgen-partial"
SETTINGS = "settings.json"


class PartialFolder:
    """The partial folder of ``output`` for one run with ``settings``; shared by the processes of ``procs``."""

    def __init__(self, output: str | os.PathLike, settings: dict[str, Any], procs: Processes | None = None) -> None:
        output = Path(output)
        self.root = output.with_name(output.name + SUFFIX)
        self.settings = json.loads(json.dumps(settings))  # as it reads back from disk
        self.procs = procs or Processes()
        self.resumed = False

    @property
    def rank_folder(self) -> Path:
        """This process's own subfolder (``rank<R>``)."""
        return self.root / f"rank{self.procs.rank}"

    def open(self, resume: bool, populate: Callable[[Path], None] | None = None) -> bool:
        """Continue the folder (``resume`` and same settings) or start a fresh one, which rank 0 fills with
        ``populate(folder)`` before it appears; returns whether it resumed."""
        saved = self._saved_settings() if resume else None
        if saved is not None and saved != self.settings:
            changed = sorted(k for k in {*saved, *self.settings} if saved.get(k) != self.settings.get(k))
            raise LrgenError(f"cannot resume: {self.root} holds a run with other settings ({', '.join(changed)} "
                             "changed); rerun without --resume to start over")
        self.resumed = saved is not None
        self.procs.barrier()  # every process has read the folder before rank 0 replaces it
        if not self.resumed and self.procs.is_main:
            self._discard()
            fresh = temporary_sibling(self.root, "new")
            fresh.mkdir(parents=True)
            (fresh / SETTINGS).write_text(json.dumps(self.settings, indent=1) + "\n")
            if populate is not None:
                populate(fresh)
            replace(fresh, self.root)
        self.procs.barrier()  # the folder is ready
        self.rank_folder.mkdir(exist_ok=True)
        return self.resumed

    def _saved_settings(self) -> dict[str, Any] | None:
        if not self.root.exists():
            return None
        try:
            return json.loads((self.root / SETTINGS).read_text())
        except (OSError, ValueError):
            raise self.damaged(self.root / SETTINGS, "is missing or damaged") from None

    def damaged(self, path: Path, what: str = "is damaged") -> LrgenError:
        """The one-line error for an unusable part ``path`` of the folder: what to remove, and to start over."""
        return LrgenError(f"{path} {what}: the partial run cannot be resumed; remove it (rm -r {self.root}) and rerun "
                          "without --resume")

    def read_state(self, name: str, folder: Path | None = None) -> dict[str, Any] | None:
        """The JSON state ``name`` of this process (or of ``folder``), None when not written yet."""
        path = (folder or self.rank_folder) / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            raise self.damaged(path) from None

    def write_state(self, name: str, state: dict[str, Any]) -> None:
        """Replace this process's JSON state ``name`` atomically."""
        atomic_write_text(self.rank_folder / name, json.dumps(state))

    def remove(self) -> None:
        """Remove the folder (rank 0, once the outputs are written)."""
        if self.procs.is_main:
            self._discard()

    def _discard(self) -> None:
        """Remove the folder (renamed aside first), and what killed runs left beside it."""
        if self.root.exists():
            replace(self.root, temporary_sibling(self.root, "old"))
        for left in self.root.parent.glob(f".{self.root.name}.*-*"):
            shutil.rmtree(left, ignore_errors=True)
