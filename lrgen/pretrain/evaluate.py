"""Masked-LM perplexity and accuracy of a model at a list of context lengths (``lrgen evaluate --task mlm``).

Windows are nested: ``windows`` centres are drawn once (seeded) where the largest feasible context (or
``centre_span``, when given) fits with at most 10% N, and the window of every context is centred on the same points,
so the curve compares context lengths on the same DNA rather than on different draws; calls with the same
``centre_span`` and seed use the same centres whatever contexts they evaluate. Each window is masked as in training (15%, 80/10/10; the draw is
seeded by ``(seed, context, window)``) and the loss is taken over all its masked positions. Streamable models
(Caduceus, Hawk) run through the chunked engine (:func:`lrgen.engine.stream`); NTv2 runs its full forward and each
row records whether the context exceeds the context it was pretrained at (known when the model is an lrgen run
directory) — running out of GPU memory is recorded as that row's error, and longer contexts are then skipped.

``perplexity`` is per token (per base for character models, per 6-mer for NTv2); ``perplexity_per_base`` is
``exp(loss / bases per target)``, the number comparable across tokenizers. Each row keeps every window's sums
(``per_window``: loss sum, masked targets, correct) and a 95% percentile bootstrap interval of the perplexity per
base over windows (``perplexity_per_base_ci``: windows resampled with replacement, their sums pooled; seeded).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from lrgen.engine import default_chunk_size, forward
from lrgen.errors import LrgenError
from lrgen.pretrain.data import WindowSampler, derive_seed, load_species, tokenize_windows, whole_segments
from lrgen.pretrain.masking import MaskingScheme, mask_tokens, mlm_sums, summarize
from lrgen.runtime.device import resolve_device
from lrgen.runtime.files import atomic_path, atomic_write_text
from lrgen.sizes import format_size

_EVAL_STREAM = 0xE7A1
_BOOTSTRAP_STREAM = 0xB007
MAX_N_FRACTION = 0.1
BOOTSTRAP_RESAMPLES = 1000


@dataclass
class MlmOptions:
    """Everything ``lrgen evaluate --task mlm`` takes (the CLI flags carry the same names): ``context`` is the list
    of contexts, ``output`` a folder for ``mlm.json``, ``mlm.tsv`` and ``mlm.png``, ``chunk_size`` defaults to the
    engine's chunk policy; ``centre_span`` (library only) is the span the window centres are drawn for (default: the
    largest feasible context)."""

    model: str
    fasta: list[str]
    context: list[int]
    windows: int = 8
    chunk_size: int | None = None
    device: str = "auto"
    seed: int = 0
    output: str | None = None
    centre_span: int | None = None


def evaluate_mlm(options: MlmOptions) -> dict:
    """Perplexity and masked accuracy of ``options.model`` on ``options.fasta`` at each context.

    Returns ``{"model", "family", "parameters", "trained_context", "results": [row per context], ...}``; with
    ``output`` also writes ``mlm.json``, ``mlm.tsv`` and (when matplotlib is installed) ``mlm.png``.
    """
    from lrgen.models.checkpoint import run_context
    from lrgen.models.resolve import resolve_model
    from lrgen.runtime.progress import progress_bar

    model, fasta, contexts, windows, seed = options.model, options.fasta, options.context, options.windows, options.seed
    if windows < 1:
        raise LrgenError(f"windows must be at least 1, got {windows}")
    if not contexts:
        raise LrgenError("no context length given")
    if not fasta:
        raise LrgenError("no FASTA file given to evaluate on")
    dev = resolve_device(options.device)
    resolved = resolve_model(model)
    lm = resolved.model.to(dev).eval()
    tokenizer = lm.tokenizer
    scheme = MaskingScheme.for_tokenizer(tokenizer)
    species = [load_species(str(p)) for p in fasta]
    longest = max(c.seq.size for sp in species for c in sp.contigs)
    ordered = sorted(set(int(c) for c in contexts))
    feasible = [c for c in ordered if c <= longest]
    span = options.centre_span or (feasible[-1] if feasible else None)
    if span is not None and (span > longest or (feasible and span < feasible[-1])):
        raise LrgenError(f"centre span {span:,} bp must cover the largest context evaluated and fit the longest "
                         f"contig ({longest:,} bp)")
    centres: list[tuple[int, int, int]] = []
    if feasible:
        sampler = WindowSampler(species, whole_segments(species), span, max_n_fraction=MAX_N_FRACTION,
                                seed=derive_seed(seed, _EVAL_STREAM))
        centres = [(s, c, start + span // 2) for s, c, start, _ in sampler.draw_locations(0, windows)]
    trained = run_context(resolved.directory)
    dtype = torch.bfloat16 if dev.type == "cuda" else None
    chunk = options.chunk_size or default_chunk_size(dev)

    rows: list[dict[str, Any]] = []
    failed: str | None = None
    progress = progress_bar(elapsed=True, fields=(), transient=False)
    with progress:
        task = progress.add_task("mlm", total=len(feasible) * windows)
        for context in ordered:
            row: dict[str, Any] = {"context": context, "windows": windows,
                                   "mode": "stream" if lm.streamable else "full"}
            if trained is not None:
                row["beyond_trained_context"] = context > trained
            if context > longest:
                rows.append({**row, "error": f"longest contig is {longest} bp"})
                continue
            if failed is not None:
                rows.append({**row, "error": f"skipped after {failed}"})
                progress.advance(task, windows)
                continue
            progress.update(task, description=f"mlm {context:,} bp")
            loss_sum = count = correct = tokens = done = 0
            per_window: list[list[float]] = []
            started = time.perf_counter()
            try:
                for i, (s, c, centre) in enumerate(centres):
                    bases = sampler.window(s, c, centre - context // 2, context)
                    ids = tokenize_windows([bases], tokenizer)
                    gen = torch.Generator().manual_seed(derive_seed(seed, _EVAL_STREAM, context, i))
                    inputs, labels = mask_tokens(ids, scheme, gen)
                    logits = forward(lm, inputs, "logits", chunk_size=chunk, dtype=dtype)
                    ls, n, k = mlm_sums(logits, labels.to(logits.device))
                    loss_sum, count, correct = loss_sum + float(ls), count + int(n), correct + int(k)
                    per_window.append([float(ls), int(n), int(k)])
                    tokens += ids.shape[1]
                    del logits
                    done += 1
                    progress.advance(task)
            except torch.cuda.OutOfMemoryError:
                failed = f"out of GPU memory at {context:,} bp"
            if failed is not None:  # out of the except block, the failed pass's tensors are released
                torch.cuda.empty_cache()
                rows.append({**row, "error": "out of GPU memory"})
                progress.advance(task, windows - done)
                continue
            seconds = time.perf_counter() - started
            interval = bootstrap_perplexity(per_window, scheme.bases_per_target, derive_seed(seed, _BOOTSTRAP_STREAM))
            rows.append({**row, "tokens_per_window": tokens // windows, "targets": count,
                         **summarize(loss_sum, count, correct, scheme.bases_per_target),
                         "perplexity_per_base_ci": interval, "seconds": seconds, "per_window": per_window})
    result = {
        "model": model,
        "family": lm.family,
        "tokenizer_kind": tokenizer.kind,
        "parameters": lm.num_parameters(),
        "trained_context": trained,
        "fasta": [str(p) for p in fasta],
        "windows": windows,
        "chunk_size": chunk if lm.streamable else None,
        "device": str(dev),
        "seed": seed,
        "results": rows,
    }
    if options.output is not None:
        write_outputs(result, options.output)
    return result


def bootstrap_perplexity(per_window: Sequence[Sequence[float]], bases_per_target: int, seed: int,
                         resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval ``[low, high]`` of the perplexity per base over windows: each resample draws
    the windows with replacement and pools their ``[loss sum, targets, ...]``. One window gives a zero-width
    interval."""
    sums = np.asarray([w[:2] for w in per_window], dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, len(sums), (resamples, len(sums)))
    loss, targets = sums[picks, 0].sum(1), sums[picks, 1].sum(1)
    values = np.exp(loss / np.maximum(targets, 1) / bases_per_target)
    tail = (1 - level) / 2 * 100
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


