"""Facts about the running environment, for ``lrgen info`` and run metadata."""

from __future__ import annotations

import importlib.metadata
import platform

import torch

from lrgen.version import __version__
from lrgen.ops.backend import available_backends, select_backend

_PACKAGES = ("torch", "numpy", "pysam", "pyfaidx", "pyBigWig", "safetensors", "huggingface-hub", "triton", "mamba-ssm")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe_environment() -> dict:
    """Versions, device and backend availability as plain data; ``active_backend`` names the selective scan's
    backend for GPU tensors, and for CPU tensors in parentheses (``LRGEN_BACKEND`` honoured)."""
    versions = {"lrgen": __version__, "python": platform.python_version()}
    versions.update({p: _version(p) for p in _PACKAGES})
    on_cpu = f"CPU tensors: {select_backend('cpu')}"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        device = f"cuda ({torch.cuda.device_count()}× {props.name}, {props.total_memory / 2**30:.0f} GiB)"
        active = f"{select_backend('cuda')} ({on_cpu})"
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
        active = f"none, no GPU ({on_cpu})"
    return {"versions": versions, "device": device, "backends": available_backends(), "active_backend": active}
