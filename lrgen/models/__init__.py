"""Model families (Caduceus, Hawk, NTv2), presets, checkpoints and post-hoc conjoining."""

from lrgen.models.base import LanguageModel
from lrgen.models.checkpoint import load_training_state, mark_latest, resolve_checkpoint, save_model
from lrgen.models.compiled import compile_position_wise
from lrgen.models.conjoin import conjoin
from lrgen.models.registry import FAMILIES, build_model, list_presets, load_model

__all__ = [
    "FAMILIES",
    "LanguageModel",
    "build_model",
    "compile_position_wise",
    "conjoin",
    "list_presets",
    "load_model",
    "load_training_state",
    "mark_latest",
    "resolve_checkpoint",
    "save_model",
]
