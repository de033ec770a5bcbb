"""lrgen: state-space DNA language models for long-range genomics."""

from __future__ import annotations

from lrgen.version import __version__

__all__ = ["__version__", "load_model"]


def load_model(name_or_path: str, **kwargs):
    """Load a model by bundled name, preset, local folder or hub repo id (see :mod:`lrgen.models.resolve`)."""
    from lrgen.models.resolve import load_model as _load

    return _load(name_or_path, **kwargs)
