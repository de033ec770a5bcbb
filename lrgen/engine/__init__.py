"""Streaming chunk-state inference: the only place in lrgen that knows about chunks (docs/engine.md)."""

from lrgen.engine.chunks import default_chunk_size
from lrgen.engine.record import StateRecord
from lrgen.engine.restart import Edit, EditOutput, restream_edits
from lrgen.engine.stream import ChunkRunner, PassRouter, forward, restream_span, stream

__all__ = ["ChunkRunner", "Edit", "EditOutput", "PassRouter", "StateRecord", "default_chunk_size", "forward",
           "restream_edits", "restream_span", "stream"]
