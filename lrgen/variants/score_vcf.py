"""The score-vcf job: stream a VCF, score every ALT allele in shared context windows, write VCF (+ TSV), resumably."""

from __future__ import annotations

import gzip
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from lrgen.errors import LrgenError, warn
from lrgen.io.bed import RegionIndex
from lrgen.io.scored_vcf import SKIP_REASONS
from lrgen.io.streams import STDOUT_NAME, is_stdio
from lrgen.sizes import format_size
from lrgen.variants.scores import SCORES, VALUES
from lrgen.variants.triage import ON_REF_MISMATCH, Entry, triage
from lrgen.variants.windows import Window, group_windows
from lrgen.variants.writer import check_output_name

DEFAULT_RECOMPUTE_SPAN = 8192  # bp; chosen by measurement (docs/score-vcf.md)
DEFAULT_EMBEDDING_SPAN = 1536  # bp around the allele, as GLRB's variant tasks
DEFAULT_BATCH_SIZE = 16  # edited passes per batch in local mode (exact mode defaults to 1)
MIN_CONTEXT = 64
RECOMPUTING = {"llr", "embedding", "head"}  # the scores that pass edited sequences (wt-marginal reads the reference)


@dataclass
class Summary:
    """What a run did: counts by outcome and speed (this session's scored alleles per second). ``records`` and
    ``alleles`` count what lies inside ``--regions`` (all of the VCF without it), ``outside_regions`` the rest."""

    output: Path
    records: int = 0
    alleles: int = 0
    outcomes: Counter = field(default_factory=Counter)  # "scored" or a skip reason -> alleles
    not_applicable: Counter = field(default_factory=Counter)  # "score: reason" -> alleles
    outside_regions: int = 0  # records
    unknown_contigs: Counter = field(default_factory=Counter)  # contig -> alleles
    windows: int = 0
    seconds: float = 0.0
    scored_now: int = 0
    resumed: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.scored_now / self.seconds if self.seconds > 0 else 0.0

    def to_counts(self) -> dict:
        return {"records": self.records, "alleles": self.alleles, "outcomes": dict(self.outcomes),
                "not_applicable": dict(self.not_applicable), "outside_regions": self.outside_regions,
                "unknown_contigs": dict(self.unknown_contigs)}

    def restore(self, counts: dict) -> None:
        self.records, self.alleles = counts["records"], counts["alleles"]
        self.outcomes, self.not_applicable = Counter(counts["outcomes"]), Counter(counts["not_applicable"])
        self.outside_regions = counts["outside_regions"]
        self.unknown_contigs = Counter(counts["unknown_contigs"])

    def add(self, window: Window) -> None:
        for entry in window.entries:
            if entry.outside:
                self.outside_regions += 1
                continue
            self.records += 1
            for allele in entry.alleles:
                self.alleles += 1
                self.outcomes[allele.status] += 1
                if allele.skip == "unknown_contig":
                    self.unknown_contigs[allele.variant.chrom] += 1
                for score, why in allele.not_applicable.items():
                    self.not_applicable[f"{score}: {why}"] += 1


