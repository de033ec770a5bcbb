"""FSDP2 sharding of a pretraining model over the torchrun processes, and gathering its full state on rank 0."""

from __future__ import annotations

import torch

from lrgen.errors import LrgenError
from lrgen.runtime.distributed import Processes


def check_fsdp(info: Processes) -> None:
    """Raise :class:`LrgenError` unless FSDP2 can shard the model: torchrun with 2+ processes and torch >= 2.6."""
    if not info.distributed:
        raise LrgenError("--fsdp shards the model over processes and needs torchrun with 2 or more of them, e.g. "
                         "torchrun --nproc-per-node 2 -m lrgen pretrain --fsdp ...; drop --fsdp for one process")
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError:
        raise LrgenError(f"--fsdp needs torch >= 2.6 (FSDP2, torch.distributed.fsdp.fully_shard); this is torch "
                         f"{torch.__version__}: upgrade torch or drop --fsdp") from None


def _blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The elements of the outermost ``ModuleList``s under ``module`` (the model's blocks/layers), in order."""
    found: list[torch.nn.Module] = []
    for child in module.children():
        found.extend(child if isinstance(child, torch.nn.ModuleList) else _blocks(child))
    return found


def wrap_fsdp(model: torch.nn.Module, info: Processes) -> torch.nn.Module:
    """Shard ``model`` in place with FSDP2 over all processes: each block, then the root (embedding, norm, head)."""
    check_fsdp(info)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(info.device.type, (info.world_size,))
    for block in _blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded weights of an FSDP model on CPU on rank 0 (empty elsewhere); every process must call it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full_options())


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The unsharded optimizer state (keyed by parameter name) on rank 0; every process must call it."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_full_options())


def load_full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a :func:`full_optimizer_state` (held whole by every process) into the sharded optimizer."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
