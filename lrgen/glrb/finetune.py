"""Fine-tuning a backbone with a GLRB task head: the task's windows, a validation split carved from train (never
test), and the shared loop of :mod:`lrgen.training.loop` (early stopping, resumable state, DDP under ``torchrun``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrgen.errors import LrgenError
from lrgen.glrb.data import Record, TaskTable, make_windows, read_task
from lrgen.glrb.heads import task_spec
from lrgen.glrb.tasks import Task, get_task
from lrgen.training.loop import TrainingSet, TrainOptions, fine_tune


@dataclass(kw_only=True)
class FinetuneOptions(TrainOptions):
    """Everything ``lrgen finetune`` takes for a GLRB task (the CLI flags carry the same names): the loop's options,
    the benchmark folder and genome, and the share of train carved out for validation."""

    data_dir: str
    genome: str
    val_fraction: float = 0.1  # share of train carved out for validation when the task has no validation split


def carve_validation(table: TaskTable, fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Train and validation records: the published validation split if any, else a share of train.

    The carve is by locus (chrom, centre), so rows of one variant in several tissues stay on one side.
    """
    train = table.split("train")
    if not train:
        raise LrgenError(f"{table.path}: no rows with split 'train'")
    published = table.split("valid")
    if published:
        return train, published
    if not 0 <= fraction < 1:
        raise LrgenError(f"val_fraction must be in [0, 1), got {fraction}")
    loci = sorted({(r.chrom, r.center) for r in train})
    rng = np.random.default_rng(seed)
    n_val = int(round(fraction * len(loci)))
    held = {loci[i] for i in rng.permutation(len(loci))[:n_val]}
    return [r for r in train if (r.chrom, r.center) not in held], [r for r in train if (r.chrom, r.center) in held]


def finetune(options: FinetuneOptions) -> dict:
    """Fine-tune ``options.model`` on ``options.task`` and save the best model in ``options.output``; returns a
    summary. Under ``torchrun`` every process calls this (DDP)."""
    task = get_task(options.task)
    if task.test_only:
        raise LrgenError(f"{task.name} has only a test split: evaluate it zero-shot with lrgen evaluate")
    return fine_tune(options, lambda: _training_set(options, task))


def _training_set(cfg: FinetuneOptions, task: Task) -> TrainingSet:
    from lrgen.io.genome import Genome

    table = read_task(task, cfg.data_dir)
    genome = Genome(cfg.genome)
    train_recs, val_recs = carve_validation(table, cfg.val_fraction, cfg.seed)
    train_w = make_windows(table, train_recs, genome, cfg.context, cfg.max_n_fraction)
    val_w = make_windows(table, val_recs, genome, cfg.context, cfg.max_n_fraction) if val_recs else None
    tissues = sorted({r.tissue for r in train_w.records}) if task.tissue else []

    def spec(backbone):
        n_outputs = train_w.labels(train_w.records[0]).shape[-1]
        return task_spec(backbone, task, cfg.context, n_outputs, hidden=cfg.hidden, tissues=tissues,
                         conjoin=cfg.conjoin, label_names=table.label_names)

    return TrainingSet(name=task.name, train=train_w, valid=val_w, spec=spec, binary=task.binary, metric=task.metric,
                       source=str(table.path), tissues=tissues)
