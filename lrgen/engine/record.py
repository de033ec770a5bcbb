"""Per-layer scan states recorded during a reference pass, to restart scans near a local change."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from lrgen.engine.chunks import map_state, merge_states
from lrgen.errors import LrgenError
from lrgen.models.scan import State


@dataclass
class StateRecord:
    """States of every scan of one pass, at every ``every``-th position.

    ``states[key][p]`` is the state of scan ``key`` at boundary ``p`` (0 < p < L, p ≡ phase mod every): for a
    forward scan the state after positions ``[0, p)``, for a reverse scan the state after positions ``[p, L)``
    walked right to left. The zero state at 0 (forward) and L (reverse) is implied. ``input_ids`` are the pass's
    tokens (on CPU), used to fill the gap between a restarted span and its nearest boundaries. ``rc`` is the record
    of the reverse-complement pass of a conjoined run, whose ``phase`` is ``L % every`` so that its boundaries are the
    mirror images of the forward strand's.
    """

    every: int
    input_ids: Tensor
    output: str
    states: dict[str, dict[int, State]] = field(default_factory=dict)
    reverse: dict[str, bool] = field(default_factory=dict)
    store_device: torch.device | None = None
    phase: int = 0
    rc: StateRecord | None = None

    @property
    def length(self) -> int:
        return self.input_ids.shape[1]

    @property
    def batch(self) -> int:
        return self.input_ids.shape[0]

    @property
    def grid(self) -> tuple[int, int]:
        """``(every, phase)``: the positions a scan runner asks its chunks for (``scan_chunks``' ``grid``)."""
        return self.every, self.phase % self.every

    def hook(self, key: str, reverse: bool):
        """The ``on_marks`` callback that stores scan ``key``'s states at the recorded boundaries."""
        if key in self.states:
            raise LrgenError(f"scan key {key!r} used twice in one pass: the model breaks the scan-runner contract")
        self.states[key] = {}
        self.reverse[key] = reverse
        length, slot, device = self.length, self.states[key], self.store_device

        def store(positions: list[int], states: list[State]) -> None:
            kept = [(p, state) for p, state in zip(positions, states) if 0 < p < length]
            if not kept:
                return
            # one copy per state tensor for the whole chunk: stacked (fresh memory), then moved to the store device
            stacked = merge_states([state for _, state in kept],
                                   lambda parts: torch.stack([t.detach() for t in parts]).to(device or parts[0].device))
            for i, (position, _) in enumerate(kept):
                slot[position] = map_state(stacked, lambda t: t[i])

        return store

    def window(self, start: int, end: int) -> tuple[int, int]:
        """The recorded boundaries (or sequence ends) around ``[start, end)``: the nearest ≤ start and ≥ end."""
        if not 0 <= start <= end <= self.length:
            raise LrgenError(f"span [{start}, {end}) is not inside the recorded sequence [0, {self.length})")
        phase = self.phase % self.every
        first = max(0, (start - phase) // self.every * self.every + phase)
        last = min(self.length, -(-(end - phase) // self.every) * self.every + phase)
        return first, last

    def _slot(self, key: str, reverse: bool) -> dict[int, State]:
        if key not in self.states:
            raise LrgenError(f"scan key {key!r} is not in the state record: record and model do not match")
        if self.reverse[key] != reverse:
            raise LrgenError(f"scan key {key!r} changed direction between the recorded pass and the restart")
        return self.states[key]

    def start_state(self, key: str, reverse: bool, position: int, batch: int, device: torch.device) -> State:
        """The state to restart scan ``key`` from at ``position``, broadcast to ``batch`` rows on ``device``."""
        slot = self._slot(key, reverse)
        if position == (self.length if reverse else 0):
            return None
        state = slot[position]

        def fit(t: Tensor) -> Tensor:
            t = t.to(device)
            if t.shape[0] == batch:
                return t.clone()
            if t.shape[0] == 1:
                return t.expand(batch, *t.shape[1:]).clone()
            raise LrgenError(
                f"restart batch {batch} does not match the recorded batch {t.shape[0]}: use 1 or {t.shape[0]}"
            )

        return map_state(state, fit)

    def row_states(self, key: str, reverse: bool, positions: list[int], device: torch.device) -> State:
        """The states to restart scan ``key`` from, row ``i`` at ``positions[i]``, from a batch-1 record: the
        recorded states (zeros at the sequence end) concatenated along the batch and moved to ``device`` at once."""
        if len(set(positions)) == 1:
            return self.start_state(key, reverse, positions[0], len(positions), device)
        slot = self._slot(key, reverse)
        if self.batch != 1:
            raise LrgenError(f"per-row restarts need a batch-1 record, not batch {self.batch}")
        end = self.length if reverse else 0
        zero = map_state(next(slot[p] for p in positions if p != end), torch.zeros_like)
        rows = [zero if p == end else slot[p] for p in positions]
        return merge_states(rows, lambda parts: torch.cat(parts).to(device))

    def nbytes(self) -> int:
        """Bytes held by the recorded states (this strand and the reverse-complement one)."""
        total = 0
        for slot in self.states.values():
            for state in slot.values():
                sizes: list[int] = []
                map_state(state, lambda t: sizes.append(t.numel() * t.element_size()) or t)
                total += sum(sizes)
        return total + (self.rc.nbytes() if self.rc is not None else 0)
