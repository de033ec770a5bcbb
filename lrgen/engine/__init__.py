"""Streaming chunk-state inference: the only place in lrgen that knows about chunks (docs/engine.md)."""

from lrgen.engine.record import StateRecord
from lrgen.engine.stream import ChunkRunner, PassRouter, restream_span, stream

__all__ = ["ChunkRunner", "PassRouter", "StateRecord", "restream_span", "stream"]
