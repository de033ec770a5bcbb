"""The embed job: per-region embeddings of a BED file's regions (``lrgen embed``)."""

from lrgen.embed.regions import EmbedOptions, embed_regions

__all__ = ["EmbedOptions", "embed_regions"]
