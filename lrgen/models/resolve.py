"""The one resolver of ``--model``: what the user typed becomes a model, its family, tokenizer and capabilities.

A name is, in this order: an existing folder (an lrgen checkpoint or run folder, a folder written by
``lrgen finetune``, or a hub snapshot), a bundled trained model (``lrgen/data/models/<name>``), a preset (the
architecture only, freshly initialised: random weights), or a Hugging Face hub id. Every job asks
:func:`resolve_model` and checks what it needs with :meth:`ResolvedModel.require`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lrgen.errors import LrgenError
from lrgen.models import registry
from lrgen.models.base import LanguageModel
from lrgen.models.checkpoint import resolve_checkpoint
from lrgen.models.finetuned import FinetunedModel, is_finetuned, load_finetuned

#: capability -> what a model must be to have it (the end of the one-line refusal)
CAPABILITIES = {
    "streamable": "streams through the chunk-state engine (Caduceus or Hawk; attention has no chunk state)",
    "per_base": "reads one token per base (Caduceus or Hawk; NTv2 reads 6-mer tokens)",
    "head": "has a fine-tuned head (a folder written by lrgen finetune)",
    "track_head": "has a head that writes tracks: per bin (lrgen finetune --task tracks, cage_prediction) or per "
                  "window (--task regions, a regulatory-element or chromatin task)",
}


@dataclass
class ResolvedModel:
    """A model as :func:`resolve_model` found it: the backbone, the fine-tuned model around it (if any), a label
    for messages and outputs, where it came from (``folder``, ``finetuned``, ``bundled``, ``preset``, ``hub`` or
    ``object``) and the checkpoint folder it was read from (None for presets and objects)."""

    model: LanguageModel
    label: str
    source: str
    finetuned: FinetunedModel | None = None
    directory: Path | None = None

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def trained(self) -> bool:
        """False for a preset: the architecture with random weights."""
        return self.source != "preset"

    @property
    def warning(self) -> str | None:
        """What to tell a user of a preset's outputs (None for a trained model)."""
        if self.trained:
            return None
        return (f"model {self.label!r} is a preset: the architecture only, with random weights, so its outputs carry "
                "no signal; pass a trained model (lrgen info --models lists the bundled ones)")

    @property
    def description(self) -> str:
        """One line for output headers: label, family and, for presets, that the weights are random."""
        weights = "" if self.trained else ", architecture only, random weights"
        return f"{self.label} ({self.family}{weights})"

    def has(self, capability: str) -> bool:
        if capability == "streamable":
            return bool(self.model.streamable)
        if capability == "per_base":
            return self.model.tokenizer.per_base
        if capability == "head":
            return self.finetuned is not None
        if capability == "track_head":
            return self.finetuned is not None and self.finetuned.spec.pooling in ("bins", "centre")
        raise ValueError(f"unknown capability {capability!r}")

    def require(self, *capabilities: str, command: str) -> ResolvedModel:
        """Raise one line naming the first missing capability and what ``command`` needs instead."""
        for capability in capabilities:
            if not self.has(capability):
                trained = f", fine-tuned on {self.finetuned.spec.task}" if self.finetuned is not None else ""
                raise LrgenError(f"{command}: model {self.label!r} ({self.family}{trained}) cannot be used here: "
                                 f"it needs a model that {CAPABILITIES[capability]}")
        return self

    def to(self, device: torch.device | str) -> ResolvedModel:
        """Move the model (and its head) to ``device`` in eval mode."""
        (self.finetuned if self.finetuned is not None else self.model).to(device).eval()
        return self


def resolve_model(model: str | os.PathLike | nn.Module, *, seed: int | None = None) -> ResolvedModel:
    """Resolve ``model`` (see the module docstring); a loaded model or fine-tuned model is passed through.

    ``seed`` initialises a preset (default: the presets' fixed seed, so every run of a preset is the same model).
    """
    if isinstance(model, FinetunedModel):
        return ResolvedModel(model.backbone, f"a model fine-tuned on {model.spec.task}", "object", model)
    if isinstance(model, nn.Module):
        return ResolvedModel(model, getattr(model, "family", type(model).__name__), "object")
    name = str(model)
    path = Path(name).expanduser()
    if path.exists():
        directory = resolve_checkpoint(path)
        backbone = registry.load_checkpoint(directory)
        if path.is_dir() and is_finetuned(path):
            finetuned, _ = load_finetuned(path, backbone)
            return ResolvedModel(backbone, name, "finetuned", finetuned, directory)
        return ResolvedModel(backbone, name, "folder", directory=directory)
    bundled = registry.bundled_models()
    if name in bundled:
        return ResolvedModel(registry.load_checkpoint(bundled[name]), name, "bundled", directory=bundled[name])
    config = registry.preset_config(name)
    if config is not None:
        built = registry.build_model(config) if seed is None else registry.build_model(config, seed=seed)
        return ResolvedModel(built, name, "preset")
    if registry.is_repo_id(name):
        directory = registry.download(name)
        return ResolvedModel(registry.load_checkpoint(directory), name, "hub", directory=directory)
    raise LrgenError(f"unknown model {name!r}: not a folder, a bundled model ({', '.join(bundled) or 'none'}), a "
                     f"preset ({', '.join(registry.preset_names())}) or a hub id (owner/name)")


def load_model(name_or_path: str | os.PathLike, device: torch.device | str | None = None,
               dtype: torch.dtype | None = None) -> LanguageModel:
    """The backbone named by ``name_or_path`` (see :func:`resolve_model`) in eval mode, on ``device`` in ``dtype``."""
    model = resolve_model(name_or_path).model
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model.eval()
