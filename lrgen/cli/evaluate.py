"""`lrgen evaluate`: GLRB task metrics (issue 7) or, with ``--task mlm``, masked-LM perplexity (issue 6)."""

from __future__ import annotations

from typing import List, Optional

import typer

from lrgen.cli.app import app


@app.command("evaluate")
def evaluate_command(
    task: str = typer.Option(..., "--task", help="GLRB task or alias (see `lrgen glrb tasks`), or mlm."),
    model: str = typer.Option(..., "--model", help="Fine-tuned folder; for variant tasks and mlm also a preset or checkpoint."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Benchmark folder in the published layout (GLRB tasks)."),
    genome: Optional[str] = typer.Option(None, "--genome", help="Reference FASTA the task's coordinates refer to (GLRB tasks)."),
    fasta: Optional[List[str]] = typer.Option(None, "--fasta", help="FASTA to measure perplexity on (mlm); repeatable."),
    context: Optional[str] = typer.Option(None, "--context", help="Context(s), e.g. 12kb,120kb,1Mbp [training context]."),
    out: Optional[str] = typer.Option(None, "--out", help="Folder for results.json, results.md and the plot."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for a 95% interval (e.g. 1000) [0: none]."),
    chunk_size: Optional[str] = typer.Option(None, "--chunk-size", help="Stream SSMs in chunks of this many bases [auto above 131kb]."),
    windows: int = typer.Option(8, "--windows", help="Windows per context (mlm)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate (GLRB tasks) [test]."),
    conjoin: Optional[bool] = typer.Option(None, "--conjoin/--no-conjoin", help="Average with the reverse-complement pass [as fine-tuned]."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per batch (GLRB tasks)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, "--seed", help="Seed of bootstrap resampling and mlm windows."),
) -> None:
    """Evaluate a model on a GLRB task (metrics from probabilities, bootstrap CIs, metric vs context) or by MLM."""
    from lrgen.errors import LrgenError
    from lrgen.sizes import parse_size, parse_size_list

    contexts = parse_size_list(context) if context else None
    chunk = parse_size(chunk_size) if chunk_size else None
    if task.strip().lower() == "mlm":
        from lrgen.pretrain.evaluate import evaluate_mlm

        if not fasta:
            raise LrgenError("--task mlm needs --fasta")
        if not contexts:
            raise LrgenError("--task mlm needs --context")
        result = evaluate_mlm(model, list(fasta), contexts, windows=windows, chunk_size=chunk, device=device,
                              seed=seed, out_dir=out)
        for row in result["results"]:
            text = row.get("error") or f"perplexity {row['perplexity']:.3f}, accuracy {row['accuracy']:.3f}"
            typer.echo(f"{row['context']:>12,} bp  {text}")
        return
    from lrgen.glrb.evaluate import evaluate_task, markdown

    if not data_dir or not genome:
        raise LrgenError("GLRB tasks need --data-dir and --genome")
    result = evaluate_task(task, model, data_dir, genome, contexts=contexts, out_dir=out, bootstrap=bootstrap,
                           chunk_size=chunk, device=device, batch_size=batch_size, split=split, conjoin=conjoin,
                           seed=seed)
    typer.echo(markdown(result), nl=False)
    if result.get("plot_note"):
        typer.echo(f"note: {result['plot_note']}")
