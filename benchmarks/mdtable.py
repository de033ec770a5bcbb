"""Markdown tables for the benchmark scripts (importable because scripts run with ``benchmarks/`` on sys.path)."""

from __future__ import annotations

from typing import Iterable, Sequence


def print_table(header: Sequence[object], rows: Iterable[Sequence[object]], align: str = "---") -> None:
    """Print ``header`` and ``rows`` as a Markdown table; ``align`` is each column's rule (``---`` or ``---:``)."""
    print("| " + " | ".join(map(str, header)) + " |")
    print("|" + "|".join(align for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")
