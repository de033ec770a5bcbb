"""``lrgen evaluate`` for GLRB tasks: metrics of a fine-tuned model (or zero-shot variant scores of a backbone) on
the test split at one or several contexts, with bootstrap intervals, JSON + markdown, and a metric-vs-context plot.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrgen.errors import LrgenError
from lrgen.glrb.tasks import VARIANT, get_task

#: eQTL results are also given per bucket of |distance to the nearest TSS|
TSS_BUCKETS = (("0-30k", 0, 30_000), ("30-100k", 30_000, 100_000), (">100k", 100_000, math.inf))
PLOT_NAME = "metric_vs_context.png"


def _load(task, model: str, device, contexts: list[int] | None, conjoin: bool | None):
    """The fine-tuned model to evaluate and its training context (None for a zero-shot backbone)."""
    from lrgen.glrb.heads import task_spec
    from lrgen.models.finetuned import FinetunedModel
    from lrgen.models.resolve import resolve_model

    resolved = resolve_model(model)
    finetuned = resolved.finetuned
    if finetuned is not None:
        trained = get_task(finetuned.spec.task)
        transferable = trained.kind == VARIANT and task.kind == VARIANT and not finetuned.spec.tissues
        if not (trained.name == task.name or transferable):
            raise LrgenError(f"{model} was fine-tuned on {trained.name}, not {task.name}")
        if conjoin is not None:
            finetuned.spec.conjoin = conjoin
        return finetuned.to(device), finetuned.spec.context
    if task.kind != VARIANT:
        raise LrgenError(f"{task.name} needs a fine-tuned model (lrgen finetune --task {task.aliases[0]} ...)")
    if not contexts:
        raise LrgenError("zero-shot evaluation of a backbone needs --context")
    spec = task_spec(resolved.model, task, contexts[0], 1, conjoin=bool(conjoin))
    return FinetunedModel(resolved.model, spec, head=False).to(device), None


def _metrics(task, labels: np.ndarray, scores: np.ndarray, bootstrap: int, seed: int) -> tuple[dict, dict]:
    from lrgen.training.metrics import bootstrap_ci, macro

    values = {m: macro(m, labels, scores) for m in task.metrics}
    ci = {}
    if bootstrap:
        ci[task.metric] = bootstrap_ci(task.metric, labels, scores, bootstrap, seed)
    return values, ci


def _buckets(task, records, labels: np.ndarray, scores: np.ndarray) -> dict:
    from lrgen.training.metrics import macro

    distance = np.array([abs(r.distance) for r in records])
    out = {}
    for name, lo, hi in TSS_BUCKETS:
        sel = (distance >= lo) & (distance < hi)
        out[name] = {"n": int(sel.sum()), task.metric: macro(task.metric, labels[sel], scores[sel]) if sel.any() else None}
    return out


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def markdown(result: dict) -> str:
    """The results as a markdown table (plus the eQTL TSS-distance buckets)."""
    task = get_task(result["task"])
    head = ["context (bp)", "n", *task.metrics, f"{task.metric} 95% CI"]
    lines = [f"### {task.name} ({result['split']}, {result['model']})", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for r in result["contexts"]:
        if "error" in r:
            lines.append(f"| {r['context']:,} | 0 | " + " | ".join([r["error"]] * len(task.metrics)) + " | — |")
            continue
        ci = r["ci"].get(task.metric)
        cells = [f"{r['context']:,}", str(r["n"]), *(_fmt(r["metrics"][m]) for m in task.metrics),
                 f"{_fmt(ci[0])}–{_fmt(ci[1])}" if ci else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    if any("buckets" in r for r in result["contexts"]):
        lines += ["", f"{task.metric} by distance to the nearest TSS:", "",
                  "| context | " + " | ".join(b[0] for b in TSS_BUCKETS) + " |", "|---|" + "---|" * len(TSS_BUCKETS)]
        for r in (r for r in result["contexts"] if "buckets" in r):
            cells = [f"{_fmt(r['buckets'][b][task.metric])} (n={r['buckets'][b]['n']})" for b, _, _ in TSS_BUCKETS]
            lines.append(f"| {r['context']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> str | None:
    """PNG of the primary metric against context (log x); returns a note instead when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install lrgen[plot]): no plot written"
    task = get_task(result["task"])
    rows = [r for r in result["contexts"] if "error" not in r]
    x = [r["context"] for r in rows]
    y = [r["metrics"][task.metric] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(x, y, marker="o")
    cis = [r["ci"].get(task.metric) for r in rows]
    if all(cis):
        ax.fill_between(x, [c[0] for c in cis], [c[1] for c in cis], alpha=0.2)
    if result.get("train_context"):
        ax.axvline(result["train_context"], color="grey", linestyle="--", label="training context")
        ax.legend()
    ax.set_xscale("log")
    ax.set_xlabel("context (bp)")
    ax.set_ylabel(task.metric)
    ax.set_title(task.name, fontsize=9)
    fig.tight_layout()
    from lrgen.runtime.files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return None


@dataclass
class EvaluateOptions:
    """Everything ``lrgen evaluate`` takes for a GLRB task (the CLI flags carry the same names).

    ``model`` is a fine-tuned folder, or for variant tasks a backbone (zero-shot). ``context`` is a list of
    contexts (default: the training context); ``output`` a folder for ``results.json``, ``results.md`` and, for
    several contexts, ``metric_vs_context.png``. Streamable models stream under the engine's chunk policy.
    """

    task: str
    model: str
    data_dir: str
    genome: str
    context: list[int] | None = None
    output: str | None = None
    bootstrap: int = 0
    chunk_size: int | None = None
    device: str = "auto"
    batch_size: int = 8
    split: str = "test"
    max_n_fraction: float = 0.5
    conjoin: bool | None = None
    seed: int = 0


def evaluate_task(options: EvaluateOptions) -> dict:
    """Evaluate ``options.model`` on ``options.task`` at each context; returns the results (also written to
    ``options.output`` when given)."""
    import torch

    from lrgen.glrb.data import make_windows, read_task
    from lrgen.io.genome import Genome
    from lrgen.runtime.device import resolve_device
    from lrgen.runtime.progress import progress_bar
    from lrgen.training.inference import loader, pooled_features, scores_from_features

    o = options
    task, model, contexts = o.task, o.model, o.context
    data_dir, genome, split, seed = o.data_dir, o.genome, o.split, o.seed
    t = get_task(task)
    dev = resolve_device(o.device)
    finetuned, train_context = _load(t, model, dev, contexts, o.conjoin)
    contexts = contexts or [train_context]
    table = read_task(t, data_dir)
    records = table.split(split)
    if not records:
        raise LrgenError(f"{table.path}: no rows with split {split!r} (splits present: {', '.join(table.splits)})")
    ref = Genome(genome)
    tokenizer = finetuned.backbone.tokenizer
    tissues = finetuned.spec.tissues
    rows = []
    with progress_bar() as progress:
        for context in contexts:
            windows = make_windows(table, records, ref, context, o.max_n_fraction)
            if not windows.records:
                raise LrgenError(f"{table.path}: no usable {split} windows at {context} bp ({windows.counts})")
            data = loader(windows, tokenizer, o.batch_size, tissues)
            try:
                feats = pooled_features(finetuned, data, dev, o.chunk_size, progress)
            except torch.cuda.OutOfMemoryError:  # e.g. NTv2 at megabase context: report it, go on
                torch.cuda.empty_cache()
                rows.append({"context": context, "n": 0, "counts": windows.counts, "error": "out of GPU memory"})
                continue
            scores = scores_from_features(finetuned, feats, dev)
            labels = feats["label"].numpy()
            metrics, ci = _metrics(t, labels, scores, o.bootstrap, seed)
            row = {"context": context, "n": len(labels), "counts": windows.counts, "metrics": metrics, "ci": ci}
            if t.tissue:
                row["buckets"] = _buckets(t, windows.records, labels, scores)
            rows.append(row)
    result = {
        "task": t.name,
        "model": str(model),
        "split": split,
        "file": str(table.path),
        "genome": str(genome),
        "train_context": train_context,
        "zero_shot": finetuned.head is None,
        "metric": t.metric,
        "contexts": rows,
    }
    if o.output is not None:
        out = Path(o.output)
        out.mkdir(parents=True, exist_ok=True)
        if len(rows) > 1:
            result["plot_note"] = plot(result, out / PLOT_NAME)
            result["plot"] = None if result["plot_note"] else str(out / PLOT_NAME)
        from lrgen.runtime.files import atomic_write_text, json_safe

        atomic_write_text(out / "results.md", markdown(result))
        atomic_write_text(out / "results.json", json.dumps(json_safe(result), indent=2) + "\n")
    return result
