"""The three models of the suite at one size class, their seeded initial weights and their 16-bit exports.

Caduceus-PS is the ``caduceus-ps-131k`` preset (d_model 256, 16 layers, 7.7M parameters). Hawk and NTv2 are sized
to match it: Hawk d_model 256 × 9 layers (7.4M; its head is tied to the embedding), NTv2 d_model 256 × 6 layers, 8
heads, SwiGLU 896 (7.8M, of which 2.1M are the 4,107-token embedding and head). ``--tiny`` uses the ``*-tiny``
presets instead (CPU smoke runs).

Trained weights are kept in bfloat16 (``save_model(dtype=...)``: 15 MB for 7.7M parameters) and every evaluation
reads them back from that export, so a warm work folder and a cold machine given the returned files evaluate the
same weights. For the outputs that come back from the GPU machine, a model is packed into one safetensors file whose
metadata holds its ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from lrgen.errors import LrgenError
from lrgen.models.checkpoint import CONFIG_NAME, save_model
from lrgen.models.registry import build_model, preset_config
from lrgen.models.weights import SAFETENSORS_NAME, write_safetensors
from lrgen.runtime.files import atomic_path, replace_dir, temporary_sibling

EXPORT_DTYPE = torch.bfloat16
#: suite name -> (preset, overrides of its config at the suite's size)
SIZES = {
    "caduceus-ps": ("caduceus-ps-131k", {}),
    "hawk": ("hawk-tiny", {"d_model": 256, "n_layers": 9, "n_heads": 8, "mlp_expansion": 3}),
    "ntv2": ("ntv2-tiny", {"d_model": 256, "n_layers": 6, "n_heads": 8, "mlp_hidden": 896}),
}
TINY = {"caduceus-ps": "caduceus-ps-tiny", "hawk": "hawk-tiny", "ntv2": "ntv2-tiny"}
#: the families whose models are RC-equivariant (trained without reverse-complement augmentation)
RC_EQUIVARIANT = {"caduceus-ps"}
#: score-vcf needs per-base, streamable models
SCORABLE = {"caduceus-ps", "hawk"}


def model_config(name: str, tiny: bool):
    """The architecture of suite model ``name``."""
    if tiny:
        return preset_config(TINY[name])
    preset, overrides = SIZES[name]
    return dataclasses.replace(preset_config(preset), **overrides)


def initial_checkpoint(name: str, tiny: bool, seed: int, path: Path) -> Path:
    """The model initialised with ``seed`` (the untrained control, and where training starts), saved at ``path``
    unless it is already there (building is deterministic)."""
    if not (path / CONFIG_NAME).is_file():
        save_model(build_model(model_config(name, tiny), seed=seed), path)
    return path


def export(checkpoint: Path, path: Path) -> Path:
    """The model of ``checkpoint`` saved at ``path`` with bfloat16 weights."""
    from lrgen.models.registry import load_checkpoint

    return save_model(load_checkpoint(checkpoint), path, dtype=EXPORT_DTYPE)


def pack(model_dir: Path, path: Path) -> None:
    """One safetensors file with the weights of ``model_dir`` and its ``config.json`` as metadata ``config``."""
    from safetensors.torch import load_file

    tensors = load_file(str(model_dir / SAFETENSORS_NAME))
    config = (model_dir / CONFIG_NAME).read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write_safetensors(tensors, tmp, metadata={"format": "pt", "config": config})


def unpack(path: Path, model_dir: Path) -> Path:
    """A checkpoint folder (``config.json`` + ``model.safetensors``) from a file written by :func:`pack`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), "pt") as fh:
            config = (fh.metadata() or {}).get("config")
        tensors = load_file(str(path))
    except Exception as err:  # safetensors' own error types for damaged files
        raise LrgenError(f"{path}: cannot read ({err})") from None
    if config is None:
        raise LrgenError(f"{path}: no config in its metadata; not a model packed by the suite")
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(model_dir)
    tmp.mkdir()
    (tmp / CONFIG_NAME).write_text(json.dumps(json.loads(config), indent=2) + "\n")
    write_safetensors(tensors, tmp / SAFETENSORS_NAME, metadata={"format": "pt"})
    replace_dir(tmp, model_dir)
    return model_dir
