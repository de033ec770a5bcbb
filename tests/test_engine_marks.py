"""Recording states at marks inside chunks equals the old recording that cut the chunks at every boundary."""

from __future__ import annotations

import copy

import pytest
import torch

from lrgen.engine import ChunkRunner, PassRouter, StateRecord, restream_span, stream
from lrgen.engine.chunks import chunk_marks, map_state, scan_chunks
from lrgen.engine.stream import run_pass as _run
from lrgen.errors import LrgenError

from helpers import DNA_LENGTH as LENGTH, STREAMING_PRESETS as PRESETS, dna, snv, tiny

TOL = 1e-5


class SplitRecorder:
    """The old recording: chunks cut at every multiple of ``chunk_size`` and every position ``p ≡ phase (mod
    every)``, each boundary's state read from the end of a chunk."""

    def __init__(self, chunk_size: int, every: int, phase: int) -> None:
        self.chunk_size, self.every, self.phase = chunk_size, every, phase
        self.states: dict[str, dict[int, object]] = {}

    def __call__(self, fn, x, *, reverse: bool, key: str, out=None):
        length = x.shape[1]
        bounds = sorted(set(range(0, length, self.chunk_size)) | set(range(self.phase, length, self.every))
                        | {length})
        reached = list(reversed(bounds[:-1])) if reverse else bounds[1:]
        ends = iter(reached)
        slot = self.states[key] = {}

        def whole_chunks(xc, state):
            yc, state = fn(xc, state)
            position = next(ends)
            if 0 < position < length and position % self.every == self.phase:
                slot[position] = map_state(state, lambda t: t.clone())
            return yc, state

        return scan_chunks(whole_chunks, x, bounds, reverse=reverse, out=out)


def assert_same_states(new: dict, old: dict, tol: float = TOL) -> None:
    assert new.keys() == old.keys()
    for key in old:
        assert sorted(new[key]) == sorted(old[key]), key
        for p, state in old[key].items():
            flat_new, flat_old = [], []
            map_state(new[key][p], lambda t: flat_new.append(t) or t)
            map_state(state, lambda t: flat_old.append(t) or t)
            for a, b in zip(flat_new, flat_old, strict=True):
                assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
                assert (a - b).abs().max().item() <= tol, (key, p)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize(("chunk_size", "every"), [(50, 12), (48, 16), (16, 23), (1000, 7)])
def test_marked_record_equals_chunk_split_record(name, chunk_size, every):
    """Both strands of a conjoined pass: the RC strand's record has phase L % every ≠ 0 for these sizes."""
    model = tiny(name)
    ids = dna(2, seed=11)
    out, record = stream(model, ids, chunk_size=chunk_size, record_every=every, conjoin=True)
    assert record.rc.phase == LENGTH % every and LENGTH % every != 0
    old = [SplitRecorder(chunk_size, every, 0), SplitRecorder(chunk_size, every, LENGTH % every)]
    expected = _run(model, ids, PassRouter(old), "logits", True, None, False)
    assert (out - expected).abs().max().item() <= 1e-4
    assert_same_states(record.states, old[0].states)
    assert_same_states(record.rc.states, old[1].states)
    assert any(record.reverse.values()) and not all(record.reverse.values())


@pytest.mark.parametrize("name", PRESETS)
def test_restart_from_marked_record_is_unchanged(name):
    """A local restart gives the same outputs whether the record was cut at chunk edges or not."""
    model = tiny(name)
    ids = dna(1, seed=12)
    alt = snv(ids, 71)[:, 40:110]
    fine = stream(model, ids, chunk_size=5, record_every=20)[1]  # every boundary is a chunk edge too
    coarse = stream(model, ids, chunk_size=64, record_every=20)[1]  # boundaries inside chunks: marks
    a = restream_span(model, fine, alt, span=(40, 110), chunk_size=7)
    b = restream_span(model, coarse, alt, span=(40, 110), chunk_size=7)
    assert (a - b).abs().max().item() <= 1e-4


def test_chunk_marks_name_the_boundaries_each_direction_reaches():
    assert chunk_marks(0, 10, 3, 0, reverse=False) == ((3, 3), [3, 6, 9])
    assert chunk_marks(4, 10, 3, 0, reverse=False) == ((2, 3), [6, 9])
    assert chunk_marks(3, 9, 3, 0, reverse=False) == ((3, 3), [6, 9])  # the chunk's right edge is reached
    assert chunk_marks(4, 10, 3, 0, reverse=True) == ((1, 3), [9, 6])
    assert chunk_marks(4, 10, 3, 1, reverse=True) == ((3, 3), [7, 4])  # the left edge is reached in reverse
    assert chunk_marks(6, 9, 5, 0, reverse=True) == (None, [])
    assert chunk_marks(6, 9, 5, 0, reverse=False) == (None, [])


def test_a_scan_that_returns_too_few_marked_states_is_an_error():
    def forgetful(chunk, state, marks=None):
        y = chunk.cumsum(1)
        return (y, None) if marks is None else (y, None, [])

    with pytest.raises(LrgenError, match="scan-runner contract"):
        scan_chunks(forgetful, torch.ones(1, 10, 1), [0, 10], reverse=False, grid=(4, 0))


def test_recording_does_not_cut_chunks():
    """A running sum through the runner: the same chunks with and without a record, and the recorded states are the
    sums of [0, p) going forward and of [p, L) in reverse."""
    x = torch.arange(1.0, 11.0).view(1, 10, 1)
    calls: list[int] = []

    def running_sum(chunk, state, marks=None):
        calls.append(chunk.shape[1])
        y = chunk.cumsum(1) + (0 if state is None else state)
        if marks is None:
            return y, y[:, -1:]
        return y, y[:, -1:], [y[:, p - 1 : p] for p in range(marks[0], chunk.shape[1] + 1, marks[1])]

    record = StateRecord(3, torch.zeros(1, 10, dtype=torch.long), "logits")
    forward = ChunkRunner(4, record=record)(running_sum, x, reverse=False, key="fwd")
    backward = ChunkRunner(4, record=record)(running_sum, x, reverse=True, key="rev")
    assert calls == [4, 4, 2, 2, 4, 4]
    assert torch.equal(forward, x.cumsum(1)) and torch.equal(backward, x.flip(1).cumsum(1).flip(1))
    assert {p: s.item() for p, s in record.states["fwd"].items()} == {3: 6.0, 6: 21.0, 9: 45.0}
    assert {p: s.item() for p, s in record.states["rev"].items()} == {3: 49.0, 6: 34.0, 9: 10.0}


@pytest.mark.gpu
@pytest.mark.parametrize("name", PRESETS)
def test_marked_record_equals_chunk_split_record_on_gpu(name):
    """The GPU kernels' marks (Triton selective scan, conv states on the device) against chunk-end states."""
    model = copy.deepcopy(tiny(name)).cuda()
    ids = dna(2, seed=13).cuda()
    out, record = stream(model, ids, chunk_size=64, record_every=12, conjoin=True)
    old = [SplitRecorder(64, 12, 0), SplitRecorder(64, 12, LENGTH % 12)]
    expected = _run(model, ids, PassRouter(old), "logits", True, None, False)
    assert (out - expected).abs().max().item() <= 1e-4
    assert_same_states(record.states, old[0].states, tol=1e-4)
    assert_same_states(record.rc.states, old[1].states, tol=1e-4)
