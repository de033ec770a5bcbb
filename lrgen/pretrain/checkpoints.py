"""Run-directory checkpoints: ``checkpoints/<name>/{config.json, model.safetensors, training_state.pt}`` + ``latest``.

A checkpoint is written into a temporary folder beside its final place, renamed into place, and only then is
``checkpoints/latest`` replaced (atomically) by the new name, so an interrupted write never leaves a half checkpoint
that ``latest`` points to. ``lrgen.load_model(RUN_DIR)`` loads the model of ``latest``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from lrgen.errors import LrgenError

STATE_NAME = "training_state.pt"
LATEST = "latest"
BEST = "best"


def step_name(step: int) -> str:
    return f"step-{step:07d}"


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint folder that ``checkpoints/latest`` names, or ``None`` for a run without checkpoints."""
    pointer = checkpoints_dir(run_dir) / LATEST
    if not pointer.is_file():
        return None
    path = checkpoints_dir(run_dir) / pointer.read_text().strip()
    if not path.is_dir():
        raise LrgenError(f"{pointer} names {path.name!r}, which does not exist: the run directory is damaged")
    return path


def _write_pointer(run_dir: Path, name: str) -> None:
    pointer = checkpoints_dir(run_dir) / LATEST
    tmp = pointer.with_name(f".{LATEST}.tmp{os.getpid()}")
    tmp.write_text(name + "\n")
    os.replace(tmp, pointer)


def save_checkpoint(run_dir: str | Path, name: str, model: torch.nn.Module, state: dict[str, Any] | None,
                    *, update_latest: bool = True) -> Path:
    """Write ``model`` (lrgen checkpoint layout) and ``state`` as checkpoint ``name``, replacing one of that name."""
    from lrgen.models.checkpoint import save_model

    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    tmp = root / f".{name}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model(model, tmp)
    if state is not None:
        torch.save(state, tmp / STATE_NAME)
    if final.exists():
        old = root / f".{name}.old{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    if update_latest:
        _write_pointer(Path(run_dir), name)
    return final


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / STATE_NAME
    if not path.is_file():
        raise LrgenError(f"{checkpoint} has no {STATE_NAME}: it cannot be resumed (it may be an exported model)")
    return torch.load(path, map_location="cpu", weights_only=True)


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (never ``best`` nor the one ``latest`` names)."""
    root = checkpoints_dir(run_dir)
    latest = latest_checkpoint(run_dir)
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for path in steps[:-keep]:
        if latest is None or path.name != latest.name:
            shutil.rmtree(path)
