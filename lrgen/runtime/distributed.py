"""The one torch.distributed wrapper: rank, world size, each process's device, barriers and rank-0 decisions.

Outside ``torchrun`` (no ``WORLD_SIZE`` in the environment) it is one process and no process group. Under
``torchrun`` the backend is NCCL when the processes use GPUs, gloo otherwise, and each process uses
``cuda:LOCAL_RANK``. Jobs whose processes may reach a barrier hours apart (a resumed run whose finished work fell
unevenly) ask for a long ``timeout``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as dist

from lrgen.errors import LrgenError
from lrgen.runtime.device import resolve_device

#: the process-group timeout of jobs whose ranks finish far apart (sharded score-vcf and predict)
LONG_TIMEOUT = timedelta(days=30)


@dataclass(frozen=True)
class Processes:
    """This process's place in a run: rank ``rank`` of ``world_size``, computing on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the one process that writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def owns(self, index: int) -> bool:
        """Work item ``index`` belongs to this process (items are dealt round-robin)."""
        return index % self.world_size == self.rank

    def barrier(self) -> None:
        """Wait for every process (nothing for one)."""
        if self.distributed:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (a decision only rank 0 can make)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes in place."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


def _environment() -> tuple[int, int, int]:
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise LrgenError(f"WORLD_SIZE/RANK/LOCAL_RANK must be integers (torchrun sets them): {exc}") from None
    return rank, world, local


def is_main_process() -> bool:
    """True outside torchrun and on its rank 0 (for the CLI's final line)."""
    return _environment()[0] == 0


@contextmanager
def processes(device: str | torch.device | None = "auto", timeout: timedelta | None = None) -> Iterator[Processes]:
    """Join the process group that torchrun describes (a no-op for one process) and leave it on the way out.

    On success every process meets at a barrier before leaving, so rank 0's files are written before any process
    exits (gloo aborts a process whose peer left first).
    """
    rank, world, local = _environment()
    device = resolve_device(device, local)
    joined = False
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        options = {"timeout": timeout} if timeout is not None else {}
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", **options)
        joined = True
    procs = Processes(rank=rank, world_size=world, local_rank=local, device=device)
    try:
        yield procs
        procs.barrier()
    finally:
        if joined and dist.is_initialized():
            dist.destroy_process_group()


def wrap_ddp(model: torch.nn.Module, procs: Processes) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``model`` under torchrun, else ``model`` itself."""
    if not procs.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [procs.device.index] if procs.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)
