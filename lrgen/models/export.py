"""``lrgen export``: a Caduceus model (pretrained, or the backbone of a fine-tuned folder) written in the official
Caduceus hub layout by :func:`lrgen.models.layouts.export_caduceus_hub`."""

from __future__ import annotations

from pathlib import Path

from lrgen.errors import LrgenError
from lrgen.models.layouts import export_caduceus_hub
from lrgen.models.resolve import ResolvedModel, resolve_model


def export_model(model: str, output: str | Path) -> ResolvedModel:
    """Resolve ``model`` as ``--model`` and write its backbone to the new folder ``output`` (atomically: a temporary
    sibling renamed into place); returns what was resolved."""
    output = Path(output)
    if output.exists() and not (output.is_dir() and not any(output.iterdir())):
        raise LrgenError(f"export: {output} exists: choose a new folder (nothing is overwritten)")
    resolved = resolve_model(model)
    if resolved.family != "caduceus":
        raise LrgenError(f"export: model {resolved.label!r} is a {resolved.family} model; lrgen export writes Caduceus "
                         "models in the official Caduceus hub layout")
    export_caduceus_hub(resolved.model, output)
    return resolved
