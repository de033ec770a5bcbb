"""What every stage of the suite needs: the arguments, the folders, the deadline, the state, the data and the
initial checkpoints; and the one call that trains (or continues) a run within the deadline."""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrgen.errors import LrgenError
from lrgen.pretrain.config import CONFIG_NAME, resolve_config
from lrgen.pretrain.data import load_species, parse_region
from lrgen.runtime.files import atomic_write_text

from suite.clock import Deadline, OutOfTime
from suite.family import RC_EQUIVARIANT
from suite.state import State

FASTA_SUFFIXES = (".fa", ".fa.gz", ".fasta", ".fasta.gz", ".fna", ".fna.gz")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Suite:
    args: argparse.Namespace
    work: Path
    out: Path
    deadline: Deadline
    state: State
    fasta: list[str]  # training FASTA files, one species each (the human one last)
    heldout: Path  # the validation region as a FASTA file of its own
    init: dict[str, Path]  # suite model name -> its seeded initial checkpoint
    device: str  # as resolved, e.g. "cuda:0"

    @property
    def names(self) -> list[str]:
        return list(self.init)

    def train(self, name: str, run: Path, *, batch_size: int, lr: float, steps: int, eval_every: int) -> dict[str, Any]:
        """Train (or continue) run ``run`` of model ``name`` until ``steps`` or the deadline; raises
        :class:`OutOfTime` when the run stopped at the deadline (its checkpoint saved) or no time is left."""
        from lrgen.pretrain.loop import train

        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise OutOfTime()
        a = self.args
        config = resolve_config(dict(
            model=str(self.init[name]), output=str(run), fasta=self.fasta, val_region=[a.val_region],
            context=a.context, steps=steps, batch_size=batch_size, lr=lr, eval_every=eval_every,
            val_windows=a.val_windows, save_every=steps, keep_checkpoints=1, seed=a.seed, device=a.device,
            rc_augment=name not in RC_EQUIVARIANT, resume=(run / CONFIG_NAME).is_file(),
            time_limit=remaining if math.isfinite(remaining) else None,
        ))
        summary = train(config)
        if summary["stopped"]:
            raise OutOfTime()
        return summary


def genome_files(folder: str) -> list[str]:
    """The FASTA files of ``folder``, sorted (one species each)."""
    path = Path(folder)
    if not path.is_dir():
        raise LrgenError(f"--genomes {folder} is not a folder")
    files = sorted(str(f) for f in path.iterdir() if f.name.endswith(FASTA_SUFFIXES))
    if not files:
        raise LrgenError(f"no FASTA files (*.fa[.gz], *.fasta[.gz], *.fna[.gz]) in --genomes {folder}")
    return files


def heldout_fasta(human: str, region: str, path: Path) -> Path:
    """The validation region of ``human`` written as a FASTA file of its own (the context sweep reads it)."""
    reg = parse_region(region)
    species = load_species(human)
    contig = next((c for c in species.contigs if c.name.removeprefix("chr") == reg.chrom.removeprefix("chr")), None)
    if contig is None:
        raise LrgenError(f"--val-region {region}: contig {reg.chrom} is not in {human}")
    if not path.is_file():
        seq = contig.seq[reg.start : reg.end].tobytes().decode("ascii")
        atomic_write_text(path, f">{region}\n" + "\n".join(seq[i : i + 80] for i in range(0, len(seq), 80)) + "\n")
    return path
