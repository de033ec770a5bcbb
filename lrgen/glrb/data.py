"""Reading the published GLRB files and cutting centred windows from a reference genome.

Every CSV coordinate is 1-based. A window of length ``L`` around the 0-based centre ``c`` is
``[c - L//2, c - L//2 + L)``, so the centre lies at index ``L//2`` (for variants that is where ALT is written).
Regulatory elements and CAGE regions are centred on ``(start + stop)//2`` of their 0-based ``[START-1, STOP-1)``;
bulk RNA windows of minus-strand genes are reverse-complemented.
"""

from __future__ import annotations

import ast
import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lrgen.errors import LrgenError
from lrgen.io.bed import centred_window
from lrgen.glrb.tasks import BULK_RNA, CAGE, CLASSIFICATION, VARIANT, Task

CAGE_BINS = 896
CAGE_BIN_BP = 128
CAGE_NPZ_SPLIT = 1000  # targets per published npz file
_SPLITS = {"train": "train", "test": "test", "valid": "valid", "validation": "valid", "val": "valid"}


@dataclass
class Record:
    """One row of a task CSV, resolved to a window centre."""

    line: int  # line in the CSV (the header is line 1)
    chrom: str
    center: int  # 0-based
    split: str  # "train", "valid" or "test"
    label: np.ndarray | None  # float32 labels; None for CAGE (read from the npz targets)
    alt: str | None = None
    ref: str | None = None
    tissue: str | None = None
    distance: int | None = None
    minus_strand: bool = False
    npy_idx: int | None = None


@dataclass
class TaskTable:
    """All rows of one task's CSV plus what is needed to label them."""

    task: Task
    path: Path
    records: list[Record]
    label_names: list[str]
    targets: CageTargets | None = None

    def split(self, name: str) -> list[Record]:
        return [r for r in self.records if r.split == name]

    @property
    def splits(self) -> list[str]:
        return sorted({r.split for r in self.records})


class CageTargets:
    """Lazy access to ``cage_prediction/targets_subset/targets-{split}-{a}-{b}.npz`` (keys ``target-{split}-{i}.npy``)."""

    def __init__(self, folder: Path):
        self.folder = folder
        if not folder.is_dir():
            raise LrgenError(f"CAGE targets folder {folder} not found: copy targets_subset/ from the benchmark")
        self._open: dict[Path, np.lib.npyio.NpzFile] = {}

    def path(self, split: str, idx: int) -> Path:
        base = idx // CAGE_NPZ_SPLIT * CAGE_NPZ_SPLIT
        found = sorted(self.folder.glob(f"targets-{split}-{base}-*.npz"))
        if not found:
            raise LrgenError(f"{self.folder}: no file targets-{split}-{base}-*.npz for npy_idx {idx} of split {split}")
        return found[0]

    def get(self, split: str, idx: int) -> np.ndarray:
        """The ``(896, tracks)`` float32 targets of one region."""
        path = self.path(split, idx)
        if path not in self._open:
            try:
                self._open[path] = np.load(path)
            except (OSError, ValueError) as exc:
                raise LrgenError(f"{path}: cannot read this npz ({exc})") from exc
        key = f"target-{split}-{idx}.npy"
        npz = self._open[path]
        if key not in npz.files:
            raise LrgenError(f"{path}: no array {key} (npy_idx {idx})")
        arr = np.asarray(npz[key], dtype=np.float32)
        if arr.ndim == 3:
            arr = arr[0]
        if arr.ndim != 2 or arr.shape[0] != CAGE_BINS:
            raise LrgenError(f"{path}: {key} has shape {arr.shape}, expected (1, {CAGE_BINS}, tracks)")
        return arr


def _find(data_dir: Path, candidates: tuple[str, ...]) -> Path:
    for rel in candidates:
        if (data_dir / rel).is_file():
            return data_dir / rel
    raise LrgenError(
        f"{data_dir / candidates[0]} not found"
        + (f" (nor {', '.join(candidates[1:])})" if len(candidates) > 1 else "")
        + ": point --data-dir at a folder laid out as the published benchmark (see docs/glrb.md)"
    )


