"""CUDA-graph replay of streamed passes (lrgen.engine.graphs) against plain streaming."""

from __future__ import annotations

import pytest
import torch

from lrgen import load_model
from lrgen.engine import stream
from lrgen.engine.graphs import GraphedStream

from helpers import random_ids


def test_cpu_models_stream_plainly():
    torch.manual_seed(0)
    model = load_model("caduceus-ps-tiny").eval()
    graphed = GraphedStream(model, chunk_size=16, output="hidden")
    assert not graphed.enabled
    for seed in range(3):
        ids = random_ids(2, 50, seed)
        assert torch.equal(graphed(ids), stream(model, ids, chunk_size=16, output="hidden"))


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
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
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
