"""Output of score-vcf: the input VCF with LRGEN_* INFO fields (plain or bgzip + tabix) and the TSV table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from lrgen.errors import LrgenError
from lrgen.io.scored_vcf import NOT_APPLICABLE, SKIP_REASONS, STATUS_FIELD
from lrgen.io.streams import is_stdio
from lrgen.runtime.files import replace
from lrgen.variants.scores import INFO
from lrgen.variants.triage import Entry

STATUS_DESCRIPTION = f"Per ALT: scored, or why it was skipped ({', '.join(SKIP_REASONS)})"


def check_output_name(path: Path, what: str = "output") -> None:
    """Output VCFs are ``.vcf`` or ``.vcf.gz`` in an existing folder, or ``-`` (standard output)."""
    if is_stdio(path):
        return
    if not (path.name.endswith(".vcf") or path.name.endswith(".vcf.gz")):
        raise LrgenError(f"{what} {path} must end with .vcf or .vcf.gz (bgzipped and tabix-indexed)")
    if not path.parent.is_dir():
        raise LrgenError(f"the folder of {what} {path} does not exist")
    if path.is_dir():
        raise LrgenError(f"{what} {path} is a folder: name a file in it, e.g. {path / 'scored.vcf.gz'}")


def header_text(input_header: str, values: tuple[str, ...], meta: dict[str, str], conjoined: bool) -> str:
    """The input's header with its own LRGEN/lrgen lines replaced by this run's INFO and ``##lrgen_*`` lines;
    ``conjoined``: the model ran on both strands and averaged them (else one pass of an RC-equivariant model)."""
    lines = [line for line in input_header.rstrip("\n").split("\n")
             if not line.startswith(("##INFO=<ID=LRGEN_", "##lrgen_"))]
    strands = "strands averaged" if conjoined else "one pass of an RC-equivariant model"
    ours = [f'##INFO=<ID={INFO[v][0]},Number=A,Type=Float,Description="{INFO[v][1].replace("{strands}", strands)}">'
            for v in values]
    ours.append(f'##INFO=<ID={STATUS_FIELD},Number=A,Type=String,Description="{STATUS_DESCRIPTION}">')
    ours += [f"##lrgen_{key}={_quote(value)}" for key, value in meta.items()]
    return "\n".join(lines[:-1] + ours + lines[-1:]) + "\n"


def _quote(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ")


def _number(value: float | None) -> str:
    return "." if value is None else f"{value:.6g}"


def vcf_line(entry: Entry, values: tuple[str, ...]) -> str:
    """The record's VCF line with this run's INFO fields (old LRGEN_* fields dropped), newline-terminated."""
    columns = str(entry.record).rstrip("\n").split("\t")
    if columns[4] == ".":  # no ALT: Number=A fields would have no value to hold
        return "\t".join(columns) + "\n"
    info = [] if columns[7] == "." else [f for f in columns[7].split(";") if not f.startswith("LRGEN_")]
    for value in values:
        numbers = [a.scores.get(value) for a in entry.alleles]
        if any(n is not None for n in numbers):
            info.append(f"{INFO[value][0]}={','.join(_number(n) for n in numbers)}")
    info.append(f"{STATUS_FIELD}={','.join(a.status for a in entry.alleles)}")
    columns[7] = ";".join(info)
    return "\t".join(columns) + "\n"


def tsv_header(values: tuple[str, ...]) -> str:
    return "\t".join(["chrom", "pos", "id", "ref", "alt", *values, "status", "note"]) + "\n"


def tsv_lines(entry: Entry, values: tuple[str, ...]) -> str:
    """One row per ALT: chrom, pos, id, ref, alt, the values, status, and why any value is missing."""
    rows = []
    for a in entry.alleles:
        v = a.variant
        note = "; ".join(f"{score}: {NOT_APPLICABLE[why]}" for score, why in a.not_applicable.items())
        cells = [v.chrom, str(v.pos), v.id or ".", v.ref, v.alt or ".", *(_number(a.scores.get(x)) for x in values),
                 a.status, note or "."]
        rows.append("\t".join(cells) + "\n")
    return "".join(rows)


def assemble_vcf(out: Path, header: str, body: Path, scratch: Path) -> str | None:
    """Write ``header`` + ``body`` to ``out`` atomically; ``.gz`` is bgzipped and tabix-indexed; ``-`` is standard
    output (plain text).

    Returns a warning when the index cannot be built (an unsorted input), else None.
    """
    import pysam

    if is_stdio(out):
        _concatenate(header, body, sys.stdout)
        return None
    plain = scratch / "assembled.vcf"
    with open(plain, "w") as fh:
        _concatenate(header, body, fh)
    if not out.name.endswith(".gz"):
        replace(plain, out)
        return None
    packed = scratch / "assembled.vcf.gz"
    pysam.tabix_compress(str(plain), str(packed), force=True)
    plain.unlink()
    warning = None
    index = Path(f"{packed}.tbi")
    try:
        pysam.tabix_index(str(packed), preset="vcf", force=True)
    except (OSError, ValueError) as exc:
        warning = f"no tabix index for {out}: {exc} (sort the input, e.g. `bcftools sort`, to get one)"
    old_index = Path(f"{out}.tbi")
    replace(packed, out)
    if index.exists():
        replace(index, old_index)
    elif old_index.exists():
        old_index.unlink()
    return warning


def assemble_tsv(out: Path, header: str, body: Path, scratch: Path) -> None:
    """Write the TSV ``header`` + ``body`` to ``out`` atomically, or to standard output for ``-``."""
    if is_stdio(out):
        _concatenate(header, body, sys.stdout)
        return
    tmp = scratch / "assembled.tsv"
    with open(tmp, "w") as fh:
        _concatenate(header, body, fh)
    replace(tmp, out)


def _concatenate(header: str, body: Path, dest: IO[str]) -> None:
    """Write ``header`` and then the contents of ``body`` to ``dest``, streaming the body in 1 MiB pieces."""
    dest.write(header)
    with open(body) as src:
        while chunk := src.read(1 << 20):
            dest.write(chunk)
    dest.flush()
