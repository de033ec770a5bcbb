"""Model families (Caduceus, Hawk, NTv2), presets, checkpoints, fine-tuned models and the resolver of ``--model``."""

from lrgen.models.base import LanguageModel
from lrgen.models.checkpoint import mark_latest, resolve_checkpoint, save_model
from lrgen.models.compiled import compile_position_wise
from lrgen.models.conjoin import conjoin
from lrgen.models.registry import FAMILIES, build_model, list_bundled, list_presets
from lrgen.models.resolve import ResolvedModel, load_model, resolve_model

__all__ = [
    "FAMILIES",
    "LanguageModel",
    "ResolvedModel",
    "build_model",
    "compile_position_wise",
    "conjoin",
    "list_bundled",
    "list_presets",
    "load_model",
    "mark_latest",
    "resolve_checkpoint",
    "resolve_model",
    "save_model",
]
