"""`lrgen glrb`: list the benchmark tasks and write an offline fixture in the published layout."""

from __future__ import annotations

from typing import Optional

import typer

from lrgen.cli.app import app

glrb_app = typer.Typer(help="Genomics Long-Range Benchmark helpers.", no_args_is_help=True)
app.add_typer(glrb_app, name="glrb")


@glrb_app.command("tasks")
def tasks_command() -> None:
    """List the nine GLRB tasks: aliases, genome build, metric and labels (files and heads: docs/glrb.md)."""
    from rich.console import Console
    from rich.table import Table

    from lrgen.glrb.tasks import TASKS

    table = Table(title="GLRB tasks")
    table.add_column("task", no_wrap=True)
    for col in ("aliases", "genome", "metric", "labels"):
        table.add_column(col)
    for t in TASKS.values():
        table.add_row(t.name, ", ".join(t.aliases), t.genome, t.metric, t.label_shape)
    Console().print(table)


@glrb_app.command("make-fixture")
def make_fixture_command(
    out_dir: str = typer.Argument(..., help="Folder to write the benchmark files into."),
    genome: Optional[str] = typer.Option(None, "--genome", help="Where to write the synthetic FASTA \\[OUT_DIR/genome.fa]."),
    n_train: int = typer.Option(48, "--n-train", help="Train rows per task."),
    n_test: int = typer.Option(24, "--n-test", help="Test rows per task."),
    seed: int = typer.Option(0, "--seed", help="Seed of the genome and labels."),
) -> None:
    """Write a small GLRB folder (all tasks, published layout) and its FASTA, with a learnable synthetic signal."""
    from lrgen.glrb.fixture import make_fixture

    result = make_fixture(out_dir, genome=genome, n_train=n_train, n_test=n_test, seed=seed)
    typer.echo(f"wrote {len(result['files'])} files to {result['data_dir']}; genome {result['genome']}")
