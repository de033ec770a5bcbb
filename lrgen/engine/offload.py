"""Offloading: whole-sequence activations in host memory, only scan chunks on the accelerator.

Under :class:`HostActivations` any torch operation that mixes devices (a CPU activation and a GPU parameter) runs
on the CPU with the parameters copied there, so the position-wise parts of a model (embedding, norms,
projections, gates) compute on host-resident tensors, while the streaming runner moves each scan chunk to the
model's device and its output back. The accelerator then holds the parameters and one chunk's working set.
An in-place operation writing a CPU value into an accelerator tensor cannot be redirected and is an error.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

_CPU = torch.device("cpu")
_IN_PLACE_DUNDERS = frozenset(
    f"__{op}__"
    for op in ("setitem", "iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "imatmul", "iand", "ior",
               "ixor", "ilshift", "irshift")
)


def _cpu_scalar(t: torch.Tensor) -> bool:
    """0-dim CPU tensors combine with tensors on any device; they do not make an operation mixed."""
    return t.dim() == 0 and t.device == _CPU


class HostActivations(TorchFunctionMode):
    """Run every mixed-device torch operation on the CPU (see the module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves, _ = tree_flatten((args, kwargs))
        devices = {t.device for t in leaves if isinstance(t, torch.Tensor) and not _cpu_scalar(t)}
        if len(devices) > 1:
            target = args[0] if args else None
            name = getattr(func, "__name__", "")
            in_place = name in _IN_PLACE_DUNDERS or (name.endswith("_") and not name.startswith("__"))
            if in_place and isinstance(target, torch.Tensor) and target.device != _CPU:
                raise RuntimeError(f"offload: in-place {name} on a {target.device} tensor from a CPU tensor")
            args, kwargs = tree_map(lambda t: t.to(_CPU) if isinstance(t, torch.Tensor) else t, (args, kwargs))
        return func(*args, **kwargs)
