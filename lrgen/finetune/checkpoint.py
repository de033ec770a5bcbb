"""Fine-tuned models on disk: the backbone's ``config.json`` + ``model.safetensors`` (the lrgen checkpoint layout,
so ``lrgen.load_model(DIR)`` still loads the backbone), plus ``head.safetensors`` and ``task.json``.

Every file is written to a temporary name in the folder and renamed into place; ``task.json`` goes last.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from lrgen.errors import LrgenError
from lrgen.glrb.heads import GlrbModel, HeadSpec

HEAD_FILE = "head.safetensors"
TASK_FILE = "task.json"


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def is_finetuned(path: str | os.PathLike) -> bool:
    return (Path(path) / TASK_FILE).is_file()


def save_finetuned(model: GlrbModel, out_dir: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write backbone, head and task metadata (``extra`` is added to ``task.json``) into ``out_dir``."""
    from safetensors.torch import save_file

    from lrgen.models.checkpoint import save_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".save-") as tmp:
        staged = save_model(model.backbone, Path(tmp) / "model")
        state = {k: v.detach().contiguous().cpu() for k, v in model.head.state_dict().items()}
        save_file(state, str(staged / HEAD_FILE))
        for name in sorted(os.listdir(staged)):
            os.replace(staged / name, out / name)
    meta = {"format": "lrgen-finetuned", "head": model.spec.to_dict(), **(extra or {})}
    atomic_write_text(out / TASK_FILE, json.dumps(meta, indent=2) + "\n")
    return out


def read_task_json(path: str | os.PathLike) -> dict:
    file = Path(path) / TASK_FILE
    try:
        meta = json.loads(file.read_text())
        HeadSpec.from_dict(meta["head"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LrgenError(f"{file}: not a readable lrgen fine-tuned model description ({exc})") from exc
    return meta


def load_finetuned(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[GlrbModel, dict]:
    """The :class:`GlrbModel` saved in ``path`` and its ``task.json``."""
    from safetensors.torch import load_file

    import lrgen

    path = Path(path)
    meta = read_task_json(path)
    spec = HeadSpec.from_dict(meta["head"])
    model = GlrbModel(lrgen.load_model(str(path)), spec)
    head_file = path / HEAD_FILE
    if not head_file.is_file():
        raise LrgenError(f"{head_file} not found: {path} is an incomplete fine-tuned model")
    missing, unexpected = model.head.load_state_dict(load_file(str(head_file)), strict=False)
    if missing or unexpected:
        raise LrgenError(f"{head_file}: head weights do not match {TASK_FILE} (missing {missing}, unexpected {unexpected})")
    return model.to(device), meta

