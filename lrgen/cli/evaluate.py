"""`lrgen evaluate`: GLRB task metrics, a user-data model's metrics on its test contigs, or, with ``--task mlm``,
masked-LM perplexity."""

from __future__ import annotations

from typing import List, Optional

import typer

from lrgen.cli.app import app
from lrgen.cli.common import (at_least_one, chunk_size_option, deprecated_option, device_option, length, lengths,
                              model_option, output_option, renamed)


@app.command("evaluate")
def evaluate_command(
    task: Optional[str] = typer.Option(None, "--task", help="GLRB task or alias (see `lrgen glrb tasks`), or mlm "
                                                            "\\[a folder fine-tuned on your data: its own task]."),
    model: str = model_option("Fine-tuned folder; for variant tasks and mlm also any backbone."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Benchmark folder in the published layout (GLRB tasks)."),
    genome: Optional[str] = typer.Option(None, "--genome", "-g", help="Reference FASTA of the task's coordinates "
                                                                       "(GLRB tasks; your data: if it moved)."),
    fasta: Optional[List[str]] = typer.Option(None, "--fasta", help="FASTA to measure perplexity on (mlm); repeatable."),
    context: Optional[str] = typer.Option(None, "--context", "-c", help="Context(s), e.g. 12kb,120kb,1Mbp \\[training context]."),
    output: Optional[str] = output_option("Folder for results.json, results.md and the plot.", required=False),
    out: Optional[str] = deprecated_option("--out"),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for a 95% interval (e.g. 1000) [0: none]."),
    chunk_size: Optional[str] = chunk_size_option(),
    windows: int = typer.Option(8, "--windows", help="Windows per context (mlm)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate \\[test]."),
    conjoin: Optional[bool] = typer.Option(None, "--conjoin/--no-conjoin", help="Average with the reverse-complement pass \\[as fine-tuned]."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per batch (GLRB tasks)."),
    device: str = device_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of bootstrap resampling and mlm windows."),
) -> None:
    """Evaluate a model on a GLRB task (metrics from probabilities, bootstrap CIs, metric vs context), a model
    fine-tuned on your data on its test contigs, or by MLM."""
    from lrgen.errors import LrgenError
    from lrgen.userdata.examples import KINDS

    output = renamed(output, out, "--out", "-o/--output")
    contexts = lengths(context, "--context")
    chunk = length(chunk_size, "--chunk-size")
    if task is None or task.strip().lower() in KINDS:
        from lrgen.userdata.evaluate import UserEvaluateOptions, evaluate_user

        if contexts or data_dir:
            raise LrgenError("a model fine-tuned on your data is evaluated at its training context on the contigs "
                             "its task.json holds: drop --context and --data-dir")
        result = evaluate_user(UserEvaluateOptions(model=model, genome=genome, output=output, split=split,
                                                   batch_size=at_least_one(batch_size, "--batch-size"),
                                                   chunk_size=chunk, device=device))
        typer.echo(f"{result['task']} on {result['split']} contigs ({result['n']} windows): " + ", ".join(
            f"{m} {v:.4f}" for m, v in result["metrics"].items()))
        for name, values in result["labels"].items():
            typer.echo(f"  {name}: " + ", ".join(f"{m} {v:.4f}" for m, v in values.items()))
        return
    if task.strip().lower() == "mlm":
        from lrgen.pretrain.evaluate import MlmOptions, evaluate_mlm

        if not fasta:
            raise LrgenError("--task mlm needs --fasta")
        if not contexts:
            raise LrgenError("--task mlm needs --context")
        result = evaluate_mlm(MlmOptions(model=model, fasta=list(fasta), context=contexts,
                                         windows=at_least_one(windows, "--windows"), chunk_size=chunk,
                                         device=device, seed=seed, output=output))
        for row in result["results"]:
            text = row.get("error") or f"perplexity {row['perplexity']:.3f}, accuracy {row['accuracy']:.3f}"
            typer.echo(f"{row['context']:>12,} bp  {text}")
        return
    from lrgen.glrb.evaluate import EvaluateOptions, evaluate_task, markdown

    if not data_dir or not genome:
        raise LrgenError("GLRB tasks need --data-dir and --genome")
    result = evaluate_task(EvaluateOptions(
        task=task, model=model, data_dir=data_dir, genome=genome, context=contexts, output=output,
        bootstrap=bootstrap, chunk_size=chunk, device=device, batch_size=at_least_one(batch_size, "--batch-size"),
        split=split, conjoin=conjoin, seed=seed,
    ))
    typer.echo(markdown(result), nl=False)
    if result.get("plot_note"):
        typer.echo(f"note: {result['plot_note']}")
