"""Checkpoint directories: ``config.json`` + ``model.safetensors`` (+ optional ``training_state.pt``).

The layout is Hugging Face's, so official Caduceus checkpoints load and lrgen's load elsewhere. Tensors shared by
several parameter names (tied weights) are stored once, under the first name; on load every name of a tied group
is filled from whichever one the file holds, so files that store a tied tensor under any of its names load
(:mod:`lrgen.models.weights`; the other layouts lrgen reads are in :mod:`lrgen.models.layouts`). A model whose
tokenizer is not its family's default (one read from a checkpoint) gets its tokenizer file written beside.

Run directories (written by ``lrgen pretrain`` / ``finetune``) hold ``checkpoints/<name>/`` checkpoint directories
and a text file ``checkpoints/latest`` containing the name of the newest one; :func:`resolve_checkpoint` follows it,
so a run directory, its ``checkpoints/`` folder or a checkpoint directory itself can be passed wherever a model is.
Writes are atomic: into a temporary sibling, then renamed into place.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrgen.errors import LrgenError
from lrgen.models.weights import SAFETENSORS_NAME as WEIGHTS_NAME
from lrgen.models.weights import load_state, read_state_dict, tied_groups, write_safetensors
from lrgen.runtime.files import atomic_write_text, replace_dir, temporary_sibling

CONFIG_NAME = "config.json"
TRAINING_STATE_NAME = "training_state.pt"
LATEST_NAME = "latest"
CHECKPOINTS_DIR = "checkpoints"
RUN_CONFIG_NAME = "pretrain_config.json"  # lrgen pretrain's resolved settings, in the run directory


def save_model(model: nn.Module, directory: str | Path, training_state: dict[str, Any] | None = None, *,
               dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` (its ``config.to_dict()`` and weights) to ``directory``, replacing it atomically.

    ``dtype`` (e.g. ``torch.bfloat16``) stores the floating-point weights rounded to it, half the size of float32;
    loading casts them back into the model's float32 parameters.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(directory)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        state = model.state_dict()
        tensors = {group[0]: state[group[0]].detach().cpu().contiguous() for group in tied_groups(model)}
        if dtype is not None:
            tensors = {k: t.to(dtype) if t.is_floating_point() else t for k, t in tensors.items()}
        write_safetensors(tensors, tmp / WEIGHTS_NAME, metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is not None and tokenizer != model.default_tokenizer(model.config):
            tokenizer.save(tmp)
        if training_state is not None:
            torch.save(training_state, tmp / TRAINING_STATE_NAME)
        replace_dir(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def mark_latest(checkpoints_dir: str | Path, name: str) -> None:
    """Point ``checkpoints_dir/latest`` at the checkpoint ``checkpoints_dir/<name>`` (atomically)."""
    checkpoints_dir = Path(checkpoints_dir)
    if not (checkpoints_dir / name / CONFIG_NAME).is_file():
        raise LrgenError(f"{checkpoints_dir / name}: not a checkpoint directory (no {CONFIG_NAME})")
    atomic_write_text(checkpoints_dir / LATEST_NAME, name + "\n")


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory meant by ``path``: itself, or the one named by ``latest`` in it or its checkpoints/."""
    path = Path(path)
    if not path.is_dir():
        raise LrgenError(f"{path}: not a directory")
    if (path / CONFIG_NAME).is_file():
        return path
    for folder in (path, path / CHECKPOINTS_DIR):
        latest = folder / LATEST_NAME
        if latest.is_file():
            name = latest.read_text().strip()
            target = folder / name
            if not name or not (target / CONFIG_NAME).is_file():
                raise LrgenError(f"{latest}: names checkpoint {name!r}, but {target} has no {CONFIG_NAME}")
            return target
    raise LrgenError(f"{path}: no {CONFIG_NAME} and no {CHECKPOINTS_DIR}/{LATEST_NAME}; not a checkpoint or run directory")


def run_context(directory: str | Path | None) -> int | None:
    """The context (bp) ``lrgen pretrain`` trained the checkpoint in ``directory`` at (``RUN/checkpoints/NAME``: the
    ``context`` of ``RUN/pretrain_config.json``), or None for a checkpoint outside a run."""
    if directory is None:
        return None
    config = Path(directory).parent.parent / RUN_CONFIG_NAME
    return int(json.loads(config.read_text())["context"]) if config.is_file() else None


def read_config(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint directory."""
    path = Path(directory) / CONFIG_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LrgenError(f"{path}: missing") from None
    except json.JSONDecodeError as err:
        raise LrgenError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict) or not {"model_type", "architectures", "auto_map"} & set(data):
        raise LrgenError(f"{path}: no model_type, architectures or auto_map; expected a model config.json")
    return data


def load_weights(model: nn.Module, directory: str | Path) -> None:
    """Load the weights stored in ``directory`` (see :mod:`lrgen.models.weights`) into ``model``, built from the
    same config, re-tying tied tensors."""
    tensors, source = read_state_dict(directory)
    load_state(model, tensors, source)
