"""CUDA-graph replay of streamed passes that repeat one input shape (predict's windows, benchmarks).

A streamed pass launches thousands of small kernels, and at chunk sizes that fit in little memory the host's
Python and launch work, not the GPU, sets its speed (docs/benchmarks.md). :class:`GraphedStream` runs the first
pass of a shape normally on a side stream (which also compiles the Triton kernels and sets up cuBLAS), captures
the second in a CUDA graph, and from then on copies the input into the graph's buffer and replays it: the same
kernels in the same order, so the same numbers, with no host work per kernel.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from lrgen.engine.stream import stream


@lru_cache(maxsize=None)
def _side_stream(device: int) -> torch.cuda.Stream:
    """One warm-up stream per GPU and process (each new stream would get its own cuBLAS workspace)."""
    return torch.cuda.Stream(device)


class GraphedStream:
    """``stream(model, ids, **options)`` for repeated calls, replayed from a CUDA graph when the shape repeats.

    The tensor returned by a replay is the graph's output buffer: the next call overwrites it (copy it to keep
    it). One shape is held at a time; a new shape drops the previous graph and its memory. On a CPU model, or if
    capture fails (then with a warning), every call is a plain ``stream``. The model's parameters must stay the
    same tensors (values may change) while graphs are held. ``record_every`` and ``offload`` are not accepted.
    """

    def __init__(self, model, **options: Any) -> None:
        unsupported = {"record_every", "offload"} & set(options)
        if unsupported:
            raise TypeError(f"GraphedStream does not take {', '.join(sorted(unsupported))}")
        self.model = model
        self.options = options
        self.enabled = model.device.type == "cuda"
        self._seen: tuple | None = None  # the shape of the last pass run without a graph
        self._graph: tuple[tuple, torch.cuda.CUDAGraph, Tensor, Tensor] | None = None  # shape, graph, ids, output

    def __call__(self, input_ids: Tensor) -> Tensor:
        if not self.enabled:
            return stream(self.model, input_ids, **self.options)
        device = self.model.device
        ids = input_ids.to(device=device, dtype=torch.long)
        key = tuple(ids.shape)
        if self._graph is not None and self._graph[0] == key:
            _, graph, static_ids, out = self._graph
            static_ids.copy_(ids)
            graph.replay()
            return out
        self._graph = None
        with torch.cuda.device(device):
            if self._seen != key:
                self._seen = key
                return self._warm_up(ids)
            return self._capture(ids, key)

    def _warm_up(self, ids: Tensor) -> Tensor:
        """A plain pass on a side stream, as CUDA-graph capture wants before it."""
        main, side = torch.cuda.current_stream(), _side_stream(torch.cuda.current_device())
        side.wait_stream(main)
        with torch.cuda.stream(side):
            out = stream(self.model, ids, **self.options)
        main.wait_stream(side)
        out.record_stream(main)
        return out

    def _capture(self, ids: Tensor, key: tuple) -> Tensor:
        static_ids = ids.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out = stream(self.model, static_ids, **self.options)
        except RuntimeError as err:
            self.enabled = False
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            warnings.warn(f"CUDA-graph capture of the streamed pass failed ({first_line}); running without graphs",
                          RuntimeWarning, stacklevel=3)
            return stream(self.model, ids, **self.options)
        self._graph = (key, graph, static_ids, out)
        graph.replay()
        return out
