"""The version of lrgen (one place; the package face and ``lrgen info`` read it here)."""

__version__ = "0.1.0"
