"""The score-vcf job: stream a VCF, score every ALT allele in shared context windows, write VCF (+ TSV), resumably."""

from __future__ import annotations

import bisect
import gzip
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from lrgen.errors import LrgenError
from lrgen.sizes import format_size, parse_size
from lrgen.variants.resume import PartialRun
from lrgen.variants.scores import SCORES, VALUES
from lrgen.variants.shards import Shard, merge_shards
from lrgen.variants.triage import ON_REF_MISMATCH, SKIP_REASONS, Entry, triage
from lrgen.variants.windows import Window, group_windows

DEFAULT_RECOMPUTE_SPAN = 8192  # bp; chosen by measurement (docs/score-vcf.md)
DEFAULT_EMBEDDING_SPAN = 1536  # bp around the allele, as GLRB's variant tasks
DEFAULT_BATCH_SIZE = 16  # edited passes per batch in local mode (exact mode defaults to 1)
MIN_CONTEXT = 64


@dataclass
class Summary:
    """What a run did: counts by outcome and speed (this session's scored alleles per second)."""

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
            self.records += 1
            if entry.outside:
                self.outside_regions += 1
                continue
            for allele in entry.alleles:
                self.alleles += 1
                self.outcomes[allele.status] += 1
                if allele.skip == "unknown_contig":
                    self.unknown_contigs[allele.variant.chrom] += 1
                for score, why in allele.not_applicable.items():
                    self.not_applicable[f"{score}: {why}"] += 1


class RegionFilter:
    """Whether a record's REF span overlaps any ``--regions`` interval (contig names resolved by the genome)."""

    def __init__(self, path: Path, genome) -> None:
        from lrgen.io.bed import read_bed

        spans: dict[str, list[tuple[int, int]]] = {}
        for region in read_bed(path, genome):
            spans.setdefault(genome.resolve(region.chrom), []).append((region.start, region.end))
        self.starts: dict[str, list[int]] = {}
        self.ends: dict[str, list[int]] = {}
        for contig, pairs in spans.items():
            merged: list[list[int]] = []
            for start, end in sorted(pairs):
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self.starts[contig] = [m[0] for m in merged]
            self.ends[contig] = [m[1] for m in merged]

    def overlaps(self, contig: str | None, start: int, end: int) -> bool:
        """``[start, end)`` (0-based) touches a region of ``contig``."""
        if contig not in self.starts:
            return False
        i = bisect.bisect_left(self.starts[contig], end)  # regions starting before `end`
        return i > 0 and self.ends[contig][i - 1] > start


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


def _check_options(scores, context, recompute_span, embedding_span, on_ref_mismatch, exact) -> None:
    if not scores:
        raise LrgenError(f"no --score given: choose from {', '.join(SCORES)}")
    unknown = [s for s in scores if s not in SCORES]
    if unknown:
        raise LrgenError(f"unknown --score {unknown[0]!r}: choose from {', '.join(SCORES)}")
    if on_ref_mismatch not in ON_REF_MISMATCH:
        raise LrgenError(f"--on-ref-mismatch must be one of {', '.join(ON_REF_MISMATCH)}, got {on_ref_mismatch!r}")
    if context < MIN_CONTEXT:
        raise LrgenError(f"--context {context} is too short: use at least {MIN_CONTEXT} bp")
    if "embedding" in scores:
        if embedding_span > context // 2:
            raise LrgenError(f"embedding span {embedding_span} bp is more than half of --context {context}")
        if not exact and recompute_span < embedding_span:
            raise LrgenError(
                f"--recompute-span {recompute_span} is shorter than the embedding span {embedding_span}: "
                f"raise it or use --exact"
            )


