"""Which implementation runs the sequence-mixing kernels: ``reference`` (PyTorch), ``cpu`` (PyTorch, laid out for a
CPU), ``triton`` or ``mamba`` (mamba-ssm).

The choice is made per call from the tensor's device: on a GPU mamba-ssm's CUDA kernels when installed, else
Triton, else the reference; on a CPU the ``cpu`` fast path. ``LRGEN_BACKEND=reference|cpu|triton|mamba`` forces
one; a GPU backend forced for CPU tensors leaves them to the CPU default.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

import torch

from lrgen.errors import LrgenError

BACKENDS = ("reference", "cpu", "triton", "mamba")
GPU_BACKENDS = ("triton", "mamba")


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
    status = {"reference": "available", "cpu": "available"}
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
    if forced is not None and not (forced in GPU_BACKENDS and device.type != "cuda"):
        status = available_backends()
        if status[forced] != "available":
            raise LrgenError(f"LRGEN_BACKEND={forced} but {status[forced]}")
        return forced if forced in implemented else "reference"
    if device.type == "cuda":
        status = available_backends()
        for name in ("mamba", "triton"):
            if name in implemented and status[name] == "available":
                return name
        return "reference"
    return "cpu" if "cpu" in implemented else "reference"
