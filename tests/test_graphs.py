"""CUDA-graph replay of streamed passes (lrgen.engine.graphs) against plain streaming."""

from __future__ import annotations

import pytest
import torch

from lrgen import load_model
from lrgen.engine import stream
from lrgen.engine.graphs import GraphedStream
from lrgen.tokenizer import reverse_complement_ids

from helpers import random_ids

TOL = 1e-4


def test_cpu_models_stream_plainly():
    """On a CPU model nothing is captured: each call is a plain streamed pass with the options given (conjoined
    hidden states here), equal to the whole-sequence forward, in a tensor of its own (a GPU replay would overwrite
    the previous call's output)."""
    torch.manual_seed(0)
    model = load_model("caduceus-ph-tiny").eval()
    graphed = GraphedStream(model, chunk_size=16, output="hidden", conjoin=True)
    assert not graphed.enabled
    outputs = []
    for seed in range(3):
        ids = random_ids(2, 50, seed)
        got = graphed(ids)
        with torch.no_grad():
            want = (model.embed(ids) + model.embed(reverse_complement_ids(ids)).flip(1)) / 2
        assert got.shape == (2, 50, model.hidden_size) and (got - want).abs().max().item() <= TOL, seed
        outputs.append((got, got.clone()))
    assert graphed._seen is None and graphed._graph is None  # no warm-up pass, no graph
    assert all(torch.equal(got, kept) for got, kept in outputs)  # no call wrote into an earlier call's output


def test_recording_and_offload_are_refused():
    model = load_model("caduceus-ph-tiny")
    for option in ({"record_every": 8}, {"offload": True}):
        with pytest.raises(TypeError, match="does not take"):
            GraphedStream(model, **option)


@pytest.mark.gpu
@pytest.mark.parametrize("name, output, conjoin", [("caduceus-ps-tiny", "logits", False),
                                                   ("caduceus-ph-tiny", "hidden", True),
                                                   ("hawk-tiny", "logits", False)])
def test_replays_equal_plain_streaming_on_gpu(name, output, conjoin):
    torch.manual_seed(0)
    model = load_model(name).cuda().eval()
    options = dict(chunk_size=100, output=output, conjoin=conjoin, dtype=torch.bfloat16)
    graphed = GraphedStream(model, **options)
    # warm-up, capture, replays with new inputs, a new shape (dropped graph), back to the first shape
    calls = [(2, 1000, 0), (2, 1000, 1), (2, 1000, 2), (2, 1000, 3), (1, 777, 4), (2, 1000, 5), (2, 1000, 6),
             (2, 1000, 7)]
    buffers = []
    for batch, length, seed in calls:
        ids = random_ids(batch, length, seed).cuda()
        got = graphed(ids)
        want = stream(model, ids, **options)
        assert got.shape == want.shape and torch.equal(got, want), (batch, length, seed)
        buffers.append(got.data_ptr())
        del got
    assert graphed.enabled and graphed._graph is not None
    assert buffers[1] == buffers[2] == buffers[3] and buffers[6] == buffers[7]  # replays write one buffer
