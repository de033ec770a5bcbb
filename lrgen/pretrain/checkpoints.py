"""Run-directory checkpoints: ``checkpoints/<name>/{config.json, model.safetensors, training_state.pt}`` + ``latest``.

A checkpoint is written into a temporary folder beside its final place and renamed into place
(:func:`lrgen.models.checkpoint.save_model`); only then is ``checkpoints/latest`` replaced atomically by the new name,
so an interrupted write never leaves a half checkpoint that ``latest`` points to. ``lrgen.load_model(RUN_DIR)``
loads the model of ``latest``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from lrgen.errors import LrgenError
from lrgen.models.checkpoint import CHECKPOINTS_DIR, LATEST_NAME, TRAINING_STATE_NAME, mark_latest, save_model

BEST = "best"


def step_name(step: int) -> str:
    return f"step-{step:07d}"


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint folder that ``checkpoints/latest`` names, or ``None`` for a run without checkpoints."""
    pointer = checkpoints_dir(run_dir) / LATEST_NAME
    if not pointer.is_file():
        return None
    path = checkpoints_dir(run_dir) / pointer.read_text().strip()
    if not path.is_dir():
        raise LrgenError(f"{pointer} names {path.name!r}, which does not exist: the run directory is damaged")
    return path


def save_checkpoint(run_dir: str | Path, name: str, model: torch.nn.Module, state: dict[str, Any] | None,
                    *, update_latest: bool = True) -> Path:
    """Write ``model`` and ``state`` as checkpoint ``name`` (replacing one of that name), then point ``latest`` at it."""
    root = checkpoints_dir(run_dir)
    path = save_model(model, root / name, training_state=state)
    if update_latest:
        mark_latest(root, name)
    return path


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    """The optimizer, schedule, sampler and RNG state saved with ``checkpoint`` (tensors and plain containers, read
    with ``weights_only=True``: nothing in the file is run)."""
    path = checkpoint / TRAINING_STATE_NAME
    if not path.is_file():
        raise LrgenError(f"{checkpoint} has no {TRAINING_STATE_NAME}: it cannot be resumed (it may be an exported model)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling raises many types; none is shown as a traceback
        run = checkpoint.parent.parent
        raise LrgenError(f"{path}: not a readable training state ({type(err).__name__}); point "
                         f"{checkpoint.parent / LATEST_NAME} at an earlier checkpoint, or start over "
                         f"(rm -r {run})") from None


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (never ``best`` nor the one ``latest`` names)."""
    latest = latest_checkpoint(run_dir)
    steps = sorted(p for p in checkpoints_dir(run_dir).glob("step-*") if p.is_dir())
    for path in steps[:-keep]:
        if latest is None or path.name != latest.name:
            shutil.rmtree(path)
