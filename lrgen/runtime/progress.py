"""The one progress-bar factory: rich bars on stderr, shown only where asked (the main process of a run)."""

from __future__ import annotations

import re

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


def progress_bar(label: str | None = None, *, show: bool = True, transient: bool = True, unit: str | None = None,
                 fields: tuple[str, ...] = ("info",), elapsed: bool = False) -> Progress:
    """A progress bar: ``label`` (else each task's description), the bar, ``done/total`` (with ``unit``, e.g. ``bp``),
    one text column per entry of ``fields`` — a task field's name, or a template such as ``"loss {loss}"`` — filled
    with ``progress.update(task, name=...)``, then time elapsed (``elapsed``) and remaining."""
    columns: list[ProgressColumn] = [TextColumn(label or "{task.description}"), BarColumn()]
    columns.append(MofNCompleteColumn())
    if unit:
        columns.append(TextColumn(unit))
    columns += [TextColumn(_template(field)) for field in fields]
    if elapsed:
        columns.append(TimeElapsedColumn())
    columns.append(TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), disable=not show, transient=transient)


def _template(field: str) -> str:
    """``name`` or ``"text {name} text"`` as a rich column template over the task's fields."""
    if "{" not in field:
        field = "{%s}" % field
    return re.sub(r"\{(\w+)\}", r"{task.fields[\1]}", field)
