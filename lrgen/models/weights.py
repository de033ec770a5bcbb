"""Reading a checkpoint's weights: ``model.safetensors``, ``pytorch_model.bin`` or their sharded forms.

Files are looked for in this order: ``model.safetensors``, ``model.safetensors.index.json``, ``pytorch_model.bin``,
``pytorch_model.bin.index.json`` (an index's ``weight_map`` names the shard file of every tensor). ``.bin`` files
are read with ``torch.load(weights_only=True)`` only: a pickle that needs anything but tensors and containers is
refused, never executed. :func:`load_state` puts tensors into a model: every name of a tied group is filled from
whichever one the file holds, and missing or unexpected names are an error naming the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from lrgen.errors import LrgenError

SAFETENSORS_NAME = "model.safetensors"
BIN_NAME = "pytorch_model.bin"
WEIGHT_FILES = (SAFETENSORS_NAME, f"{SAFETENSORS_NAME}.index.json", BIN_NAME, f"{BIN_NAME}.index.json")
# the weight files as hub download patterns (shards included)
SAFETENSORS_PATTERNS = ("model*.safetensors", f"{SAFETENSORS_NAME}.index.json")
BIN_PATTERNS = ("pytorch_model*.bin", f"{BIN_NAME}.index.json")


def weights_file(directory: str | Path) -> Path | None:
    """The first of :data:`WEIGHT_FILES` present in ``directory``, or None."""
    return next((p for name in WEIGHT_FILES if (p := Path(directory) / name).is_file()), None)


def read_state_dict(directory: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The tensors stored in ``directory`` (CPU) and the file they were read from (an index for shards)."""
    path = weights_file(directory)
    if path is None:
        raise LrgenError(f"{Path(directory) / SAFETENSORS_NAME}: missing, and no {BIN_NAME} or *.index.json beside "
                         "it; lrgen reads safetensors and weights-only .bin files")
    if not path.name.endswith(".index.json"):
        return _read_file(path), path
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise LrgenError(f"{path}: not a sharded-checkpoint index ({err})") from None
    tensors: dict[str, torch.Tensor] = {}
    for shard in shards:
        if not isinstance(shard, str) or Path(shard).name != shard:
            raise LrgenError(f"{path}: shard {shard!r} is not a file name in the same folder")
        shard_path = path.parent / shard
        if not shard_path.is_file():
            raise LrgenError(f"{shard_path}: missing (named by {path.name})")
        tensors.update(_read_file(shard_path))
    absent = sorted(set(weight_map) - set(tensors))
    if absent:
        raise LrgenError(f"{path}: {len(absent)} tensors are not in their shards, e.g. {absent[0]!r}")
    return tensors, path


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise LrgenError(f"{path}: cannot read ({err})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a refused pickle: UnpicklingError; a truncated or foreign file: RuntimeError, ...
        if type(err).__name__ != "UnpicklingError":
            raise LrgenError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
        found = re.search(r"Unsupported [^\n]*?(?= was not|\.|\n|$)", str(err))
        reason = found[0] if found else "unpickling failed"
        raise LrgenError(f"{path}: refused: not loadable as weights only ({reason}); lrgen reads .bin files with "
                         "torch.load(weights_only=True) and never runs pickled code") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LrgenError(f"{path}: not a state dict (a mapping of names to tensors)")
    return dict(state)


def write_safetensors(tensors: dict[str, torch.Tensor], path: str | Path,
                      metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` as a safetensors file with the mode a plain ``open`` gives under the umask (safetensors'
    own ``save_file`` makes every file 0600)."""
    from safetensors.torch import save

    with open(path, "wb") as fh:
        fh.write(save(tensors, metadata=metadata))


def tied_groups(model: nn.Module) -> list[list[str]]:
    """State-dict names grouped by the tensor object they refer to, in state-dict order."""
    groups: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(name)
    return list(groups.values())


def load_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path,
               rebuilt: tuple[str, ...] = ("complement_map",)) -> None:
    """Load ``tensors`` into ``model`` (built from the same config), re-tying tied tensors. Names ending in one of
    ``rebuilt`` may be absent (the model builds them from its config); any other absent or unexpected name, or a
    shape that does not fit, is an error naming ``source``."""
    tensors = dict(tensors)
    for group in tied_groups(model):
        present = [name for name in group if name in tensors]
        for name in group:
            if present and name not in tensors:
                tensors[name] = tensors[present[0]]
    expected = set(model.state_dict())
    unexpected = sorted(set(tensors) - expected)
    missing = sorted(k for k in expected - set(tensors) if not k.endswith(rebuilt))
    if unexpected or missing:
        raise LrgenError(
            f"{source}: weights do not match config.json: missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    try:
        model.load_state_dict(tensors, strict=False)
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err))
        raise LrgenError(f"{source}: weights do not match config.json: {first}") from None