def _read_csv(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line, row)`` pairs of a CSV, after checking that the required columns are present."""
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            missing = [c for c in required if c not in header]
            if missing:
                raise LrgenError(
                    f"{path}: missing column {', '.join(missing)} (columns found: {', '.join(header) or 'none'})"
                )
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LrgenError(f"{path}: cannot read this CSV ({exc})") from exc
    for line, row in rows:
        if None in row or any(row[c] is None for c in required):
            raise LrgenError(f"{path}: line {line}: wrong number of fields")
    return header, rows


def _int(path: Path, line: int, column: str, text: str, positive: bool = True) -> int:
    try:
        value = float(text)
        if value != int(value):
            raise ValueError
        value = int(value)
    except (ValueError, OverflowError):
        raise LrgenError(f"{path}: line {line}: column {column}: {text!r} is not an integer") from None
    if positive and value < 1:
        raise LrgenError(f"{path}: line {line}: column {column}: {value} is not a 1-based position (must be ≥ 1)")
    return value


def _float(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LrgenError(f"{path}: line {line}: column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise LrgenError(f"{path}: line {line}: column {column}: {text!r} is not a finite number")
    return value


def _binary(path: Path, line: int, column: str, text: str) -> float:
    value = {"true": 1.0, "false": 0.0}.get(text.strip().lower())
    if value is None:
        value = _float(path, line, column, text)
    if value not in (0.0, 1.0):
        raise LrgenError(f"{path}: line {line}: column {column}: label {text!r} is not 0 or 1")
    return value


def _label_list(path: Path, line: int, column: str, text: str) -> np.ndarray:
    try:
        values = ast.literal_eval(text.strip())
        arr = np.asarray(values, dtype=np.float32)
    except (ValueError, SyntaxError, TypeError):
        raise LrgenError(f"{path}: line {line}: column {column}: {text[:40]!r} is not a list of 0/1 labels") from None
    if arr.ndim != 1 or arr.size == 0 or not np.isin(arr, (0.0, 1.0)).all():
        raise LrgenError(f"{path}: line {line}: column {column}: labels must be a non-empty list of 0/1")
    return arr


def _split(path: Path, line: int, text: str) -> str:
    name = _SPLITS.get(text.strip().lower())
    if name is None:
        raise LrgenError(f"{path}: line {line}: column split: {text!r} is not train, valid/validation or test")
    return name


def _allele(path: Path, line: int, column: str, text: str) -> str:
    allele = text.strip().upper()
    if not allele or any(c not in "ACGTN" for c in allele):
        raise LrgenError(f"{path}: line {line}: column {column}: allele {text!r} is not made of A, C, G, T")
    return allele


def read_task(task: Task, data_dir: str | Path) -> TaskTable:
    """Read and validate ``task``'s files under ``data_dir`` (the published layout); windows are not cut yet."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise LrgenError(f"data folder {data_dir} not found")
    path = _find(data_dir, task.files)
    header, rows = _read_csv(path, task.columns)
    if not rows:
        raise LrgenError(f"{path}: no rows")
    records: list[Record] = []
    label_names: list[str] = []
    for line, row in rows:
        split = _split(path, line, row["split"])
        if task.kind == VARIANT:
            pos = _int(path, line, "POS", row["POS"])
            records.append(
                Record(
                    line=line,
                    chrom=row["CHROM"].strip(),
                    center=pos - 1,
                    split=split,
                    label=np.array([_binary(path, line, task.label_column, row[task.label_column])], np.float32),
                    alt=_allele(path, line, "ALT", row["ALT"]),
                    ref=_allele(path, line, "REF", row["REF"]) if row.get("REF") else None,
                    tissue=row["tissue"].strip() if task.tissue else None,
                    distance=_int(path, line, "distance_to_nearest_TSS", row["distance_to_nearest_TSS"], False)
                    if task.tissue
                    else None,
                )
            )
        elif task.kind == CLASSIFICATION:
            if "POS" in task.columns:
                center = _int(path, line, "POS", row["POS"]) - 1
                label = _label_list(path, line, task.label_column, row[task.label_column])
            else:
                start = _int(path, line, "START", row["START"])
                stop = _int(path, line, "STOP", row["STOP"])
                if stop <= start:
                    raise LrgenError(f"{path}: line {line}: STOP {stop} is not after START {start}")
                center = (start - 1 + stop - 1) // 2
                label = np.array([_binary(path, line, task.label_column, row[task.label_column])], np.float32)
            records.append(Record(line=line, chrom=row["CHROM"].strip(), center=center, split=split, label=label))
        elif task.kind == BULK_RNA:
            strand = row["strand"].strip()
            if strand not in ("+", "-"):
                raise LrgenError(f"{path}: line {line}: column strand: {strand!r} is not + or -")
            tss = _int(path, line, "CAGE_representative_TSS", row["CAGE_representative_TSS"])
            records.append(
                Record(
                    line=line,
                    chrom=row["chrom"].strip(),
                    center=tss - 1,
                    split=split,
                    label=None,
                    minus_strand=strand == "-",
                )
            )
        elif task.kind == CAGE:
            start = _int(path, line, "start", row["start"])
            stop = _int(path, line, "stop", row["stop"])
            if stop <= start:
                raise LrgenError(f"{path}: line {line}: stop {stop} is not after start {start}")
            records.append(
                Record(
                    line=line,
                    chrom=row["chrom"].strip(),
                    center=(start - 1 + stop - 1) // 2,
                    split=split,
                    label=None,
                    npy_idx=_int(path, line, "npy_idx", row["npy_idx"], False),
                )
            )
    table = TaskTable(task=task, path=path, records=records, label_names=label_names)
    if task.kind == CLASSIFICATION:
        widths = {r.label.size for r in records}
        if len(widths) != 1:
            bad = next(r for r in records if r.label.size != records[0].label.size)
            raise LrgenError(
                f"{path}: line {bad.line}: {bad.label.size} labels in {task.label_column}, "
                f"line {records[0].line} has {records[0].label.size}"
            )
        table.label_names = [f"{task.label_column}_{i}" for i in range(widths.pop())] if "POS" in task.columns else [
            task.label_column
        ]
    elif task.kind == VARIANT:
        table.label_names = [task.label_column]
    elif task.kind == BULK_RNA:
        _attach_expression(table, _find(data_dir, task.extra_files))
    elif task.kind == CAGE:
        table.targets = CageTargets(path.parent / "targets_subset")
    return table


