"""Streaming chunk-state inference: the only place in lrgen that knows about chunks (docs/engine.md)."""

from lrgen.engine.record import StateRecord
from lrgen.engine.stream import ChunkRunner, conjoin_outputs, restream_span, stream

__all__ = ["ChunkRunner", "StateRecord", "conjoin_outputs", "restream_span", "stream"]