COLUMNS = ("context", "tokens_per_window", "targets", "loss", "perplexity", "perplexity_per_base", "accuracy",
           "seconds")


def mlm_table(result: dict[str, Any]):
    """A rich table of :func:`evaluate_mlm`'s rows."""
    from rich.table import Table

    table = Table(title=f"MLM on held-out sequence: {result['model']} ({result['family']})")
    for col in (*COLUMNS, "95% CI (per base)", "note"):
        table.add_column(col, justify="left" if col == "note" else "right")
    for row in result["results"]:
        interval = row.get("perplexity_per_base_ci")
        shown = f"{interval[0]:.4f}–{interval[1]:.4f}" if interval else "-"
        cells = [_cell(row.get(col)) for col in COLUMNS] + [shown]
        note = row.get("error", "")
        if row.get("beyond_trained_context") and not note:
            note = f"beyond trained {result['trained_context']:,} bp"
        table.add_row(*cells, note)
    return table


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else "nan"
    return f"{value:,}" if isinstance(value, int) else str(value)


def write_outputs(result: dict[str, Any], out_dir: str | os.PathLike) -> None:
    """``mlm.json``, ``mlm.tsv`` and (with matplotlib) ``mlm.png`` in ``out_dir``, each written to a temp name first."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "mlm.json", json.dumps(result, indent=2) + "\n")
    lines = ["\t".join((*COLUMNS, "ci_low", "ci_high", "error"))]
    for row in result["results"]:
        interval = [str(v) for v in row.get("perplexity_per_base_ci", ("", ""))]
        lines.append("\t".join([*(str(row.get(col, "")) for col in COLUMNS), *interval, str(row.get("error", ""))]))
    atomic_write_text(out / "mlm.tsv", "\n".join(lines) + "\n")
    plot_perplexity([result], out / "mlm.png")


def plot_perplexity(results: Sequence[dict[str, Any]], path: str | os.PathLike) -> bool:
    """Perplexity per base vs context (log x) of one or more :func:`evaluate_mlm` results, with their bootstrap
    intervals as bars where rows have them; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    trained_lines: set[int] = set()
    for result in results:
        rows = [r for r in result["results"] if "perplexity_per_base" in r]
        name = Path(str(result["model"])).name
        label = name if name.startswith(result["family"]) else f"{result['family']} ({name})"
        x, y = [r["context"] for r in rows], [r["perplexity_per_base"] for r in rows]
        bars = [[v - r["perplexity_per_base_ci"][0] for v, r in zip(y, rows)],
                [r["perplexity_per_base_ci"][1] - v for v, r in zip(y, rows)]] if all(
                    "perplexity_per_base_ci" in r for r in rows) else None
        ax.errorbar(x, y, yerr=bars, marker="o", capsize=3, label=label)
        trained = result.get("trained_context")
        if trained and trained not in trained_lines:
            label = "trained context" if not trained_lines else None
            ax.axvline(trained, color="grey", linestyle=":", linewidth=1, label=label)
            trained_lines.add(trained)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_size(int(round(x)))))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("context (bp)")
    ax.set_ylabel("MLM perplexity per base")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return True