@dataclass
class ScoreVcfOptions:
    """Everything ``lrgen score-vcf`` takes (the CLI flags carry the same names); lengths in bp.

    ``model`` is a name for :func:`lrgen.models.resolve_model` or a loaded model. ``scores`` are any of ``llr``,
    ``wt-marginal``, ``embedding``, ``head`` (:mod:`lrgen.variants.scores`). ``exact`` runs full passes for every
    edited sequence; otherwise only ``recompute_span`` bp around each allele are recomputed from the reference
    pass's recorded states. ``output`` (``.vcf`` or ``.vcf.gz``) and ``tsv`` are written atomically; ``resume``
    continues an interrupted run with the same inputs and options. ``vcf`` ``-`` reads standard input, ``output``
    or ``tsv`` ``-`` writes plain text to standard output (neither can be resumed). ``dtype`` (``bfloat16`` or ``float16``) runs
    the model under autocast (scan states stay float32). ``batch_size`` defaults to ``DEFAULT_BATCH_SIZE`` (1 with
    ``exact``) and ``chunk_size`` to the engine's chunk policy.
    """

    vcf: Path
    genome: Path
    model: Any
    context: int
    output: Path
    scores: tuple[str, ...] = ("llr",)
    tsv: Path | None = None
    exact: bool = False
    resume: bool = False
    regions: Path | None = None
    recompute_span: int = DEFAULT_RECOMPUTE_SPAN
    embedding_span: int = DEFAULT_EMBEDDING_SPAN
    on_ref_mismatch: str = "skip"
    batch_size: int | None = None
    device: str = "auto"
    chunk_size: int | None = None
    dtype: str = "float32"
    command: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.vcf, self.genome, self.output = Path(self.vcf), Path(self.genome), Path(self.output)
        self.tsv = Path(self.tsv) if self.tsv is not None else None
        self.regions = Path(self.regions) if self.regions is not None else None
        self.scores = tuple(dict.fromkeys(self.scores))
        if self.batch_size is None:
            self.batch_size = 1 if self.exact else DEFAULT_BATCH_SIZE