def _load(model, device: str | None, scores: tuple[str, ...]):
    """``(backbone, fine-tuned variant model or None)`` on the device; refuses models that cannot score."""
    import torch

    import lrgen
    from lrgen.finetune.checkpoint import is_finetuned, load_finetuned

    target = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    finetuned = None
    if isinstance(model, str) and Path(model).is_dir() and is_finetuned(model):
        finetuned, _ = load_finetuned(model)
        backbone = finetuned.backbone
    else:
        backbone = lrgen.load_model(model) if isinstance(model, str) else model
    if "head" in scores and (finetuned is None or finetuned.task.kind != "variant"):
        what = f"a model fine-tuned on {finetuned.task.name}" if finetuned is not None else "not a fine-tuned model"
        raise LrgenError(
            f"--score head is not available for model {model!r} ({what}): it needs a model folder from "
            f"`lrgen finetune` on a variant task (variant_effect_causal_eqtl, variant_effect_pathogenic_clinvar)"
        )
    if getattr(backbone, "tokenizer_kind", "char") != "char" or not getattr(backbone, "streamable", False):
        family = getattr(backbone, "family", type(backbone).__name__)
        raise LrgenError(
            f"model {model if isinstance(model, str) else family!r} ({family}) cannot score variants: score-vcf needs "
            f"a streamable single-nucleotide model (Caduceus or Hawk); NTv2's 6-mer tokens have no per-base logits"
        )
    backbone.to(target).eval()
    if finetuned is not None:
        finetuned.to(target).eval()
    return backbone, finetuned


