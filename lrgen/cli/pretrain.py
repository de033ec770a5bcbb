"""`lrgen pretrain` (also under ``torchrun --nproc-per-node N -m lrgen pretrain ...``)."""

from __future__ import annotations

from typing import List, Optional

import typer

from lrgen.cli.app import app
from lrgen.cli.common import deprecated_option, output_option, renamed


@app.command("pretrain")
def pretrain_command(
    model: Optional[str] = typer.Option(None, "--model", help="Preset name (e.g. caduceus-ps-tiny) or checkpoint folder."),
    fasta: Optional[List[str]] = typer.Option(None, "--fasta", help="Training FASTA (plain/gzip/bgzip), one species; repeatable."),
    fasta_list: Optional[str] = typer.Option(None, "--fasta-list", help="Text file listing FASTA paths, one per line."),
    output: Optional[str] = output_option("Run folder: checkpoints, config, metrics.jsonl.", required=False),
    out: Optional[str] = deprecated_option("--out"),
    context: Optional[str] = typer.Option(None, "--context", help="Window length in bases, e.g. 12kb [12kb]."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps to train for."),
    tokens: Optional[str] = typer.Option(None, "--tokens", help="Budget in bases instead of --steps, e.g. 500M."),
    batch_size: Optional[str] = typer.Option(None, "--batch-size", help="Windows per process per micro-batch, or auto: the largest that fits on the GPU [8]."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help="Micro-batches per optimizer step [1]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate [2e-3]."),
    min_lr_ratio: Optional[float] = typer.Option(None, "--min-lr-ratio", help="Final LR as a fraction of the peak [0.1]."),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", help="Linear warm-up steps [5% of the run]."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay of matrices [0.1]."),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help="Gradient-norm clipping [1.0]."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Per-FASTA sampling weights, e.g. 1,1,2 \\[by length]."),
    val_fasta: Optional[List[str]] = typer.Option(None, "--val-fasta", help="Held-out FASTA for validation; repeatable."),
    val_region: Optional[List[str]] = typer.Option(None, "--val-region", help="Held-out region, e.g. 20:1000000-4000000 (1-based); repeatable."),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Hold out this last fraction of every contig [0.02 without other validation data]."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Validate every N steps [500]."),
    val_every: Optional[int] = deprecated_option("--val-every"),
    val_windows: Optional[int] = typer.Option(None, "--val-windows", help="Validation windows [32]."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Checkpoint every N steps [1000]."),
    keep_checkpoints: Optional[int] = typer.Option(None, "--keep-checkpoints", help="Step checkpoints kept [3]."),
    mask_prob: Optional[float] = typer.Option(None, "--mask-prob", help="Fraction of positions masked [0.15]."),
    max_n_fraction: Optional[float] = typer.Option(None, "--max-n-fraction", help="Skip windows with more N than this [0.1]."),
    rc_augment: Optional[bool] = typer.Option(None, "--rc-augment/--no-rc-augment", help="Reverse-complement half the windows \\[on unless the model is RC-equivariant]."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of windows, masking and initialisation [0]."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N \\[auto]."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto (bfloat16 on a GPU), bfloat16 or float32."),
    precision: Optional[str] = deprecated_option("--precision"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in -o/--output from its latest checkpoint."),
    time_limit: Optional[str] = typer.Option(
        None, "--time-limit", help="Stop cleanly at a checkpoint before this wall time, e.g. 8m, 1h30m, 540 (seconds); "
        "continue with --resume."
    ),
    fsdp: bool = typer.Option(False, "--fsdp", help="Shard the model over torchrun processes with FSDP2 instead of DDP (torch >= 2.6)."),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model's position-wise parts (Hawk, NTv2) \\[on a GPU without --fsdp]."),
    deterministic: bool = typer.Option(
        False, "--deterministic", help="PyTorch's deterministic kernels: a GPU run (and its resumption) repeats bit for bit."
    ),
    config: Optional[str] = typer.Option(None, "--config", help="TOML/YAML/JSON file of these settings; flags win."),
) -> None:
    """Masked-LM pretraining on FASTA genomes; resumable; data-parallel (DDP, or FSDP with --fsdp) under torchrun."""
    from lrgen.pretrain.loop import run_pretrain
    from lrgen.runtime.distributed import is_main_process

    output = renamed(output, out, "--out", "-o/--output")
    eval_every = renamed(eval_every, val_every, "--val-every", "--eval-every")
    dtype = renamed(dtype, precision, "--precision", "--dtype")
    flags = dict(
        model=model, fasta=fasta or None, fasta_list=fasta_list, output=output, context=context, steps=steps,
        tokens=tokens,
        batch_size=batch_size, grad_accum=grad_accum, lr=lr, min_lr_ratio=min_lr_ratio, warmup_steps=warmup_steps,
        weight_decay=weight_decay, grad_clip=grad_clip, weights=weights, val_fasta=val_fasta or None,
        val_region=val_region or None, val_fraction=val_fraction, eval_every=eval_every, val_windows=val_windows,
        save_every=save_every, keep_checkpoints=keep_checkpoints, mask_prob=mask_prob, max_n_fraction=max_n_fraction,
        rc_augment=rc_augment, seed=seed, device=device, dtype=dtype, fsdp=fsdp or None,
        compile=compile, deterministic=deterministic or None, resume=resume or None, time_limit=time_limit,
    )
    summary = run_pretrain(flags, config)
    if is_main_process():  # one line from the main process under torchrun
        if summary["stopped"]:
            saved = "checkpoint saved; continue with" if summary["steps"] else "nothing trained yet; start again with"
            typer.echo(f"stopped at the time limit after {summary['steps']} of {summary['total_steps']} steps "
                       f"({summary['tokens']:,} bases), {saved}: lrgen pretrain -o {summary['run_dir']} --resume")
            return
        val = summary["val"].get("loss")
        val_text = f", validation loss {val:.4f}" if val is not None else ""
        typer.echo(f"trained {summary['steps']} steps ({summary['tokens']:,} bases){val_text}; run in {summary['run_dir']}")
