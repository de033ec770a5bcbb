"""What a score-vcf process has finished, kept in the run's partial folder so that ``--resume`` continues it.

Each process writes into its own ``rank<R>/`` subfolder of the partial folder (:mod:`lrgen.runtime.partial`):
``body.vcf`` and ``body.tsv`` (the finished windows' lines, appended and synced) and ``progress.json`` (records
consumed, windows passed, the byte sizes of the bodies and of each window this process scored, the summary counts
and the run's header notes), replaced atomically after every window. Lines past the recorded sizes (a window being
written when the run stopped) are cut off on resume.
"""

from __future__ import annotations

from lrgen.runtime.files import sync
from lrgen.runtime.partial import PartialFolder

PROGRESS = "progress.json"


class Bodies:
    """The finished windows of this process; :meth:`start` restores them when the folder was resumed."""

    def __init__(self, partial: PartialFolder) -> None:
        self.partial = partial
        self.folder = partial.rank_folder
        self.vcf_body = self.folder / "body.vcf"
        self.tsv_body = self.folder / "body.tsv"
        self.records = 0
        self.windows = 0
        self.counts: dict = {}
        self.meta: dict = {}
        self.pieces: list[list[int]] = []
        self._vcf = self._tsv = None

    def start(self, meta: dict) -> bool:
        """Open the bodies for appending; returns True when earlier progress was restored (with its meta)."""
        saved = self.partial.read_state(PROGRESS) if self.partial.resumed else None
        if saved is not None:
            try:
                self.records, self.windows = saved["records"], saved["windows"]
                self.counts, self.meta, self.pieces = saved["counts"], saved["meta"], saved["pieces"]
                for path, size in ((self.vcf_body, saved["vcf_bytes"]), (self.tsv_body, saved["tsv_bytes"])):
                    if not path.is_file() or path.stat().st_size < size:
                        raise self.partial.damaged(path, f"is missing or shorter than the {size:,} bytes recorded")
                    with open(path, "r+b") as fh:
                        fh.truncate(size)
            except (KeyError, TypeError, OSError):
                raise self.partial.damaged(self.folder / PROGRESS, "does not describe its bodies") from None
        else:
            self.meta = meta
            for path in (self.vcf_body, self.tsv_body):
                path.write_bytes(b"")
        self._vcf = open(self.vcf_body, "a", encoding="utf-8")
        self._tsv = open(self.tsv_body, "a", encoding="utf-8")
        return saved is not None

    def commit(self, vcf_text: str, tsv_text: str, records: int, counts: dict, scored: bool = True) -> None:
        """Append one finished window (``scored`` False: another process's window) and record the progress."""
        if scored:
            for fh, text in ((self._vcf, vcf_text), (self._tsv, tsv_text)):
                fh.write(text)
                sync(fh)
            self.pieces.append([len(vcf_text.encode()), len(tsv_text.encode())])
        self.records += records
        self.windows += 1
        self.counts = counts
        self.partial.write_state(PROGRESS, {
            "records": self.records, "windows": self.windows, "vcf_bytes": self.vcf_body.stat().st_size,
            "tsv_bytes": self.tsv_body.stat().st_size, "counts": counts, "meta": self.meta, "pieces": self.pieces,
        })

    def close(self) -> None:
        for fh in (self._vcf, self._tsv):
            if fh is not None:
                fh.close()
        self._vcf = self._tsv = None
