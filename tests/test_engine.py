"""The streaming engine against the whole-sequence forward: chunk sizes, batches, N, conjoining, state restarts."""

from __future__ import annotations

import copy

import pytest
import torch

from lrgen import load_model
from lrgen.engine import ChunkRunner, PassRouter, restream_span, stream
from lrgen.engine.chunks import chunk_bounds
from lrgen.errors import LrgenError
from lrgen.models.scan import run_whole, sequence_order
from lrgen.tokenizer import A_ID, COMPLEMENT_IDS, reverse_complement_ids

from helpers import DNA_LENGTH as LENGTH, STREAMING_PRESETS as PRESETS, dna, snv, tiny

TOL = 1e-4


def rc_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits of the reverse-complement strand mapped back: flip positions, complement vocabulary columns."""
    return logits.flip(1)[..., list(COMPLEMENT_IDS)]


def test_chunk_bounds_cover_the_sequence():
    assert chunk_bounds(10, 4) == [0, 4, 8, 10]
    assert chunk_bounds(3, 100) == [0, 3]
    assert chunk_bounds(8, 4) == [0, 4, 8]


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize(("chunk_size", "length"), [(1, 40), (7, LENGTH), (64, LENGTH), (LENGTH, LENGTH)])
def test_streamed_logits_equal_full_forward(name, chunk_size, length):
    model = tiny(name)
    ids = dna(2, length)
    with torch.no_grad():
        full = model(ids)
    streamed = stream(model, ids, chunk_size=chunk_size)
    assert streamed.shape == full.shape
    assert (streamed - full).abs().max().item() <= TOL


@pytest.mark.parametrize("name", PRESETS)
def test_streamed_hidden_equal_embed(name):
    model = tiny(name)
    ids = dna(3, seed=1)
    with torch.no_grad():
        full = model.embed(ids)
    streamed = stream(model, ids, chunk_size=33, output="hidden")
    assert streamed.shape == (3, LENGTH, model.hidden_size)
    assert (streamed - full).abs().max().item() <= TOL


def test_chunk_larger_than_sequence_and_offload_on_cpu():
    model = tiny("hawk-tiny")
    ids = dna(1)
    with torch.no_grad():
        full = model(ids)
    assert (stream(model, ids, chunk_size=10_000) - full).abs().max().item() <= TOL
    assert (stream(model, ids, chunk_size=16, offload=True) - full).abs().max().item() <= TOL


def test_bfloat16_autocast_stays_close_to_float32():
    model = tiny("caduceus-ph-tiny")
    ids = dna(1)
    exact = stream(model, ids, chunk_size=64)
    low = stream(model, ids, chunk_size=64, dtype=torch.bfloat16).float()
    assert (low - exact).abs().max().item() <= 0.05 * exact.abs().max().item()


def test_ntv2_cannot_stream():
    with pytest.raises(LrgenError, match="cannot stream"):
        stream(load_model("ntv2-tiny"), torch.zeros(1, 12, dtype=torch.long))


@pytest.mark.parametrize("kwargs", [{"chunk_size": 0}, {"output": "probs"}, {"record_every": 0}])
def test_bad_arguments_are_user_errors(kwargs):
    with pytest.raises(LrgenError):
        stream(tiny("hawk-tiny"), dna(1), **kwargs)


def test_input_must_be_a_batch():
    with pytest.raises(LrgenError, match="batch, length"):
        stream(tiny("hawk-tiny"), dna(1)[0])


@pytest.mark.parametrize("name", PRESETS)
def test_conjoined_output_is_strand_symmetric(name):
    model = tiny(name)
    ids = dna(2, seed=2)
    conj = stream(model, ids, chunk_size=40, conjoin=True)
    conj_rc = stream(model, reverse_complement_ids(ids), chunk_size=40, conjoin=True)
    assert (conj - rc_logits(conj_rc)).abs().max().item() <= TOL
    with torch.no_grad():
        expected = (model(ids) + rc_logits(model(reverse_complement_ids(ids)))) / 2
    assert (conj - expected).abs().max().item() <= TOL
    hidden = stream(model, ids, chunk_size=40, conjoin=True, output="hidden")
    with torch.no_grad():
        expected_hidden = (model.embed(ids) + model.embed(reverse_complement_ids(ids)).flip(1)) / 2
    assert (hidden - expected_hidden).abs().max().item() <= TOL


def test_parameter_sharing_model_needs_no_conjoining():
    model = tiny("caduceus-ps-tiny")
    ids = dna(1, seed=3)
    assert (stream(model, ids, chunk_size=50, conjoin=True) - stream(model, ids, chunk_size=50)).abs().max() <= TOL


def test_record_holds_every_scan_at_multiples_of_every():
    model = tiny("hawk-tiny")
    out, record = stream(model, dna(2), chunk_size=16, record_every=25)
    assert out.shape[:2] == (2, LENGTH)
    assert len(record.states) == 2 * model.config.n_layers
    assert {k for k, rev in record.reverse.items() if rev} == {k for k in record.states if k.endswith("rev")}
    for slot in record.states.values():
        assert sorted(slot) == [25, 50, 75, 100, 125]
    assert record.nbytes() > 0


@pytest.mark.parametrize("name", PRESETS)
def test_restart_over_whole_sequence_equals_full_pass(name):
    model = tiny(name)
    ids = dna(2, seed=4)
    _, record = stream(model, ids, chunk_size=16, record_every=10)
    alt = snv(ids, 77)
    with torch.no_grad():
        full_alt = model(alt)
    local = restream_span(model, record, alt, span=(0, LENGTH), chunk_size=9)
    assert (local - full_alt).abs().max().item() <= TOL


def test_restart_error_shrinks_as_the_span_grows():
    torch.manual_seed(2)
    model = load_model("hawk-tiny").eval()
    with torch.no_grad():  # large weights, so the variant's effect reaches far and the approximation shows
        for pname, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(std=0.35)
            elif pname.endswith("bias"):
                p.normal_(std=0.2)
    ids = dna(1, seed=5)
    _, record = stream(model, ids, chunk_size=16, record_every=8)
    pos = 75
    alt = snv(ids, pos)
    with torch.no_grad():
        full_alt = model(alt)[:, pos - 4 : pos + 5]
    errors = []
    for half in (4, 12, 28, 52, 75):
        start, end = max(0, pos - half), min(LENGTH, pos + half + 1)
        local = restream_span(model, record, alt[:, start:end], span=(start, end))
        errors.append((local[:, pos - 4 - start : pos + 5 - start] - full_alt).abs().max().item())
    assert all(later <= earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[0] > 1e-2  # the approximation is visible on a narrow span
    assert errors[-1] <= TOL


def test_restart_inside_the_record_matches_the_reference_where_nothing_changed():
    model = tiny("caduceus-ph-tiny")
    ids = dna(1, seed=6)
    ref, record = stream(model, ids, chunk_size=32, record_every=16)
    local = restream_span(model, record, ids[:, 37:90], span=(37, 90), chunk_size=5)
    assert (local - ref[:, 37:90]).abs().max().item() <= TOL


def test_conjoined_restart_uses_the_mirrored_boundaries_of_the_rc_strand():
    model = tiny("caduceus-ph-tiny")
    ids = dna(1, seed=9)
    ref, record = stream(model, ids, chunk_size=32, record_every=16, conjoin=True)
    assert torch.equal(record.rc.input_ids, reverse_complement_ids(ids))
    assert record.rc.phase == LENGTH % 16 and sorted(record.rc.states["layers.0.mamba_fwd"])[0] == LENGTH % 16
    local = restream_span(model, record, ids[:, 37:90], span=(37, 90), chunk_size=5)
    assert (local - ref[:, 37:90]).abs().max().item() <= TOL
    hidden = restream_span(model, record, ids[:, 37:90], span=(37, 90), output="hidden")
    assert (hidden - stream(model, ids, conjoin=True, output="hidden")[:, 37:90]).abs().max().item() <= TOL


def test_restart_broadcasts_a_batch_one_record_and_handles_indels():
    model = tiny("caduceus-ps-tiny")
    ids = dna(1, seed=7)
    _, record = stream(model, ids, record_every=20)
    alts = torch.cat([snv(ids, 60), snv(ids, 61), snv(ids, 62)])
    local = restream_span(model, record, alts, span=(0, LENGTH))
    with torch.no_grad():
        assert (local - model(alts)).abs().max().item() <= TOL
    insertion = torch.cat([ids[:, :70], torch.full((1, 3), A_ID), ids[:, 70:]], dim=1)
    local = restream_span(model, record, insertion[:, 40:103], span=(40, 100))
    assert local.shape[1] == 63
    whole = restream_span(model, record, insertion, span=(0, LENGTH))
    with torch.no_grad():
        assert (whole - model(insertion)).abs().max().item() <= TOL


def test_conjoined_restart_over_whole_sequence_equals_conjoined_pass():
    model = tiny("caduceus-ph-tiny")
    ids = dna(1, seed=8)
    _, record = stream(model, ids, chunk_size=30, record_every=15, conjoin=True, output="hidden")
    assert record.rc is not None
    alt = snv(ids, 100)
    local = restream_span(model, record, alt, span=(0, LENGTH))
    assert (local - stream(model, alt, conjoin=True, output="hidden")).abs().max().item() <= TOL


def test_restart_rejects_spans_outside_and_mismatched_batches():
    model = tiny("hawk-tiny")
    _, record = stream(model, dna(2), record_every=10)
    with pytest.raises(LrgenError, match="not inside"):
        restream_span(model, record, dna(2, 10), span=(145, 155))
    with pytest.raises(LrgenError, match="batch"):
        restream_span(model, record, dna(3, 10), span=(10, 20))


def test_chunk_runner_is_a_scan_runner_for_any_fn():
    """A plain cumulative sum through the runner, forward and reverse, with a state carried across chunks."""
    x = torch.arange(1.0, 11.0).view(1, 10, 1)

    def cumsum(chunk, state):
        y = chunk.cumsum(1) + (0 if state is None else state)
        return y, y[:, -1:]

    runner = ChunkRunner(3)
    assert torch.equal(runner(cumsum, x, reverse=False, key="a"), x.cumsum(1))
    assert torch.equal(runner(cumsum, x, reverse=True, key="b"), x.flip(1).cumsum(1).flip(1))
    router = PassRouter([runner])
    router(cumsum, x, reverse=False, key="a")
    with pytest.raises(LrgenError, match="used 2 times"):
        router(cumsum, x, reverse=False, key="a")


def test_sequence_order_fns_walk_reverse_chunks_themselves_and_add_into_out():
    """The same cumulative sum taking chunks as they lie (``sequence_order``): no flips by the runner, the output
    added into ``out`` by fn itself; equal to the plain fn through the runner and through ``run_whole``."""
    x = torch.arange(1.0, 11.0).view(1, 10, 1)
    seen = []

    def cumsum(chunk, state, marks=None, *, reverse, out):
        seen.append((chunk[0, 0, 0].item(), reverse, out is not None))
        y = chunk.flip(1).cumsum(1).flip(1) if reverse else chunk.cumsum(1)
        y = y + (0 if state is None else state)
        last = y[:, :1] if reverse else y[:, -1:]
        return (y, last) if out is None else (out.add_(y), last)

    fn = sequence_order(cumsum)
    runner = ChunkRunner(3)
    assert torch.equal(runner(fn, x, reverse=False, key="a"), x.cumsum(1))
    assert torch.equal(runner(fn, x, reverse=True, key="b"), x.flip(1).cumsum(1).flip(1))
    assert [s[0] for s in seen[4:]] == [10.0, 7.0, 4.0, 1.0]  # reverse chunks handed over unflipped, right to left
    out = torch.ones(1, 10, 1)
    assert torch.equal(runner(fn, x, reverse=True, key="c", out=out), 1 + x.flip(1).cumsum(1).flip(1))
    assert all(s[2] for s in seen[8:])
    assert torch.equal(run_whole(fn, x, reverse=True, key="d"), x.flip(1).cumsum(1).flip(1))


@pytest.mark.gpu
@pytest.mark.parametrize("name", PRESETS)
def test_streamed_equals_full_on_gpu_with_offload(name):
    model = copy.deepcopy(tiny(name)).cuda()
    ids = dna(2).cuda()
    with torch.no_grad():
        full = model(ids)
    for offload in (False, True):
        streamed = stream(model, ids, chunk_size=37, offload=offload)
        assert (streamed.to(full.device) - full).abs().max().item() <= TOL
    _, record = stream(model, ids, chunk_size=37, record_every=16, offload=True)  # states kept on the CPU
    alt = snv(ids, 70)
    with torch.no_grad():
        full_alt = model(alt)
    assert (restream_span(model, record, alt, span=(0, LENGTH)) - full_alt).abs().max().item() <= TOL
    low = stream(model, ids, chunk_size=37, dtype=torch.bfloat16).float()
    assert (low - full).abs().max().item() <= 0.05 * full.abs().max().item()
