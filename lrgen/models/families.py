"""The model families and their modules (``lrgen.models.<family>``), imported on first use."""

from __future__ import annotations

import importlib
from types import ModuleType

from lrgen.errors import LrgenError

FAMILIES = ("caduceus", "hawk", "ntv2")


def family_module(family: str) -> ModuleType:
    """The module of ``family``, imported on first use."""
    if family not in FAMILIES:
        raise LrgenError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    name = f"lrgen.models.{family}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name == name:
            raise LrgenError(f"model family {family!r} is not available: module {name} is missing") from None
        raise LrgenError(f"model family {family!r} cannot be imported: {err}") from None
