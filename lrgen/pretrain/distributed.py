"""torch.distributed helpers for ``torchrun``: initialise from the environment, pick the device, reduce, rank-0 writing.

Outside ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything degrades to one process with no process group.
Under ``torchrun`` the backend is NCCL when the process has a CUDA device, gloo otherwise; each process uses
``cuda:LOCAL_RANK``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lrgen.errors import LrgenError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the one process that writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; ``cuda`` gets the local rank's GPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LrgenError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
    return dev


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group described by torchrun's environment variables (a no-op for a single process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place (identity for one process)."""
    if info.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every process (e.g. a decision only rank 0 can make); ``obj`` itself for one process."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup(info: DistInfo) -> None:
    """Leave the process group if this module joined one.

    Call :func:`barrier` first on the way out of a run that succeeded: gloo aborts a process whose peer left first.
    """
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``model`` when running under torchrun, else ``model`` itself."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def check_fsdp(info: DistInfo) -> None:
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


def wrap_fsdp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
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
