"""The partial state of a score-vcf run, kept beside the output so that ``--resume`` continues it.

``OUT.lrgen-partial/`` (``OUT.lrgen-partial/rankR/`` for each process of a sharded run) holds ``body.vcf`` and
``body.tsv`` (the finished windows' lines), and ``progress.json``: the run's fingerprint (inputs and options that
change the result), the records consumed, the windows passed, the byte sizes of the bodies and of each window this
process scored (``pieces``, for merging shards) and the summary counts, rewritten atomically after every window.
Lines past the recorded sizes (a window being written when the run stopped) are cut off on resume.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from lrgen.errors import LrgenError


class PartialRun:
    """The scratch folder of one output; ``start(fingerprint, resume)`` opens it fresh or resumes it."""

    def __init__(self, out: Path, rank: int | None = None) -> None:
        self.out = out
        self.root = out.parent / f"{out.name}.lrgen-partial"
        self.folder = self.root / f"rank{rank}" if rank is not None else self.root
        self.progress = self.folder / "progress.json"
        self.vcf_body = self.folder / "body.vcf"
        self.tsv_body = self.folder / "body.tsv"
        self.records = 0
        self.windows = 0
        self.counts: dict = {}
        self.meta: dict = {}
        self.pieces: list[list[int]] = []
        self._vcf = self._tsv = None

    def start(self, fingerprint: dict, resume: bool, meta: dict) -> bool:
        """Open for writing; returns True when an earlier run was resumed (its counts and meta restored)."""
        resumed = False
        if resume and self.progress.exists():
            saved = json.loads(self.progress.read_text())
            if saved["fingerprint"] != fingerprint:
                changed = sorted(k for k in fingerprint if saved["fingerprint"].get(k) != fingerprint[k])
                raise LrgenError(
                    f"cannot resume {self.out}: the unfinished run used other inputs or options "
                    f"({', '.join(changed)} changed); rerun without --resume to start over"
                )
            self.records, self.windows = saved["records"], saved["windows"]
            self.counts, self.meta, self.pieces = saved["counts"], saved["meta"], saved["pieces"]
            for path, size in ((self.vcf_body, saved["vcf_bytes"]), (self.tsv_body, saved["tsv_bytes"])):
                with open(path, "r+b") as fh:
                    fh.truncate(size)
            resumed = True
        else:
            if self.folder.exists():
                shutil.rmtree(self.folder)
            self.folder.mkdir(parents=True)
            self.vcf_body.touch()
            self.tsv_body.touch()
            self.meta = meta
        self.fingerprint = fingerprint
        self._vcf = open(self.vcf_body, "a", encoding="utf-8")
        self._tsv = open(self.tsv_body, "a", encoding="utf-8")
        return resumed

    def commit(self, vcf_text: str, tsv_text: str, records: int, counts: dict, scored: bool = True) -> None:
        """Append one finished window (``scored`` False: another process's window) and record the progress."""
        if scored:
            for fh, text in ((self._vcf, vcf_text), (self._tsv, tsv_text)):
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            self.pieces.append([len(vcf_text.encode()), len(tsv_text.encode())])
        self.records += records
        self.windows += 1
        self.counts = counts
        state = {
            "fingerprint": self.fingerprint, "records": self.records, "windows": self.windows,
            "vcf_bytes": self.vcf_body.stat().st_size, "tsv_bytes": self.tsv_body.stat().st_size,
            "counts": counts, "meta": self.meta, "pieces": self.pieces,
        }
        tmp = self.folder / "progress.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.progress)

    def close(self) -> None:
        for fh in (self._vcf, self._tsv):
            if fh is not None:
                fh.close()
        self._vcf = self._tsv = None

    def discard(self, everything: bool = False) -> None:
        """Remove this process's scratch folder (after success, or when the input itself is bad); ``everything``
        removes every shard's too."""
        self.close()
        shutil.rmtree(self.root if everything else self.folder, ignore_errors=True)
        if self.root.is_dir() and not any(self.root.iterdir()):
            self.root.rmdir()
