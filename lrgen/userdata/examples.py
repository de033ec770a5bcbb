"""A user-data task and its examples: window centres with labels, and the contigs held out for validation and test.

- ``regions``: windows centred on each positive region (duplicates once) and on each negative; labels 1/0, or with
  classes (:func:`~lrgen.userdata.inputs.region_classes`) one per class: whether the record's pooled centre touches
  a region of that class. Negatives are read from a BED or drawn (:mod:`lrgen.userdata.negatives`).
- ``tracks``: windows tiled end to end over ``regions`` (merged) or over every contig a bigWig covers; the targets
  are read from the bigWigs per window (:class:`~lrgen.userdata.inputs.Targets`).
- ``table``: one window per row, centred on the region or with the variant's first REF base at the centre.

The pooled width of ``regions`` and table regions is the median region length, clipped to
[:data:`MIN_POOL_BP`, context]; variants pool :data:`VARIANT_POOL_BP` (GLRB's), at most the context.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lrgen.errors import LrgenError
from lrgen.io.bed import Region, RegionIndex, centred_window, merge_regions
from lrgen.io.genome import Genome
from lrgen.userdata.inputs import Targets, read_regions, read_table, region_classes
from lrgen.userdata.negatives import draw_negatives

KINDS = ("regions", "tracks", "table")
MIN_POOL_BP = 100
VARIANT_POOL_BP = 1536
#: the default held-out contigs each hold at least this share of the examples
HELD_OUT_SHARE = 0.1
_INPUTS = {"regions": ("positives",), "tracks": ("targets",), "table": ("table",)}
_FLAGS = {"positives": "--positives", "negatives": "--negatives", "targets": "--targets", "regions": "--regions",
          "table": "--table"}
_OPTIONAL = {"regions": ("negatives",), "tracks": ("regions",), "table": ()}


@dataclass(kw_only=True)
class UserInputs:
    """The inputs of a user task and its held-out contigs, named as the CLI flags name them."""

    positives: str | None = None
    negatives: str | None = None
    negatives_per_positive: int = 1
    targets: list[str] = field(default_factory=list)
    bin_size: int = 128
    regions: str | None = None
    table: str | None = None
    valid_chroms: list[str] = field(default_factory=list)
    test_chroms: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class UserTask(UserInputs):
    """What a user-data model was trained on, as its ``task.json`` records it (paths absolute)."""

    kind: str
    genome: str
    context: int
    seed: int = 0
    max_n_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LrgenError(f"unknown user task {self.kind!r}: choose one of {', '.join(KINDS)}")
        for name in _INPUTS[self.kind]:
            if not getattr(self, name):
                raise LrgenError(f"--task {self.kind} needs {_FLAGS[name]}")
        for name in _FLAGS:
            if getattr(self, name) and name not in _INPUTS[self.kind] + _OPTIONAL[self.kind]:
                raise LrgenError(f"{_FLAGS[name]} does not apply to --task {self.kind}")
        if self.negatives_per_positive < 1:
            raise LrgenError(f"--negatives-per-positive must be at least 1, got {self.negatives_per_positive}")
        if self.bin_size < 1:
            raise LrgenError(f"--bin-size must be at least 1, got {self.bin_size}")
        absolute = lambda p: str(Path(p).expanduser().resolve()) if p else p  # noqa: E731
        self.genome = absolute(self.genome)
        for name in ("positives", "negatives", "regions", "table"):
            setattr(self, name, absolute(getattr(self, name)))
        self.targets = [absolute(p) for p in self.targets]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> UserTask:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Example:
    """One window centre (0-based, on the genome's contig) and its labels (None: read from the bigWigs); variants
    carry REF and ALT (``tissue`` is always None: user variants have no tissue)."""

    chrom: str
    center: int
    label: np.ndarray | None
    ref: str | None = None
    alt: str | None = None
    tissue: None = None


@dataclass
class Examples:
    """Every example of a task, how they are labelled and pooled, and counts for the summary."""

    records: list[Example]
    label_names: list[str]
    binary: bool
    pooling: str  # centre, bins or variant
    pool_bp: int
    counts: dict[str, int]
    targets: Targets | None = None


def build_examples(task: UserTask, genome: Genome) -> Examples:
    """The examples of ``task`` on ``genome`` (deterministic for the task's seed)."""
    return {"regions": _regions, "tracks": _tracks, "table": _table}[task.kind](task, genome)


def _pool_bp(lengths: list[int], context: int) -> int:
    return int(min(max(np.median(lengths), MIN_POOL_BP), context))


def _regions(task: UserTask, genome: Genome) -> Examples:
    regions = read_regions(task.positives, genome)
    classes = region_classes(task.positives, regions)
    unique: dict[tuple[str, int, int], Region] = {}
    for r in regions:
        unique.setdefault((r.chrom, r.start, r.end), r)
    positives = list(unique.values())
    pool = _pool_bp([len(r) for r in positives], task.context)
    counts = {"positives": len(positives)}
    if task.negatives:
        negatives = read_regions(task.negatives, genome)
    else:
        drawn = draw_negatives(positives, genome, task.negatives_per_positive, pool, task.seed)
        negatives, counts["positives_short_of_negatives"] = drawn.regions, drawn.short
    counts["negatives"] = len(negatives)
    if classes:
        index = [RegionIndex([r for r in regions if r.name == c], genome) for c in classes]

        def label(r: Region) -> np.ndarray:
            lo, hi = centred_window(r.start, r.end, pool)
            return np.array([i.overlaps(r.chrom, lo, hi) for i in index], np.float32)
    else:
        classes = [Path(task.positives).name.split(".")[0]]

        def label(r: Region) -> np.ndarray:
            return np.ones(1, np.float32)

    records = [Example(r.chrom, (r.start + r.end) // 2, label(r)) for r in positives]
    records += [Example(r.chrom, (r.start + r.end) // 2, np.zeros(len(classes), np.float32)) for r in negatives]
    return Examples(records, classes, True, "centre", pool, counts)


def _tracks(task: UserTask, genome: Genome) -> Examples:
    targets = Targets(task.targets, genome, task.bin_size)
    if task.context % (2 * task.bin_size):
        raise LrgenError(f"--context {task.context} must be a multiple of {2 * task.bin_size} bp (an even number of "
                         f"--bin-size {task.bin_size} bins)")
    if task.regions:
        regions = merge_regions(read_regions(task.regions, genome), list(genome.contig_sizes))
    else:
        regions = [Region(c, 0, n) for c, n in genome.contig_sizes.items() if c in targets.contigs]
    half = task.context // 2
    records = [Example(r.chrom, start + half, None) for r in regions
               for start in range(r.start, r.end, task.context)]
    return Examples(records, targets.names, False, "bins", 0, {"regions": len(regions)}, targets)


def _table(task: UserTask, genome: Genome) -> Examples:
    table = read_table(task.table, genome)
    if table.variant:
        records = [Example(r.chrom, r.start, r.labels, r.ref, r.alt) for r in table.rows]
        pooling, pool = "variant", min(VARIANT_POOL_BP, task.context)
    else:
        records = [Example(r.chrom, (r.start + r.end) // 2, r.labels) for r in table.rows]
        pooling, pool = "centre", _pool_bp([r.end - r.start for r in table.rows], task.context)
    return Examples(records, table.label_names, table.binary, pooling, pool, {"rows": len(table.rows)})


def _named(names: list[str], flag: str, genome: Genome) -> list[str]:
    try:
        return [genome.resolve(n) for n in names]
    except LrgenError as err:
        raise LrgenError(f"{flag}: {err}") from None


def split_examples(task: UserTask, examples: Examples, genome: Genome) -> dict[str, list[Example]]:
    """Train, validation and test examples by contig. Contigs not named by ``--valid-chroms``/``--test-chroms`` are
    chosen from the end of the FASTA's contig order: test takes contigs holding examples until they hold
    :data:`HELD_OUT_SHARE` of them, validation the next ones likewise; ``task`` records the choice."""
    per_contig = Counter(r.chrom for r in examples.records)
    total = sum(per_contig.values())
    valid, test = _named(task.valid_chroms, "--valid-chroms", genome), _named(task.test_chroms, "--test-chroms", genome)
    both = set(valid) & set(test)
    if both:
        raise LrgenError(f"contig {sorted(both)[0]} is in both --valid-chroms and --test-chroms")
    for held in (test, valid):
        if held:
            continue
        for contig in reversed(list(genome.contig_sizes)):
            if sum(per_contig[c] for c in held) >= HELD_OUT_SHARE * total:
                break
            if per_contig[contig] and contig not in valid + test:
                held.append(contig)
    task.valid_chroms, task.test_chroms = valid, test
    splits = {"train": [], "valid": [], "test": []}
    for rec in examples.records:
        splits["valid" if rec.chrom in valid else "test" if rec.chrom in test else "train"].append(rec)
    for name, flag in (("train", None), ("valid", "--valid-chroms"), ("test", "--test-chroms")):
        if not splits[name]:
            where = f"on {flag} {','.join(valid if name == 'valid' else test)}" if flag else "left for training"
            raise LrgenError(f"no {name} examples {where}: the examples lie on {len(per_contig)} contig(s); choose "
                             "--valid-chroms and --test-chroms that hold some and leave some for training")
    return splits