def _attach_expression(table: TaskTable, path: Path) -> None:
    """Labels of bulk RNA genes: row ``i`` of ``rna_expression_values.csv`` belongs to row ``i`` of the coordinates.

    The labels are the numeric columns; an unnamed (index) column and text columns such as gene ids are not.
    """
    header, rows = _read_csv(path, ())
    if len(rows) != len(table.records):
        raise LrgenError(
            f"{path}: {len(rows)} rows but {table.path.name} has {len(table.records)}; the two files must be row-aligned"
        )

    def numeric(text: str | None) -> bool:
        try:
            return text is not None and math.isfinite(float(text))
        except ValueError:
            return False

    columns = [c for c in header if c.strip() and not c.startswith("Unnamed") and numeric(rows[0][1][c])]
    if not columns:
        raise LrgenError(f"{path}: line 2: no numeric expression column")
    for rec, (line, row) in zip(table.records, rows):
        rec.label = np.array([_float(path, line, c, row[c]) for c in columns], np.float32)
    table.label_names = columns


# ---------------------------------------------------------------------------------------------- windows


@dataclass
class WindowSet:
    """Records of one split whose windows passed the checks, and counts of those that did not (the
    :class:`~lrgen.training.windows.Windows` of a GLRB task)."""

    task: Task
    records: list[Record]
    context: int
    genome: object  # lrgen.io.genome.Genome
    targets: CageTargets | None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def variant(self) -> bool:
        return self.task.kind == VARIANT

    def sequence(self, rec: Record) -> str:
        """The window's bases (reverse-complemented for minus-strand genes)."""
        start, _ = centred_window(rec.center, rec.center + 1, self.context)
        seq = self.genome.fetch(rec.chrom, start, start + self.context)
        if rec.minus_strand:
            from lrgen.tokenizer import reverse_complement

            seq = reverse_complement(seq)
        return seq

    def alt_sequence(self, seq: str, rec: Record) -> str:
        mid = self.context // 2
        return seq[:mid] + rec.alt + seq[mid + 1 :]

    def labels(self, rec: Record) -> np.ndarray:
        if self.task.kind != CAGE:
            return rec.label
        full = self.targets.get(rec.split, rec.npy_idx)
        bins = cage_bins(self.context)
        trim = (CAGE_BINS - bins) // 2
        return np.log1p(full[trim : trim + bins])


