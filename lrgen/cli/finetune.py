"""`lrgen finetune` (also under ``torchrun --nproc-per-node N -m lrgen finetune ...``): a GLRB task, or the user's own
data with ``--task regions|tracks|table``."""

from __future__ import annotations

from typing import List, Optional

import typer

from lrgen.cli.app import app
from lrgen.cli.common import (at_least_one, deprecated_option, device_option, length, model_option, output_option,
                              regions_option, renamed)


def _names(text: Optional[str]) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


@app.command("finetune")
def finetune_command(
    task: str = typer.Option(..., "--task", help="regions, tracks or table (your data; docs/finetune.md), or a GLRB "
                                                 "task or alias (see `lrgen glrb tasks`)."),
    model: str = model_option("Backbone: bundled model, preset, checkpoint or run folder, or hub id."),
    genome: str = typer.Option(..., "--genome", "-g", help="Reference FASTA the coordinates refer to."),
    context: str = typer.Option(..., "--context", "-c", help="Training window length, e.g. 12kb."),
    output: Optional[str] = output_option("Run folder: the best fine-tuned model and the resumable state.",
                                          required=False),
    out: Optional[str] = deprecated_option("--out"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="GLRB: benchmark folder in the published layout."),
    positives: Optional[str] = typer.Option(None, "--positives", help="regions: BED of positive regions (classes from "
                                                                      "the name column)."),
    negatives: Optional[str] = typer.Option(None, "--negatives", help="regions: BED of negative regions \\[drawn: GC- "
                                                                      "and length-matched]."),
    negatives_per_positive: int = typer.Option(1, "--negatives-per-positive", help="regions: negatives drawn per "
                                                                                   "positive."),
    targets: Optional[List[str]] = typer.Option(None, "--targets", help="tracks: bigWig target(s); repeatable or "
                                                                        "comma-separated."),
    bin_size: str = typer.Option("128", "--bin-size", help="tracks: bin width of the targets."),
    regions: Optional[str] = regions_option("tracks: BED of regions to tile \\[every contig the bigWigs cover]."),
    table: Optional[str] = typer.Option(None, "--table", help="table: TSV of chrom/start/end or chrom/pos/ref/alt "
                                                              "and label columns."),
    valid_chroms: Optional[str] = typer.Option(None, "--valid-chroms", help="Your data: validation contigs, "
                                                                            "comma-separated \\[from the FASTA's end]."),
    test_chroms: Optional[str] = typer.Option(None, "--test-chroms", help="Your data: test contigs, comma-separated "
                                                                          "\\[from the FASTA's end]."),
    epochs: int = typer.Option(10, "--epochs", help="Passes over the training split."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per step and process."),
    lr: float = typer.Option(1e-4, "--lr", help="Backbone learning rate."),
    head_lr: float = typer.Option(1e-3, "--head-lr", help="Head learning rate."),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay."),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", help="Linear warm-up steps [5% of the run]."),
    patience: int = typer.Option(3, "--patience", help="Validations without improvement before early stopping."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="GLRB: share of train held out for validation "
                                                                   "(never test)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Validate every N steps \\[once per epoch]."),
    freeze_backbone: bool = typer.Option(False, "--freeze-backbone/--unfreeze-backbone", help="Train only the head."),
    conjoin: bool = typer.Option(False, "--conjoin", help="Post-hoc conjoining: average with the reverse-complement pass (Caduceus-Ph)."),
    hidden: int = typer.Option(256, "--hidden", help="Width of the MLP heads."),
    max_n_fraction: float = typer.Option(0.5, "--max-n-fraction", help="Skip windows with more N than this."),
    num_workers: int = typer.Option(0, "--num-workers", help="DataLoader worker processes."),
    device: str = device_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation carve or drawn negatives, shuffling and head "
                                               "initialisation."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the backbone's position-wise parts (Hawk, NTv2)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in -o/--output from its saved state."),
) -> None:
    """Fine-tune a backbone with a head on a GLRB task or your own data; early stopping on validation; resumable;
    DDP under torchrun."""
    from lrgen.errors import LrgenError
    from lrgen.runtime.distributed import is_main_process
    from lrgen.userdata.examples import KINDS

    output = renamed(output, out, "--out", "-o/--output")
    if output is None:
        raise LrgenError("no run folder: pass -o/--output DIR")
    loop = dict(task=task, model=model, context=length(context, "--context"), output=output, epochs=epochs,
                max_steps=max_steps, batch_size=at_least_one(batch_size, "--batch-size"), lr=lr, head_lr=head_lr,
                weight_decay=weight_decay, warmup_steps=warmup_steps, patience=patience,
                eval_every=at_least_one(eval_every, "--eval-every"), freeze_backbone=freeze_backbone, conjoin=conjoin,
                hidden=hidden, max_n_fraction=max_n_fraction, num_workers=num_workers, device=device, seed=seed,
                compile=compile, resume=resume)
    if task.strip().lower() in KINDS:
        from lrgen.userdata.finetune import UserFinetuneOptions, finetune_user

        if data_dir is not None:
            raise LrgenError(f"--data-dir is for GLRB tasks, not --task {task}")
        summary = finetune_user(UserFinetuneOptions(
            **{**loop, "task": task.strip().lower()}, genome=genome, positives=positives, negatives=negatives,
            negatives_per_positive=negatives_per_positive, targets=[t for text in targets or [] for t in _names(text)],
            bin_size=length(bin_size, "--bin-size"), regions=regions, table=table,
            valid_chroms=_names(valid_chroms), test_chroms=_names(test_chroms)))
    else:
        from lrgen.glrb.finetune import FinetuneOptions, finetune

        user = {"--positives": positives, "--negatives": negatives, "--targets": targets, "--regions": regions,
                "--table": table, "--valid-chroms": valid_chroms, "--test-chroms": test_chroms}
        given = next((flag for flag, value in user.items() if value), None)
        if given:
            raise LrgenError(f"{given} is for your own data (--task regions, tracks or table), not GLRB task {task}")
        if data_dir is None:
            raise LrgenError(f"GLRB task {task} needs --data-dir")
        summary = finetune(FinetuneOptions(**loop, data_dir=data_dir, genome=genome, val_fraction=val_fraction))
    if is_main_process():
        typer.echo(f"fine-tuned {summary['task']} for {summary['steps']} steps; best validation {summary['metric']} "
                   f"{summary['best_validation']:.4f}; model in {summary['output']}")
        if "test" in summary:
            test = summary["test"]
            typer.echo(f"test contigs {','.join(test['contigs'])}: " + ", ".join(
                f"{m} {v:.4f}" for m, v in test["metrics"].items()) + f" ({test['n']} windows; per label in "
                f"{summary['output']}/results.json)")