def _entries(reader, genome, *, skip: int, regions: RegionFilter | None, on_ref_mismatch: str, max_allele: int,
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


def score_vcf(
    vcf: str | os.PathLike,
    genome: str | os.PathLike,
    model,
    context: str | int,
    out: str | os.PathLike,
    *,
    scores: tuple[str, ...] | list[str] = ("llr",),
    tsv: str | os.PathLike | None = None,
    exact: bool = False,
    resume: bool = False,
    regions: str | os.PathLike | None = None,
    recompute_span: str | int = DEFAULT_RECOMPUTE_SPAN,
    embedding_span: str | int = DEFAULT_EMBEDDING_SPAN,
    on_ref_mismatch: str = "skip",
    batch_size: int | None = None,
    device: str | None = None,
    chunk_size: str | int | None = None,
    dtype: str | None = None,
    command: str | None = None,
    progress: bool = True,
) -> Summary:
    """Score every ALT allele of ``vcf`` with ``model`` in ``context``-bp windows of ``genome``; write ``out``.

    ``scores`` are any of ``llr``, ``wt-marginal``, ``embedding``, ``head`` (see :mod:`lrgen.variants.scores`).
    ``exact`` runs full passes for every edited sequence, otherwise only ``recompute_span`` bp around each allele
    are recomputed from the reference pass's recorded states. ``out`` (``.vcf`` or ``.vcf.gz``) and ``tsv`` are
    written atomically; ``resume`` continues an interrupted run with the same inputs and options. ``dtype``
    (``bfloat16`` or ``float16``) runs the model under autocast (scan states stay float32). ``batch_size`` and
    ``chunk_size`` default to ``DEFAULT_BATCH_SIZE`` (1 with ``exact``) and the engine's
    :func:`~lrgen.engine.chunks.default_chunk_size` for the model's device.
    """
    import torch
    from rich.console import Console

    from lrgen.engine.chunks import check_positive, default_chunk_size
    from lrgen.io.genome import Genome
    from lrgen.io.vcf import open_vcf
    from lrgen.variants.writer import check_output_name

    scores = tuple(dict.fromkeys(scores))
    context = parse_size(context)
    recompute_span = parse_size(recompute_span)
    embedding_span = parse_size(embedding_span)
    chunk_size = None if chunk_size is None else parse_size(chunk_size)
    _check_options(scores, context, recompute_span, embedding_span, on_ref_mismatch, exact)
    batch_size = batch_size or (1 if exact else DEFAULT_BATCH_SIZE)
    if dtype not in (None, "float32", "bfloat16", "float16"):
        raise LrgenError(f"--dtype must be float32, bfloat16 or float16, got {dtype!r}")
    if batch_size < 1:
        raise LrgenError(f"--batch-size must be at least 1, got {batch_size}")
    vcf, out = Path(vcf), Path(out)
    tsv = Path(tsv) if tsv is not None else None
    check_output_name(out)
    if tsv is not None and not tsv.parent.is_dir():
        raise LrgenError(f"the folder of --tsv {tsv} does not exist")
    if out.resolve() == vcf.resolve():
        raise LrgenError(f"output {out} would overwrite the input VCF: choose another name")
    shard = Shard.from_env()
    console = Console(stderr=True, quiet=not progress or shard.rank != 0)

    reference = Genome(genome)
    region_filter = RegionFilter(Path(regions), reference) if regions is not None else None
    reader = open_vcf(vcf)
    if device is None and shard.sharded and torch.cuda.is_available():
        device = f"cuda:{shard.local_rank}"
    loaded, finetuned = _load(model, device, scores)
    chunk_size = check_positive("chunk_size", default_chunk_size(loaded.device) if chunk_size is None else chunk_size)
    if finetuned is not None and "head" in scores and not exact and recompute_span < finetuned.task.pool_bp:
        raise LrgenError(f"--recompute-span {recompute_span} is shorter than the head's pooled region "
                         f"({finetuned.task.pool_bp} bp): raise it or use --exact")
    values = tuple(v for s in scores for v in VALUES[s])
    model_name = model if isinstance(model, str) else getattr(loaded, "family", type(loaded).__name__)
    stat = vcf.stat()
    fingerprint = {
        "vcf": str(vcf.resolve()), "vcf_size": stat.st_size, "vcf_mtime": stat.st_mtime_ns,
        "genome": str(Path(genome).resolve()), "model": str(model_name), "context": context, "scores": list(scores),
        "exact": exact, "recompute_span": None if exact else recompute_span, "embedding_span": embedding_span,
        "regions": str(Path(regions).resolve()) if regions is not None else None, "on_ref_mismatch": on_ref_mismatch,
        "dtype": dtype or "float32", "processes": shard.world,
    }
    meta = {
        "command": command or f"score_vcf({vcf}, genome={genome}, model={model_name}, context={context})",
        "model": f"{model_name} (family {getattr(loaded, 'family', '?')}, "
                 f"{'RC-equivariant' if loaded.rc_equivariant else 'strands conjoined post hoc'})",
        "context": format_size(context),
        "recompute": "exact" if exact else f"local, recompute span {format_size(recompute_span)}",
    }
    partial = PartialRun(out, rank=shard.rank if shard.sharded else None)
    summary = Summary(out)
    summary.resumed = partial.start(fingerprint, resume, meta)  # outside the try: a refused resume keeps its state
    try:
        if summary.resumed:
            summary.restore(partial.counts)
            summary.windows = partial.windows
            console.print(f"resuming {out}: {partial.records:,} records already done")
        _run(reader, reference, loaded, finetuned, partial, summary, console, shard,
             scores=scores, values=values, context=context, exact=exact, recompute_span=recompute_span,
             embedding_span=embedding_span, on_ref_mismatch=on_ref_mismatch, batch_size=batch_size,
             chunk_size=chunk_size, regions=region_filter, source=str(vcf), total=count_records(vcf),
             dtype=None if dtype in (None, "float32") else getattr(torch, dtype))
        if shard.sharded:
            shard.barrier()  # every shard's windows are on disk
            if shard.rank != 0:
                partial.close()
                return summary
            bodies = partial.root / "merged.vcf", partial.root / "merged.tsv"
            summary.restore(_sum_counts(merge_shards(partial.root, shard.world, *bodies)))
            summary.scored_now = summary.outcomes.get("scored", 0)
        else:
            bodies = partial.vcf_body, partial.tsv_body
        _finish(reader, partial, summary, out, tsv, values, bodies)
    except LrgenError:
        partial.discard()
        raise
    except BaseException:
        partial.close()
        console.print(f"[yellow]stopped; progress kept in {partial.folder}: rerun with --resume to continue[/]")
        raise
    finally:
        reader.close()
        reference.close()
    print_summary(summary, console)
    return summary


def _run(reader, genome, model, finetuned, partial: PartialRun, summary: Summary, console, shard: Shard, *, scores,
         values, context, exact, recompute_span, embedding_span, on_ref_mismatch, batch_size, chunk_size, regions,
         source, total, dtype) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from lrgen.tokenizer import encode
    from lrgen.variants.passes import WindowPasses
    from lrgen.variants.scores import passes_needed, score_window
    from lrgen.variants.writer import tsv_lines, vcf_line

    entries = _entries(reader, genome, skip=partial.records, regions=regions, on_ref_mismatch=on_ref_mismatch,
                       max_allele=context // 4, source=source)
    columns = [TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    started = time.perf_counter()
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("score", total=total, completed=partial.records, rate="")
        for index, window in enumerate(group_windows(entries, context), start=partial.windows):
            mine = shard.owns(index)
            alleles = window.alleles() if mine else []
            if alleles:
                ids = encode(genome.fetch(window.contig, window.start, window.end))
                span = None if exact else recompute_span
                passes = WindowPasses(model, ids, conjoin=not model.rc_equivariant, chunk_size=chunk_size,
                                      batch_size=batch_size, recompute_span=span, dtype=dtype,
                                      edits=bool({"llr", "embedding"} & set(scores)))
                share = len(window.entries) / max(1, passes_needed(window, scores))
                base = bar.tasks[0].completed

                def tick(n: int, share=share) -> None:
                    bar.update(task, advance=n * share)

                head = None
                if finetuned is not None and "head" in scores:
                    head = (finetuned, WindowPasses(model, ids, conjoin=finetuned.spec.conjoin, chunk_size=chunk_size,
                                                    batch_size=batch_size, recompute_span=span, dtype=dtype))
                score_window(window, passes, scores, embedding_span=embedding_span, tick=tick, head=head)
                bar.update(task, completed=base)
            written = [e for e in window.entries if not e.outside and mine]
            if mine:
                summary.add(window)
                summary.scored_now += sum(1 for a in alleles if a.status == "scored")
            partial.commit("".join(vcf_line(e, values) for e in written),
                           "".join(tsv_lines(e, values) for e in written),
                           records=window.entries[-1].number - partial.records, counts=summary.to_counts(), scored=mine)
            summary.windows += 1
            elapsed = time.perf_counter() - started
            rate = f"{summary.scored_now / elapsed:,.1f} variants/s" if elapsed > 0 else ""
            bar.update(task, advance=len(window.entries), rate=rate)
    summary.seconds = time.perf_counter() - started


def _finish(reader, partial: PartialRun, summary: Summary, out: Path, tsv: Path | None, values,
            bodies: tuple[Path, Path]) -> None:
    from lrgen.variants.writer import assemble_tsv, assemble_vcf, header_text, tsv_header

    partial.close()
    header = header_text(str(reader.header), values, partial.meta)
    warning = assemble_vcf(out, header, bodies[0], partial.folder)
    if warning:
        summary.warnings.append(warning)
    if tsv is not None:
        assemble_tsv(tsv, tsv_header(values), bodies[1], partial.folder)
    partial.discard(everything=True)


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
    console.print(f"[bold]{summary.output}[/]: {summary.records:,} records, {summary.alleles:,} ALT alleles, "
                  f"{scored:,} scored in {summary.windows:,} windows "
                  f"({summary.rate:,.1f} variants/s over {summary.seconds:,.1f} s"
                  f"{', resumed' if summary.resumed else ''})")
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
