"""The text of ``lrgen stats``: aligned columns that fit a terminal (under 100 characters wide for one score)."""

from __future__ import annotations

from lrgen.io.scored_vcf import SIGNED, SKIP_REASONS, ScoredAllele
from lrgen.report.stats import QUANTILES, VcfStats

_KIND_NAMES = {"snv": "SNV", "mnp": "MNP"}
_MAX_ALLELE = 8  # longer REF or ALT alleles are cut: ACGTACGT…(25)


def _grid(rows: list[list[str]], left: set[int], indent: str = "") -> list[str]:
    """Rows as columns two spaces apart: the columns in ``left`` left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]


def _number(value: float | None) -> str:
    return "." if value is None else f"{value:.3g}"


def _cut(allele: str | None) -> str:
    allele = allele or "."
    return allele if len(allele) <= _MAX_ALLELE else f"{allele[:_MAX_ALLELE]}…({len(allele)})"


def change(allele: ScoredAllele) -> str:
    """``REF>ALT``, long alleles cut (``ACGTACGT…(25)>A``)."""
    return f"{_cut(allele.variant.ref)}>{_cut(allele.variant.alt)}"


def _outcomes(stats: VcfStats) -> list[str]:
    kinds = ", ".join(f"{_KIND_NAMES.get(kind, kind)} {n:,}" for kind, n in stats.kinds.most_common())
    rows = [["scored", f"{stats.outcomes.get('scored', 0):,}", kinds]]
    for status, n in sorted(stats.outcomes.items(), key=lambda item: (-item[1], item[0])):
        if status != "scored":
            rows.append([status, f"{n:,}", SKIP_REASONS.get(status, "")])
    return [f"{stats.records:,} records, {stats.alleles:,} ALT alleles", *_grid(rows, {0, 2}, indent="  ")]


def _quantile_name(q: float) -> str:
    return {0.0: "min", 0.5: "median", 1.0: "max"}.get(q, f"{q:.0%}")


def _distribution(stats: VcfStats) -> list[str]:
    rows = [["score", "values", *map(_quantile_name, QUANTILES)]]
    for name, value in stats.scores.items():
        quantiles = value.quantiles()
        rows.append([name, f"{value.values.size:,}",
                     *(map(_number, quantiles) if quantiles is not None else ["."] * len(QUANTILES))])
    lines = _grid(rows, {0})
    for name, value in stats.scores.items():
        for why, n in sorted(value.missing.items()):
            lines.append(f"  {name}: no value for {n:,} scored allele{'s' if n != 1 else ''} ({why})")
    return lines


def _top(stats: VcfStats) -> list[str]:
    if not stats.top:
        return []
    values = [stats.ranked_by, *(v for v in stats.scores if v != stats.ranked_by)]
    rows = [["#", "chrom", "position", "id", "REF>ALT", *values]]
    for rank, allele in enumerate(stats.top, start=1):
        v = allele.variant
        rows.append([str(rank), v.chrom, f"{v.pos:,}", v.id or ".", change(allele),
                     *(_number(allele.values[name]) for name in values)])
    by = f"|{stats.ranked_by}|" if stats.ranked_by in SIGNED else stats.ranked_by
    return [f"top {len(stats.top)} by {by}", *_grid(rows, {1, 3, 4})]


def stats_table(stats: VcfStats) -> str:
    """The summary as text: the file and its run, alleles by outcome, each score's distribution, the top alleles."""
    about = [f"  {key:<9}{stats.meta[key]}" for key in ("model", "context", "recompute") if key in stats.meta]
    sections = [[stats.source, *about], _outcomes(stats), _distribution(stats), _top(stats)]
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"
