"""lrgen: state-space DNA language models for long-range genomics."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def load_model(name_or_path: str, **kwargs):
    """Load a model by preset name, local checkpoint directory or hub repo id (see ``lrgen.models``)."""
    from lrgen.models.registry import load_model as _load

    return _load(name_or_path, **kwargs)
