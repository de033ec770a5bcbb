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
from lrgen.models.checkpoint import CONFIG_NAME as MODEL_CONFIG
from lrgen.pretrain.config import CONFIG_NAME as RUN_CONFIG
from lrgen.pretrain.config import resolve_config
from lrgen.pretrain.data import load_species, parse_region, species_name
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

    def trained_model(self, name: str) -> Path:
        """The folder of ``name``'s trained weights (bfloat16), which every evaluation reads."""
        path = self.work / "models" / name
        if not (path / MODEL_CONFIG).is_file():
            raise LrgenError(f"{path} is missing: the weights of {name} were not restored; give --restore a folder "
                             f"with models/{name}.safetensors")
        return path

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
            rc_augment=name not in RC_EQUIVARIANT, resume=(run / RUN_CONFIG).is_file(),
            time_limit=remaining if math.isfinite(remaining) else None,
        ))
        summary = train(config)
        if summary["stopped"]:
            raise OutOfTime()
        return summary


def training_data(args: argparse.Namespace, known: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """The training FASTA files (every file of ``--genomes``, sorted, then ``--human``) and their species names.
    Without the ``--genomes`` folder, a suite whose every model is trained (``known``: its state) goes on with the
    species it recorded and no training data."""
    folder = Path(args.genomes)
    if not folder.is_dir():
        if known is not None and all(name in known.get("train", {}) for name in args.models):
            log(f"--genomes {folder} is absent: every model is trained, no training data is read")
            return [], known["settings"]["species"]
        raise LrgenError(f"--genomes {folder} is not a folder")
    files = sorted(str(f) for f in folder.iterdir() if f.name.endswith(FASTA_SUFFIXES))
    if not files:
        raise LrgenError(f"no FASTA files (*.fa[.gz], *.fasta[.gz], *.fna[.gz]) in --genomes {folder}")
    fasta = [*files, args.human]
    return fasta, [species_name(f) for f in fasta]


def heldout_fasta(human: str, region: str, path: Path) -> Path:
    """The validation region of ``human`` written as a FASTA file of its own (the context sweep reads it)."""
    if path.is_file():
        return path
    reg = parse_region(region)
    species = load_species(human)
    contig = next((c for c in species.contigs if c.name.removeprefix("chr") == reg.chrom.removeprefix("chr")), None)
    if contig is None:
        raise LrgenError(f"--val-region {region}: contig {reg.chrom} is not in {human}")
    seq = contig.seq[reg.start : reg.end].tobytes().decode("ascii")
    atomic_write_text(path, f">{region}\n" + "\n".join(seq[i : i + 80] for i in range(0, len(seq), 80)) + "\n")
    return path
