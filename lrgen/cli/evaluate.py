"""`lrgen evaluate`: GLRB task metrics or, with ``--task mlm``, masked-LM perplexity."""

from __future__ import annotations

from typing import List, Optional

import typer

from lrgen.cli.app import app
from lrgen.cli.common import (at_least_one, chunk_size_option, deprecated_option, device_option, length, lengths,
                              model_option, output_option, renamed)


@app.command("evaluate")
def evaluate_command(
    task: str = typer.Option(..., "--task", help="GLRB task or alias (see `lrgen glrb tasks`), or mlm."),
    model: str = model_option("Fine-tuned folder; for variant tasks and mlm also any backbone."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Benchmark folder in the published layout (GLRB tasks)."),
    genome: Optional[str] = typer.Option(None, "--genome", "-g", help="Reference FASTA of the task's coordinates (GLRB tasks)."),
    fasta: Optional[List[str]] = typer.Option(None, "--fasta", help="FASTA to measure perplexity on (mlm); repeatable."),
    context: Optional[str] = typer.Option(None, "--context", "-c", help="Context(s), e.g. 12kb,120kb,1Mbp [training context]."),
    output: Optional[str] = output_option("Folder for results.json, results.md and the plot.", required=False),
    out: Optional[str] = deprecated_option("--out"),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for a 95% interval (e.g. 1000) [0: none]."),
    chunk_size: Optional[str] = chunk_size_option(),
    windows: int = typer.Option(8, "--windows", help="Windows per context (mlm)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate (GLRB tasks) [test]."),
    conjoin: Optional[bool] = typer.Option(None, "--conjoin/--no-conjoin", help="Average with the reverse-complement pass [as fine-tuned]."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per batch (GLRB tasks)."),
    device: str = device_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of bootstrap resampling and mlm windows."),
) -> None:
    """Evaluate a model on a GLRB task (metrics from probabilities, bootstrap CIs, metric vs context) or by MLM."""
    from lrgen.errors import LrgenError

    output = renamed(output, out, "--out", "-o/--output")
    contexts = lengths(context, "--context")
    chunk = length(chunk_size, "--chunk-size")
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
