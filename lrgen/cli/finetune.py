"""`lrgen finetune` (also under ``torchrun --nproc-per-node N -m lrgen finetune ...``)."""

from __future__ import annotations

from typing import Optional

import typer

from lrgen.cli.app import app
from lrgen.cli.common import (at_least_one, deprecated_option, device_option, length, model_option, output_option,
                              renamed)


@app.command("finetune")
def finetune_command(
    task: str = typer.Option(..., "--task", help="GLRB task or alias (see `lrgen glrb tasks`)."),
    model: str = model_option("Backbone: bundled model, preset, checkpoint or run folder, or hub id."),
    data_dir: str = typer.Option(..., "--data-dir", help="Benchmark folder in the published layout."),
    genome: str = typer.Option(..., "--genome", "-g", help="Reference FASTA the task's coordinates refer to."),
    context: str = typer.Option(..., "--context", "-c", help="Training window length, e.g. 12kb."),
    output: Optional[str] = output_option("Run folder: the best fine-tuned model and the resumable state.",
                                          required=False),
    out: Optional[str] = deprecated_option("--out"),
    epochs: int = typer.Option(10, "--epochs", help="Passes over the training split."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per step and process."),
    lr: float = typer.Option(1e-4, "--lr", help="Backbone learning rate."),
    head_lr: float = typer.Option(1e-3, "--head-lr", help="Head learning rate."),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay."),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", help="Linear warm-up steps [5% of the run]."),
    patience: int = typer.Option(3, "--patience", help="Validations without improvement before early stopping."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of train held out for validation (never test)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Validate every N steps [once per epoch]."),
    freeze_backbone: bool = typer.Option(False, "--freeze-backbone/--unfreeze-backbone", help="Train only the head."),
    conjoin: bool = typer.Option(False, "--conjoin", help="Post-hoc conjoining: average with the reverse-complement pass (Caduceus-Ph)."),
    hidden: int = typer.Option(256, "--hidden", help="Width of the MLP heads."),
    max_n_fraction: float = typer.Option(0.5, "--max-n-fraction", help="Skip windows with more N than this."),
    num_workers: int = typer.Option(0, "--num-workers", help="DataLoader worker processes."),
    device: str = device_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation carve, shuffling and head initialisation."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the backbone's position-wise parts (Hawk, NTv2)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in -o/--output from its saved state."),
) -> None:
    """Fine-tune a backbone with a GLRB task head; early stopping on validation; resumable; DDP under torchrun."""
    from lrgen.errors import LrgenError
    from lrgen.glrb.finetune import FinetuneOptions, finetune
    from lrgen.runtime.distributed import is_main_process

    output = renamed(output, out, "--out", "-o/--output")
    if output is None:
        raise LrgenError("no run folder: pass -o/--output DIR")
    summary = finetune(FinetuneOptions(
        task=task, model=model, data_dir=data_dir, genome=genome, context=length(context, "--context"),
        output=output, epochs=epochs, max_steps=max_steps, batch_size=at_least_one(batch_size, "--batch-size"),
        lr=lr, head_lr=head_lr, weight_decay=weight_decay, warmup_steps=warmup_steps, patience=patience,
        val_fraction=val_fraction, eval_every=at_least_one(eval_every, "--eval-every"),
        freeze_backbone=freeze_backbone, conjoin=conjoin, hidden=hidden, max_n_fraction=max_n_fraction,
        num_workers=num_workers, device=device, seed=seed, compile=compile, resume=resume,
    ))
    if is_main_process():
        typer.echo(f"fine-tuned {summary['task']} for {summary['steps']} steps; best validation {summary['metric']} "
                   f"{summary['best_validation']:.4f}; model in {summary['output']}")
