"""Model families, presets, bundled models and checkpoint loading (the resolver of ``--model`` is :mod:`.resolve`).

Each family is a module ``lrgen.models.<family>`` defining ``FAMILY`` (its name, also the ``model_type`` of its
``config.json``), ``CONFIG_CLASS``, ``MODEL_CLASS``, ``PRESETS`` (name → config; names start with the family name
and a dash) and ``PRESET_DESCRIPTIONS`` (name → one line). Family modules are imported only when needed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from lrgen.errors import LrgenError
from lrgen.models.base import LanguageModel
from lrgen.models.families import FAMILIES, family_module
from lrgen.models.checkpoint import resolve_checkpoint
from lrgen.models.layouts import TOKENIZER_FILES, load_layout
from lrgen.models.weights import BIN_PATTERNS, SAFETENSORS_PATTERNS, weights_file

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "data" / "models"
PRESET_SEED = 0
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def preset_config(name: str):
    """The config of preset ``name``, or None when no family has it."""
    family = name.split("-", 1)[0]
    if family not in FAMILIES:
        return None
    return family_module(family).PRESETS.get(name)


def preset_names() -> list[str]:
    return [name for family in FAMILIES for name in family_module(family).PRESETS]


def bundled_models() -> dict[str, Path]:
    """Trained checkpoints shipped inside the package (``lrgen/data/models/<name>/``), by name."""
    if not BUNDLED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(BUNDLED_DIR.iterdir()) if (p / "config.json").is_file()}


def build_model(config: Any, seed: int = PRESET_SEED) -> LanguageModel:
    """A freshly initialised model of ``config`` (its family from ``config.model_type``), seeded: deterministic."""
    module = family_module(config.model_type)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return module.MODEL_CLASS(config)


def load_checkpoint(directory: str | Path) -> LanguageModel:
    """The model stored in a checkpoint or run directory, in any layout :mod:`lrgen.models.layouts` reads."""
    return load_layout(resolve_checkpoint(directory))


def is_repo_id(name: str) -> bool:
    """Whether ``name`` has the form of a Hugging Face hub id (``owner/name``)."""
    return bool(_REPO_ID.match(name))


def download(repo_id: str) -> Path:
    """The hub snapshot of ``repo_id`` with the files a checkpoint needs (config, tokenizer files, weights:
    safetensors, or ``.bin`` where the repository has no safetensors); from the cache when offline."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = ["config.json", *TOKENIZER_FILES]
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=[*patterns, *SAFETENSORS_PATTERNS]))
        if weights_file(path) is None:
            path = Path(snapshot_download(repo_id, allow_patterns=[*patterns, *BIN_PATTERNS]))
    except RepositoryNotFoundError:
        raise LrgenError(f"cannot download {repo_id}: no such repository on the Hugging Face hub") from None
    except (LocalEntryNotFoundError, OSError):
        raise LrgenError(
            f"cannot download {repo_id}: no network (or HF_HUB_OFFLINE=1) and it is not in the Hugging Face cache; "
            f"where there is network run `hf download {repo_id} --local-dir DIR` (`huggingface-cli download` before "
            "huggingface_hub 1.0), copy DIR here and pass it as the model"
        ) from None
    return path


def list_presets() -> list[dict[str, Any]]:
    """Every preset (an architecture, random weights) as ``{name, family, parameters, description}``; parameters
    counted on the meta device."""
    out = []
    for family in FAMILIES:
        module = family_module(family)
        for name, config in module.PRESETS.items():
            with torch.device("meta"):
                parameters = module.MODEL_CLASS(config).num_parameters()
            out.append(
                {"name": name, "family": family, "parameters": parameters, "description": module.PRESET_DESCRIPTIONS[name]}
            )
    return out


def list_bundled() -> list[dict[str, Any]]:
    """Every bundled trained model as ``{name, family, parameters, description}`` (the first line of its card)."""
    out = []
    for name, directory in bundled_models().items():
        model = load_checkpoint(directory)
        card = directory / "README.md"
        description = card.read_text().splitlines()[0].lstrip("# ") if card.is_file() else "bundled checkpoint"
        out.append({"name": name, "family": model.family, "parameters": model.num_parameters(),
                    "description": description})
    return out
