"""The model passes of one window: the reference pass (once) and the passes with an allele or a mask put in.

An *edit* (:class:`lrgen.engine.Edit`) puts ``ids`` in place of the reference's ``[start, end)`` (lengths may
differ: indels). In exact mode every edit is a full pass over the whole edited window. In local mode the reference pass records each
layer's scan states every ``record_every`` positions, and an edit recomputes only ``recompute_span`` bp
around itself (widened to the recorded boundaries), restarting every scan from the reference pass's states
(:func:`lrgen.engine.restream_edits`); outside that span the edited pass is taken to equal the reference pass.
Edits are batched ``batch_size`` at a time; for models that are not RC-equivariant both strands run and
are conjoined (the engine's post-hoc conjoining).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from lrgen.engine import Edit, EditOutput, StateRecord, restream_edits, stream
from lrgen.engine.restart import batches_by_length, margins
from lrgen.tokenizer import CharTokenizer


class WindowPasses:
    """Reference and edited passes over one window ``ref_ids`` (L,) of token ids.

    ``recompute_span=None`` is exact mode. ``conjoin`` averages every pass with its reverse-complement pass.
    ``edits=False`` promises that only :meth:`reference` is used (nothing is recorded).
    """

    def __init__(self, model, ref_ids: Tensor, *, conjoin: bool, chunk_size: int, batch_size: int,
                 recompute_span: int | None, dtype: torch.dtype | None = None, edits: bool = True) -> None:
        self.model = model
        self.ref_ids = ref_ids.long().cpu()
        self.conjoin = conjoin
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.half_span = None if recompute_span is None else recompute_span // 2
        # states are recorded (by the first reference pass) only when edited passes will restart from them
        self.record_every = None if recompute_span is None or not edits else max(1, recompute_span // 4)
        self.dtype = dtype
        self._record: StateRecord | None = None
        self._logits: Tensor | None = None

    @property
    def tokenizer(self) -> CharTokenizer:
        """The model's own tokenizer: the ids of alleles and masks put into its passes."""
        return self.model.tokenizer

    @property
    def length(self) -> int:
        return self.ref_ids.shape[0]

    def reference(self, output: str) -> Tensor:
        """The reference pass's outputs (L, V or H); logits are kept, and the first pass records states (local)."""
        if output == "logits" and self._logits is not None:
            return self._logits
        record_every = self.record_every if self._record is None else None
        result = stream(self.model, self.ref_ids[None], chunk_size=self.chunk_size, output=output,
                        conjoin=self.conjoin, record_every=record_every, dtype=self.dtype)
        if record_every is not None:
            result, self._record = result
        if output == "logits":
            self._logits = result[0]
        return result[0]

    def edited(self, edits: list[Edit], output: str, reduce: Callable[[EditOutput], Any],
               advance: Callable[[int], None] | None = None) -> list[Any]:
        """``reduce`` of each edit's outputs over its region (the edit ± its margin), in order.

        Edits run in blocks of a few batches, so only one block's outputs are held at a time; ``advance(n)`` is
        told after each block.
        """
        if self.half_span is not None and self._record is None:
            self.reference("logits")
        block = self.batch_size * 4
        results: list[Any] = []
        for i in range(0, len(edits), block):
            part = edits[i : i + block]
            if self.half_span is None:
                outputs = self._exact(part, output)
            else:
                outputs = restream_edits(self.model, self._record, part, half_span=self.half_span,
                                         chunk_size=self.chunk_size, batch_size=self.batch_size, output=output,
                                         dtype=self.dtype)
            results.extend(reduce(out) for out in outputs)
            if advance is not None:
                advance(len(part))
        return results

    def _exact(self, edits: list[Edit], output: str) -> list[EditOutput]:
        """Full passes over every edited window."""
        results: list[EditOutput | None] = [None] * len(edits)
        rows = [(i, torch.cat([self.ref_ids[: e.start], e.ids.long().cpu(), self.ref_ids[e.end :]]))
                for i, e in enumerate(edits)]
        for batch in batches_by_length(rows, self.batch_size, lambda row: row[1].shape[0]):
            out = stream(self.model, torch.stack([row[1] for row in batch]), chunk_size=self.chunk_size,
                         output=output, conjoin=self.conjoin, dtype=self.dtype)
            for k, (i, _) in enumerate(batch):
                edit = edits[i]
                left, right = margins(edit, self.length)
                results[i] = EditOutput(out[k, edit.start - left : edit.start + edit.ids.shape[0] + right], left)
        return results  # type: ignore[return-value]
