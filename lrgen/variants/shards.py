"""Sharding a score-vcf run across processes started by ``torchrun``: window ``i`` belongs to rank ``i % world``.

Every process reads the whole VCF and forms the same windows; each scores its own and keeps them in its partial
folder (:mod:`lrgen.variants.resume`). At the end all processes meet at a barrier (``torch.distributed``, gloo) and
rank 0 interleaves the shards' windows back into input order and writes the one output.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from lrgen.errors import LrgenError


@dataclass(frozen=True)
class Shard:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Shard:
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as exc:
            raise LrgenError(f"WORLD_SIZE/RANK/LOCAL_RANK must be integers (set by torchrun): {exc}") from exc
        return cls(rank, world, local)

    @property
    def sharded(self) -> bool:
        return self.world > 1

    def owns(self, window_index: int) -> bool:
        return window_index % self.world == self.rank

    def barrier(self) -> None:
        """Wait for every process (gloo: no GPU collective needed)."""
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="gloo")
        dist.barrier()


def merge_shards(root: Path, world: int, vcf_out: Path, tsv_out: Path) -> list[dict]:
    """Interleave the shards' bodies window by window into ``vcf_out``/``tsv_out``; returns each shard's counts."""
    progress = [json.loads((root / f"rank{r}" / "progress.json").read_text()) for r in range(world)]
    windows = {p["windows"] for p in progress}
    if len(windows) != 1:
        raise LrgenError(f"the shards in {root} disagree on the number of windows ({sorted(windows)}): rerun")
    sources = [(open(root / f"rank{r}" / "body.vcf", "rb"), open(root / f"rank{r}" / "body.tsv", "rb"))
               for r in range(world)]
    taken = [0] * world
    try:
        with open(vcf_out, "wb") as vcf, open(tsv_out, "wb") as tsv:
            for index in range(windows.pop()):
                rank = index % world
                vcf_bytes, tsv_bytes = progress[rank]["pieces"][taken[rank]]
                taken[rank] += 1
                vcf.write(sources[rank][0].read(vcf_bytes))
                tsv.write(sources[rank][1].read(tsv_bytes))
    finally:
        for handles in sources:
            for fh in handles:
                fh.close()
    return [p["counts"] for p in progress]
