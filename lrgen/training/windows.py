"""What the fine-tuning loop needs of a job's windows: the protocol that GLRB's and the user-data job's window sets
both follow, so batches, features and the loop never learn which job cut them."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np


class Windows(Protocol):
    """Labelled windows of one split, all ``context`` bp long.

    ``records`` are the kept examples; ``counts`` says how many rows were read and why some were dropped. A variant
    set (``variant``) yields a REF and an ALT window per record, and its records carry ``tissue`` (a name or None).
    """

    records: Sequence[Any]
    context: int
    counts: dict[str, int]

    @property
    def variant(self) -> bool:
        """Records are variants: each gives a REF window (:meth:`sequence`) and an ALT window (:meth:`alt_sequence`)."""

    def sequence(self, rec: Any) -> str:
        """The bases of the record's (REF) window."""

    def alt_sequence(self, seq: str, rec: Any) -> str:
        """The ALT window of a variant record, from its REF window ``seq``."""

    def labels(self, rec: Any) -> np.ndarray:
        """The record's float32 labels: ``(n_labels,)``, or ``(bins, tracks)`` for per-bin targets."""