def cage_bins(context: int) -> int:
    """Number of 128 bp target bins a CAGE window of ``context`` bp covers (896 at 114,688 bp and beyond)."""
    return min(CAGE_BINS, context // CAGE_BIN_BP)


def check_context(task: Task, context: int) -> None:
    """Reject contexts the task cannot use."""
    need = max(task.pool_bp, 1)
    if task.kind == CAGE:
        if context % (2 * CAGE_BIN_BP):
            raise LrgenError(f"CAGE context must be a multiple of 256 bp (even number of 128 bp bins), got {context}")
    elif context < need:
        raise LrgenError(f"{task.name} needs a context of at least {need} bp (its pooled region), got {context}")


def make_windows(
    table: TaskTable,
    records: list[Record],
    genome,
    context: int,
    max_n_fraction: float = 0.5,
) -> WindowSet:
    """Cut the windows of ``records``: skip N-heavy windows, non-SNVs and REF/ALT disagreements, and count them.

    A variant whose REF column (when the file has one) differs from the genome, or whose ALT equals the genome
    base, is skipped; if that is true of at least half of the checked variants the genome build is wrong and a
    :class:`LrgenError` says so.
    """
    task = table.task
    check_context(task, context)
    counts = {"rows": len(records), "kept": 0, "n_heavy": 0}
    if task.kind == VARIANT:
        counts.update(not_snv=0, ref_mismatch=0, alt_equals_reference=0)
    kept: list[Record] = []
    mid = context // 2
    for rec in records:
        try:
            genome.resolve(rec.chrom)
        except LrgenError:
            raise LrgenError(
                f"{table.path}: line {rec.line}: contig {rec.chrom!r} is not in the genome {genome.path}; "
                f"this task's coordinates are {task.genome}: pass the matching --genome"
            ) from None
        start, _ = centred_window(rec.center, rec.center + 1, context)
        seq = genome.fetch(rec.chrom, start, start + context)
        if task.kind == VARIANT:
            if len(rec.alt) != 1 or (rec.ref is not None and len(rec.ref) != 1):
                counts["not_snv"] += 1
                continue
            base = seq[mid]
            if rec.ref is not None and rec.ref != base:
                counts["ref_mismatch"] += 1
                continue
            if rec.alt == base:
                counts["alt_equals_reference"] += 1
                continue
        n_count = context - sum(seq.count(b) for b in "ACGT")
        if n_count > max_n_fraction * context:
            counts["n_heavy"] += 1
            continue
        kept.append(rec)
    counts["kept"] = len(kept)
    if task.kind == VARIANT:
        bad = counts["ref_mismatch"] + counts["alt_equals_reference"]
        checked = bad + len(kept)
        if checked and bad * 2 >= checked:
            raise LrgenError(
                f"{table.path}: the genome disagrees with {bad} of {checked} variants (REF differs from the genome: "
                f"{counts['ref_mismatch']}, ALT equals the genome base: {counts['alt_equals_reference']}); "
                f"is {genome.path} the {task.genome} build?"
            )
    return WindowSet(task=task, records=kept, context=context, genome=genome, targets=table.targets, counts=counts)
