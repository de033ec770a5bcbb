"""The one device resolver: what ``--device`` means in every command."""

from __future__ import annotations

import re

import torch

from lrgen.errors import LrgenError

_FORM = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` (or None): the process's GPU when CUDA is available, else the CPU; ``cuda``: GPU ``local_rank`` (the
    torchrun process's own); ``cuda:N``: that GPU; ``cpu``. Anything else, or a GPU this machine lacks, is a one-line
    :class:`LrgenError`."""
    if isinstance(device, torch.device):
        device = str(device)
    text = (device or "auto").strip().lower()
    match = _FORM.match(text)
    if match is None or (match.group(1) != "cuda" and match.group(2) is not None):
        raise LrgenError(f"--device {device!r} is not a device: use auto, cpu, cuda or cuda:N")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise LrgenError(f"--device {device}: no CUDA GPU is available on this machine; use --device cpu")
    gpu = int(index) if index is not None else local_rank
    if gpu >= torch.cuda.device_count():
        raise LrgenError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), no cuda:{gpu}")
    return torch.device("cuda", gpu)


def autocast(device: torch.device, dtype: torch.dtype | None = torch.bfloat16):
    """Autocast to ``dtype`` on a GPU; nothing on the CPU or for ``dtype`` None."""
    from contextlib import nullcontext

    if device.type != "cuda" or dtype is None:
        return nullcontext()
    return torch.autocast("cuda", dtype=dtype)


_DTYPES = {"float32": None, "fp32": None, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def parse_dtype(text: str | None) -> torch.dtype | None:
    """``--dtype``: ``float32`` (None: no autocast), ``bfloat16`` or ``float16`` (``fp32``/``bf16``/``fp16`` too)."""
    key = (text or "float32").strip().lower()
    if key not in _DTYPES:
        raise LrgenError(f"--dtype {text!r}: use float32, bfloat16 or float16")
    return _DTYPES[key]
