"""Merging the shards of a score-vcf run under ``torchrun``: window ``i`` belongs to rank ``i % world``.

Every process reads the whole VCF and forms the same windows; each scores its own into its subfolder of the
partial folder (:mod:`lrgen.variants.resume`). Once all are done rank 0 interleaves the shards' windows back into
input order.
"""

from __future__ import annotations

from pathlib import Path

from lrgen.errors import LrgenError
from lrgen.runtime.partial import PartialFolder
from lrgen.variants.resume import PROGRESS


def merge_shards(partial: PartialFolder, world: int, vcf_out: Path, tsv_out: Path) -> list[dict]:
    """Interleave the shards' bodies window by window into ``vcf_out``/``tsv_out``; returns each shard's counts."""
    folders = [partial.root / f"rank{r}" for r in range(world)]
    progress = []
    for folder in folders:
        state = partial.read_state(PROGRESS, folder)
        if state is None:
            raise LrgenError(f"{folder} has no {PROGRESS}: a process did not finish; rerun with --resume")
        progress.append(state)
    windows = {p["windows"] for p in progress}
    if len(windows) != 1:
        raise LrgenError(f"the shards in {partial.root} disagree on the number of windows ({sorted(windows)}): rerun")
    sources = [(open(f / "body.vcf", "rb"), open(f / "body.tsv", "rb")) for f in folders]
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