def count_records(path: Path) -> int | None:
    """Data lines of a plain or gzip/bgzip VCF (for the progress bar's total); None for BCF."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    opener = gzip.open if magic[:2] == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as fh:
            if fh.read(3) == b"BCF":
                return None
            fh.seek(0)
            return sum(1 for line in fh if not line.startswith(b"#") and line.strip())
    except (OSError, EOFError):
        return None


def _check_streams(o: ScoreVcfOptions) -> None:
    """``-`` (standard input or output) where it can be: one reader of standard input, one writer of standard
    output, and no ``--resume`` (a stream cannot be fingerprinted or reopened)."""
    if o.resume and (is_stdio(o.vcf) or is_stdio(o.regions)):
        what = "VCF" if is_stdio(o.vcf) else "--regions BED"
        raise LrgenError(f"--resume cannot be used with the {what} read from standard input ('-'): an interrupted "
                         "run cannot tell whether the stream is the same; save it to a file to resume")
    if o.resume and is_stdio(o.output):
        raise LrgenError("--resume needs an output file: a run writing to standard output ('-o -') starts over")
    if is_stdio(o.vcf) and is_stdio(o.regions):
        raise LrgenError("standard input ('-') can be read once: give the VCF or the --regions BED as a file")
    if is_stdio(o.output) and is_stdio(o.tsv):
        raise LrgenError("-o - and --tsv - would both write to standard output: give one of them a file name")


def _check_options(o: ScoreVcfOptions) -> None:
    if not o.scores:
        raise LrgenError(f"no --score given: choose from {', '.join(SCORES)}")
    unknown = [s for s in o.scores if s not in SCORES]
    if unknown:
        raise LrgenError(f"unknown --score {unknown[0]!r}: choose from {', '.join(SCORES)}")
    if o.on_ref_mismatch not in ON_REF_MISMATCH:
        raise LrgenError(f"--on-ref-mismatch must be one of {', '.join(ON_REF_MISMATCH)}, got {o.on_ref_mismatch!r}")
    if o.context < MIN_CONTEXT:
        raise LrgenError(f"--context {o.context} is too short: use at least {MIN_CONTEXT} bp")
    if o.batch_size < 1:
        raise LrgenError(f"--batch-size must be at least 1, got {o.batch_size}")
    if "embedding" in o.scores:
        if o.embedding_span > o.context // 2:
            raise LrgenError(f"--embedding-span {o.embedding_span} bp is more than half of --context {o.context}")
        if not o.exact and o.recompute_span < o.embedding_span:
            raise LrgenError(f"--recompute-span {o.recompute_span} is shorter than --embedding-span "
                             f"{o.embedding_span}: raise it or use --exact")


def _entries(reader, genome, *, skip: int, regions: RegionIndex | None, on_ref_mismatch: str, max_allele: int,
             source: str) -> Iterator[Entry]:
    """Triaged records after the first ``skip``; records outside ``regions`` come flagged, without alleles."""
    for record, variants in reader:
        first = variants[0]
        if first.record_number <= skip:
            continue
        if regions is not None:
            contig = genome.resolve(first.chrom) if first.chrom in genome else None
            if not regions.overlaps(contig, first.start, max(first.end, first.start + 1)):
                yield Entry(record, [], contig, first.record_number, outside=True)
                continue
        yield triage(variants, record, genome, on_ref_mismatch=on_ref_mismatch, max_allele=max_allele,
                     source=source)


def score_vcf(options: ScoreVcfOptions) -> Summary:
    """Score every ALT allele of ``options.vcf`` in ``options.context``-bp windows of the genome and write the
    output VCF (and TSV); under ``torchrun`` every process calls this, windows are dealt out and rank 0 writes."""
    from lrgen.runtime.distributed import LONG_TIMEOUT, processes

    o = options
    _check_options(o)
    _check_streams(o)
    check_output_name(o.output)
    if o.tsv is not None and not is_stdio(o.tsv) and not o.tsv.parent.is_dir():
        raise LrgenError(f"the folder of --tsv {o.tsv} does not exist")
    if o.tsv is not None and o.tsv.is_dir():
        raise LrgenError(f"--tsv {o.tsv} is a folder: name a file in it, e.g. {o.tsv / 'scored.tsv'}")
    if not is_stdio(o.vcf) and not is_stdio(o.output) and o.output.resolve() == o.vcf.resolve():
        raise LrgenError(f"output {o.output} would overwrite the input VCF: choose another name")
    with processes(o.device, timeout=LONG_TIMEOUT) as procs:
        if procs.distributed and any(is_stdio(p) for p in (o.vcf, o.output, o.tsv, o.regions)):
            raise LrgenError("'-' (standard input or output) needs one process: under torchrun give file names")
        # writing to standard output, the partial folder lives in a temporary folder of its own
        scratch = Path(tempfile.mkdtemp(prefix="lrgen-score-vcf-")) if is_stdio(o.output) else None
        try:
            return _score(o, procs, work=scratch / "stdout.vcf" if scratch else o.output)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)


def _score(o: ScoreVcfOptions, procs, work: Path) -> Summary:
    """The run, its partial folder beside ``work`` (the output file, or a stand-in for standard output)."""
    from rich.console import Console

    from lrgen.engine import default_chunk_size
    from lrgen.io.bed import ignored_note, read_bed
    from lrgen.io.genome import Genome
    from lrgen.io.vcf import open_vcf
    from lrgen.models.resolve import resolve_model
    from lrgen.runtime.device import parse_dtype
    from lrgen.runtime.partial import PartialFolder
    from lrgen.variants.resume import Bodies
    from lrgen.variants.shards import merge_shards

    # soft_wrap: a summary line is not cut at 80 columns when stderr is a file or a pipe (a log, the demo's output)
    console = Console(stderr=True, quiet=not o.progress or not procs.is_main, soft_wrap=True)
    dtype = parse_dtype(o.dtype)
    reference = Genome(o.genome)
    ignored: Counter = Counter()
    regions = RegionIndex(read_bed(o.regions, reference, ignored), reference) if o.regions is not None else None
    if ignored and procs.is_main:
        warn(ignored_note(o.regions, ignored))
    reader = open_vcf(o.vcf)
    needs = ("per_base", "streamable", "head") if "head" in o.scores else ("per_base", "streamable")
    resolved = resolve_model(o.model).require(*needs, command="score-vcf").to(procs.device)
    model, finetuned = resolved.model, resolved.finetuned if "head" in o.scores else None
    chunk_size = o.chunk_size or default_chunk_size(procs.device)
    if finetuned is not None and not o.exact and o.recompute_span < finetuned.allele_width:
        raise LrgenError(f"--recompute-span {o.recompute_span} is shorter than the head's pooled region "
                         f"({finetuned.allele_width} bp): raise it or use --exact")
    values = tuple(v for s in o.scores for v in VALUES[s])
    if is_stdio(o.vcf):
        vcf_fingerprint: dict = {"vcf": "-"}  # never resumed (_check_streams)
    else:
        stat = o.vcf.stat()
        vcf_fingerprint = {"vcf": str(o.vcf.resolve()), "vcf_size": stat.st_size, "vcf_mtime": stat.st_mtime_ns}
    settings = {
        **vcf_fingerprint,
        "genome": str(o.genome.resolve()), "model": resolved.label, "context": o.context, "scores": list(o.scores),
        "exact": o.exact, "recompute_span": None if o.exact else o.recompute_span, "embedding_span": o.embedding_span,
        "regions": str(o.regions.resolve()) if o.regions is not None else None, "on_ref_mismatch": o.on_ref_mismatch,
        "dtype": o.dtype or "float32", "processes": procs.world_size,
    }
    meta = {
        "command": o.command or f"score_vcf({o.vcf}, genome={o.genome}, model={resolved.label}, context={o.context})",
        "model": f"{resolved.label} (family {resolved.family}, "
                 f"{'RC-equivariant' if model.rc_equivariant else 'strands conjoined post hoc'}"
                 f"{'' if resolved.trained else ', architecture only: random weights'})",
        "context": format_size(o.context),
    }
    if RECOMPUTING & set(o.scores):
        meta["recompute"] = "exact" if o.exact else f"local, recompute span {format_size(o.recompute_span)}"
    partial = PartialFolder(work, settings, procs)
    partial.open(o.resume)  # outside the try: a refused resume keeps its state
    bodies = Bodies(partial)
    summary = Summary(o.output)
    summary.resumed = bodies.start(meta)  # so is a damaged folder, named in the error
    if resolved.warning and procs.is_main:  # the work starts: nothing is refused from here on
        warn(resolved.warning)
    try:
        if summary.resumed:
            summary.restore(bodies.counts)
            summary.windows = bodies.windows
            console.print(f"resuming {o.output}: {bodies.records:,} records already done")
        _run(o, reader, reference, model, finetuned, bodies, summary, console, procs, values=values,
             chunk_size=chunk_size, regions=regions, total=count_records(reader.path), dtype=dtype)
        bodies.close()
        procs.barrier()  # every process's windows are on disk
        if procs.is_main:
            if procs.distributed:
                merged = partial.root / "merged.vcf", partial.root / "merged.tsv"
                summary.restore(_sum_counts(merge_shards(partial, procs.world_size, *merged)))
                summary.scored_now = summary.outcomes.get("scored", 0)
            else:
                merged = bodies.vcf_body, bodies.tsv_body
            _finish(reader, bodies, summary, o.output, o.tsv, values, merged, conjoined=not model.rc_equivariant)
            partial.remove()
    except LrgenError:
        bodies.close()
        partial.remove()
        raise
    except BaseException:
        bodies.close()
        if is_stdio(o.vcf) or is_stdio(o.output):  # a stream cannot be resumed: nothing to keep
            partial.remove()
        else:
            console.print(f"[yellow]stopped; progress kept in {partial.root}: rerun with --resume to continue[/]")
        raise
    finally:
        reader.close()
        reference.close()
    if procs.is_main:
        print_summary(summary, console)
    return summary


def _run(o: ScoreVcfOptions, reader, genome, model, finetuned, bodies, summary: Summary, console, procs, *,
         values, chunk_size, regions, total, dtype) -> None:
    from lrgen.runtime.progress import progress_bar
    from lrgen.variants.passes import WindowPasses
    from lrgen.variants.scores import passes_needed, score_window
    from lrgen.variants.writer import tsv_lines, vcf_line

    entries = _entries(reader, genome, skip=bodies.records, regions=regions, on_ref_mismatch=o.on_ref_mismatch,
                       max_allele=o.context // 4, source=reader.name)
    started = time.perf_counter()
    with progress_bar("scoring", fields=("rate",), transient=False, elapsed=True, show=o.progress and procs.is_main,
                      unit="records") as bar:
        task = bar.add_task("score", total=total, completed=bodies.records, rate="")
        for index, window in enumerate(group_windows(entries, o.context), start=bodies.windows):
            mine = procs.owns(index)
            alleles = window.alleles() if mine else []
            if alleles:
                ids = model.tokenizer.encode(genome.fetch(window.contig, window.start, window.end))
                span = None if o.exact else o.recompute_span
                passes = WindowPasses(model, ids, conjoin=not model.rc_equivariant, chunk_size=chunk_size,
                                      batch_size=o.batch_size, recompute_span=span, dtype=dtype,
                                      edits=bool({"llr", "embedding"} & set(o.scores)))
                share = len(window.entries) / max(1, passes_needed(window, o.scores))
                base = bar.tasks[0].completed

                def tick(n: int, share=share) -> None:
                    bar.update(task, advance=n * share)

                head = None
                if finetuned is not None:
                    head = (finetuned, WindowPasses(model, ids, conjoin=finetuned.spec.conjoin, chunk_size=chunk_size,
                                                    batch_size=o.batch_size, recompute_span=span, dtype=dtype))
                score_window(window, passes, o.scores, embedding_span=o.embedding_span, tick=tick, head=head)
                bar.update(task, completed=base)
            written = [e for e in window.entries if not e.outside and mine]
            if mine:
                summary.add(window)
                summary.scored_now += sum(1 for a in alleles if a.status == "scored")
            bodies.commit("".join(vcf_line(e, values) for e in written),
                          "".join(tsv_lines(e, values) for e in written),
                          records=window.entries[-1].number - bodies.records, counts=summary.to_counts(), scored=mine)
            summary.windows += 1
            elapsed = time.perf_counter() - started
            rate = f"{summary.scored_now / elapsed:,.1f} variants/s" if elapsed > 0 else ""
            bar.update(task, advance=len(window.entries), rate=rate)
    summary.seconds = time.perf_counter() - started


def _finish(reader, bodies, summary: Summary, out: Path, tsv: Path | None, values, merged: tuple[Path, Path], *,
            conjoined: bool) -> None:
    """Write the output VCF (and TSV) from the finished bodies, each atomically."""
    from lrgen.variants.writer import assemble_tsv, assemble_vcf, header_text, tsv_header

    header = header_text(str(reader.header), values, bodies.meta, conjoined)
    warning = assemble_vcf(out, header, merged[0], bodies.folder)
    if warning:
        summary.warnings.append(warning)
    if tsv is not None:
        assemble_tsv(tsv, tsv_header(values), merged[1], bodies.folder)


def _sum_counts(shards: list[dict]) -> dict:
    total: dict = {"records": 0, "alleles": 0, "outside_regions": 0}
    for counts in shards:
        for key, value in counts.items():
            if isinstance(value, dict):
                total[key] = dict(Counter(total.get(key, {})) + Counter(value))
            else:
                total[key] += value
    return total


def print_summary(summary: Summary, console) -> None:
    """The end-of-run report: scored, skipped by reason, not-applicable scores, speed."""
    scored = summary.outcomes.get("scored", 0)
    if summary.scored_now:
        speed = f"{summary.rate:,.1f} variants/s over {summary.seconds:,.1f} s{', resumed' if summary.resumed else ''}"
    else:
        speed = "resumed: nothing left to score" if summary.resumed else f"{summary.seconds:,.1f} s"
    inside = " in --regions" if summary.outside_regions else ""
    output = STDOUT_NAME if is_stdio(summary.output) else summary.output
    console.print(f"[bold]{output}[/]: {summary.records:,} records{inside}, {summary.alleles:,} ALT alleles, "
                  f"{scored:,} scored in {summary.windows:,} window{'s' if summary.windows != 1 else ''} ({speed})")
    for reason, n in sorted(summary.outcomes.items()):
        if reason != "scored":
            console.print(f"  skipped {n:,}: {reason} — {SKIP_REASONS[reason]}")
    for contig, n in sorted(summary.unknown_contigs.items()):
        console.print(f"  contig {contig!r} is not in the genome: {n:,} alleles")
    if summary.outside_regions:
        console.print(f"  {summary.outside_regions:,} records outside --regions (not written)")
    for what, n in sorted(summary.not_applicable.items()):
        console.print(f"  no value for {n:,}: {what}")
    for warning in summary.warnings:
        console.print(f"  [yellow]warning[/]: {warning}")
