"""Which implementation runs the sequence-mixing kernels: ``reference`` (PyTorch), ``triton`` or ``mamba`` (mamba-ssm).

The choice is made per call from the tensor's device: mamba-ssm's CUDA kernels when installed, else Triton on a GPU,
else the PyTorch reference. ``LRGEN_BACKEND=reference|triton|mamba`` forces one.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

import torch

from lrgen.errors import LrgenError

BACKENDS = ("reference", "triton", "mamba")


@lru_cache(maxsize=None)
def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> dict[str, str]:
    """Each backend mapped to ``'available'`` or the reason it is not."""
    return dict(_status())


@lru_cache(maxsize=None)
def _status() -> tuple[tuple[str, str], ...]:
    """:func:`available_backends`, found once per process (asked on every kernel call)."""
    cuda = torch.cuda.is_available()
    status = {"reference": "available"}
    if not _installed("triton"):
        status["triton"] = "triton not installed"
    elif not cuda:
        status["triton"] = "no CUDA GPU"
    else:
        status["triton"] = "available"
    if not _installed("mamba_ssm"):
        status["mamba"] = "mamba-ssm not installed (pip install 'lrgen[mamba]')"
    elif not cuda:
        status["mamba"] = "no CUDA GPU"
    else:
        status["mamba"] = "available"
    return tuple(status.items())


def forced_backend() -> str | None:
    """The backend named by ``LRGEN_BACKEND``, validated; ``None`` when unset."""
    name = os.environ.get("LRGEN_BACKEND", "").strip().lower()
    if not name:
        return None
    if name not in BACKENDS:
        raise LrgenError(f"LRGEN_BACKEND={name!r} is not one of {', '.join(BACKENDS)}")
    return name


def select_backend(device: torch.device | str, implemented: tuple[str, ...] = BACKENDS) -> str:
    """The backend to use for a kernel that has the ``implemented`` backends, for tensors on ``device``."""
    device = torch.device(device)
    forced = forced_backend()
    status = available_backends()
    if forced is not None:
        if forced != "reference" and device.type != "cuda":
            return "reference"  # a GPU backend cannot run CPU tensors
        if status[forced] != "available":
            raise LrgenError(f"LRGEN_BACKEND={forced} but {status[forced]}")
        if forced not in implemented:
            return "reference"
        return forced
    if device.type == "cuda":
        for name in ("mamba", "triton"):
            if name in implemented and status[name] == "available":
                return name
    return "reference"
