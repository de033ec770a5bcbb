"""The files under ``--out``, rewritten whole at the end of every call (at most 8 files, 2 levels, all small):

- ``results.json``: the suite's whole state (settings, sweep, budget, training records and curves, every evaluation
  row with its per-window sums, every variant stage with its per-site scores, the calls) and ``complete``;
- ``results.md``: the tables for docs/results.md;
- ``perplexity.png`` (perplexity per base vs context, bootstrap bars), ``training.png`` (validation loss vs bases
  seen), ``auroc.png`` (singleton-vs-common AUROC per context, trained and untrained);
- ``models/<name>.safetensors``: each trained model in bfloat16 with its config in the metadata
  (:func:`suite.family.pack`), what every evaluation read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lrgen.pretrain.evaluate import plot_perplexity
from lrgen.runtime.files import atomic_path, atomic_write_text
from lrgen.sizes import format_size

from suite.family import pack
from suite.variant_signal import SCORES


def write_outputs(suite, complete: bool) -> None:
    out, state = suite.out, suite.state.data
    for name in state.get("train", {}):
        if (suite.work / "models" / name).is_dir():  # absent only where a restore lacked it
            pack(suite.work / "models" / name, out / "models" / f"{name}.safetensors")
    atomic_write_text(out / "results.json", json.dumps({"complete": complete, "state": state}, indent=1) + "\n")
    atomic_write_text(out / "results.md", markdown(state))
    evaluations = [curve for curve in perplexity_curves(state) if curve["results"]]
    if evaluations:
        plot_perplexity(evaluations, out / "perplexity.png")
    _plot_training(state, out / "training.png")
    _plot_auroc(state, out / "auroc.png")


def perplexity_curves(state: dict) -> list[dict[str, Any]]:
    """Each model's evaluated rows in the form :func:`plot_perplexity` takes."""
    context = state["settings"]["context"]
    curves = []
    for name, rows in state.get("mlm", {}).items():
        done = sorted((r for r in rows.values() if "perplexity_per_base" in r), key=lambda r: r["context"])
        family = done[0]["family"] if done else name
        curves.append({"model": name, "family": family, "trained_context": context, "results": done})
    return curves


def interval(value: float, ci: list[float], digits: int) -> str:
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}–{ci[1]:.{digits}f}]"


def markdown(state: dict) -> str:
    s = state["settings"]
    budget = state.get("budget", {})
    calls = state.get("calls", [])
    device = calls[-1]["device"] if calls else "-"
    tokens = f"{budget['tokens']:,} bases per model" if budget else "not chosen yet"
    lines = [f"Data: {', '.join(s['species'])}; held out: {s['val_region']}. Training windows {s['context']:,} bp. "
             f"Token budget: {tokens}.", f"Device: {device}.", ""]
    lines += (_sweep_table(state) + _training_table(state) + _mlm_tables(state) + _variant_table(state)
              + _attention_tables(state) + _calls(state))
    return "\n".join(lines) + "\n"


def _sweep_table(state: dict) -> list[str]:
    sweep = state.get("sweep", {})
    if not sweep:
        return []
    s = state["settings"]
    lines = ["Sweep (throughput over a few steps per batch size; validation loss after "
             f"{s['sweep_tokens']:,} bases per learning rate):", "",
             "| model | " + " | ".join(f"bases/s, batch {b}" for b in s["sweep_batches"]) + " | batch | "
             + " | ".join(f"val loss, LR {lr:g}" for lr in s["sweep_lrs"]) + " | peak LR |",
             "| --- |" + " ---: |" * (len(s["sweep_batches"]) + len(s["sweep_lrs"]) + 2)]
    for name, r in sweep.items():
        probes = [r.get("throughput", {}).get(str(b)) for b in s["sweep_batches"]]
        choice = r.get("choice", {})
        batch = choice.get("batch_size")
        losses = [r.get("lr", {}).get(str(batch), {}).get(f"{lr:g}", {}).get("val_loss") for lr in s["sweep_lrs"]]
        lr = f"{choice['lr']:g}" if choice else "-"
        rates = [f"{p['bases_per_s']:,.0f}" if p and "bases_per_s" in p else p["error"] if p else "-" for p in probes]
        lines.append(f"| {name} | " + " | ".join(rates)
                     + f" | {batch or '-'} | " + " | ".join(f"{v:.4f}" if v is not None else "-" for v in losses)
                     + f" | {lr} |")
    return lines + [""]


def _training_table(state: dict) -> list[str]:
    train = state.get("train", {})
    if not train:
        return []
    choice = {n: r["choice"] for n, r in state.get("sweep", {}).items() if "choice" in r}
    lines = ["Training (one token budget; step time and bases/s without validation and checkpoints; validation on "
             f"{state['settings']['val_windows']} held-out windows, best checkpoint):", "",
             "| model | parameters | batch | peak LR | steps | bases | step time (s) | bases/s | final train loss | "
             "best val loss | val perplexity/base | val accuracy |",
             "| --- |" + " ---: |" * 11]
    for name, r in train.items():
        c = choice[name]
        lines.append(f"| {name} | {r['parameters']:,} | {c['batch_size']} | {c['lr']:g} | {r['steps']:,} | "
                     f"{r['tokens']:,} | {r['step_seconds']:,.1f} | {r['bases_per_s']:,.0f} | "
                     f"{r['final_train_loss']:.4f} | {r['best_val_loss']:.4f} | {r['val_perplexity_per_base']:.4f} | "
                     f"{r['val_accuracy']:.4f} |")
    return lines + ["", "(NTv2's losses are per 6-mer token, its accuracy is of whole 6-mers; its perplexity per base "
                    "is exp(loss / 6).)", ""]


def _mlm_tables(state: dict) -> list[str]:
    mlm = state.get("mlm", {})
    if not mlm:
        return []
    s = state["settings"]
    contexts = s["contexts"]
    head = ["| model | " + " | ".join(f"{format_size(c)} ({c / s['context']:g}×)" for c in contexts) + " |",
            "| --- |" + " ---: |" * len(contexts)]
    perplexity, accuracy = list(head), list(head)
    for name, rows in mlm.items():
        cells_p, cells_a = [], []
        for c in contexts:
            row = rows.get(str(c))
            if row is None:
                cells_p.append("not run yet")
                cells_a.append("not run yet")
            elif "perplexity_per_base" in row:
                cells_p.append(interval(row["perplexity_per_base"], row["perplexity_per_base_ci"], 3))
                cells_a.append(f"{row['accuracy']:.4f}")
            else:
                cells_p.append(row["error"])
                cells_a.append("-")
        perplexity.append(f"| {name} | " + " | ".join(cells_p) + " |")
        accuracy.append(f"| {name} | " + " | ".join(cells_a) + " |")
    return ([f"MLM perplexity per base on the held-out region vs context, {s['windows']} windows per context on the "
             "same centres, [95% bootstrap interval over windows]:", ""] + perplexity
            + ["", "Masked accuracy (NTv2: of 6-mer tokens):", ""] + accuracy + [""])


def _variant_table(state: dict) -> list[str]:
    variants = state.get("variants", {})
    sites = state.get("variant_sites")
    if not variants or sites is None:
        return []
    s = state["settings"]
    contexts = s["variant_contexts"]
    lines = [f"Singleton (AC = 1) vs common (AF ≥ 5%) SNVs in {sites['region']}: {sites['per_class']} of each "
             f"(of {sites['available']['singleton']:,} and {sites['available']['common']:,}); AUROC with singletons "
             "positive and the negated score as predictor, [95% bootstrap interval over sites]:", "",
             "| model | weights | score | " + " | ".join(format_size(c) for c in contexts) + " |",
             "| --- | --- | --- |" + " ---: |" * len(contexts)]
    for name, by_weights in variants.items():
        if "not_applicable" in by_weights:
            cells = " | ".join("n/a" for _ in contexts)
            lines.append(f"| {name} | - | - | {cells} |  {by_weights['not_applicable']}")
            continue
        for weights in ("trained", "untrained"):
            stages = by_weights.get(weights, {})
            for score in SCORES:
                cells = [interval(stages[str(c)][score]["auroc"], stages[str(c)][score]["ci"], 3)
                         if str(c) in stages else "not run yet" for c in contexts]
                lines.append(f"| {name} | {weights} | {score} | " + " | ".join(cells) + " |")
    return lines + [""]


def _attention_tables(state: dict) -> list[str]:
    """NTv2's attention per weights, context and layer (over heads: median distance, mean and largest far mass,
    mean entropy), and the rotary pairs' turns per context."""
    attention, rope = state.get("attention", {}), state.get("rope")
    if not attention and rope is None:
        return []
    s = state["settings"]
    lines = []
    if attention:
        far_bp = next(row["far_bp"] for rows in attention.values() for row in rows.values())
        lines += [f"NTv2 attention on the held-out region ({s['attention_windows']} windows per context, "
                  f"{s['attention_queries']} query tokens each from the window's middle half): per layer, over its "
                  "heads, the median mean query–key distance, the attention mass beyond the training window "
                  f"(distances over {far_bp:,} bp, which no training window holds; mean over heads "
                  "and the largest head) and the mean entropy (nats; uniform attention over the window's keys in "
                  "brackets):", "",
                  "| weights | context | layer | distance (bp) | mass beyond training window | largest head | "
                  "entropy |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for weights in ("trained", "untrained"):
            for c, row in sorted(attention.get(weights, {}).items(), key=lambda kv: int(kv[0])):
                uniform = math.log(max(int(c) // 6, 1))
                for i, heads in enumerate(row["layers"]):
                    distances = sorted(h["distance_bp"] for h in heads)
                    far = [h["far_mass"] for h in heads]
                    entropy = sum(h["entropy"] for h in heads) / len(heads)
                    lines.append(f"| {weights} | {format_size(int(c))} | {i} | {distances[len(distances) // 2]:,.0f} | "
                                 f"{sum(far) / len(far):.3f} | {max(far):.3f} | {entropy:.2f} ({uniform:.2f}) |")
        lines.append("")
    if rope is not None:
        contexts = list(rope["pairs"][0]["turns"])
        lines += [f"Rotary positions (base {rope['rope_base']:g}, head width {rope['head_dim']}): "
                  f"{rope['unturned_in_training']} of {len(rope['pairs'])} channel pairs make less than one turn across "
                  "a training window, so longer distances give them angles training never produced. Turns across a "
                  "window's longest distance:", "",
                  "| pair | wavelength (bp) | " + " | ".join(format_size(int(c)) for c in contexts) + " |",
                  "| ---: | ---: |" + " ---: |" * len(contexts)]
        lines += [f"| {p['pair']} | {p['wavelength_bp']:,.0f} | " + " | ".join(f"{p['turns'][c]:,.2f}" for c in contexts)
                  + " |" for p in rope["pairs"]]
        lines.append("")
    return lines


def _calls(state: dict) -> list[str]:
    """The calls, and each evaluation stage's time against the estimate it was started on."""
    calls = state.get("calls", [])
    lines = [f"Calls: {len(calls)}, " + "; ".join(f"{c['seconds']:.0f} s ({c['outcome']})" for c in calls) + ".", ""]
    stages = [(f"mlm {name} {format_size(int(c))}", r) for name, rows in state.get("mlm", {}).items()
              for c, r in rows.items()]
    stages += [(f"variants {name} {weights} {format_size(int(c))}", r)
               for name, by_weights in state.get("variants", {}).items() if "not_applicable" not in by_weights
               for weights, rows in by_weights.items() for c, r in rows.items()]
    stages += [(f"attention ntv2 {weights} {format_size(int(c))}", r)
               for weights, rows in state.get("attention", {}).items() for c, r in rows.items()]
    timed = [(label, r) for label, r in stages if "wall_seconds" in r]
    if timed:
        lines += ["| evaluation stage | seconds | estimated |", "| --- | ---: | ---: |"]
        lines += [f"| {label} | {r['wall_seconds']:.1f} | {r['estimated_seconds']:.0f} |" for label, r in timed]
    return lines


def _plot(path: Path, draw, panels: int = 1) -> None:
    """A figure of ``panels`` side by side drawn by ``draw(axes)``, written atomically (nothing without
    matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError:
        return
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 4.2), sharey=True, squeeze=False)
    draw(list(axes[0]))
    for ax in axes[0]:
        if ax.get_xscale() == "log":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_size(int(round(x)))))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _plot_training(state: dict, path: Path) -> None:
    """Validation loss per base against bases seen."""
    train = state.get("train", {})
    if not train:
        return

    def draw(axes):
        for name, r in train.items():
            curve = r["val_curve"]
            axes[0].plot([p[0] for p in curve], [math.log(p[2]) for p in curve], marker="o", label=name)
        axes[0].set_xlabel("bases seen")
        axes[0].set_ylabel("validation loss per base (nats)")

    _plot(path, draw)


def _plot_auroc(state: dict, path: Path) -> None:
    """AUROC against context, one panel per score: a colour per model, solid trained, dotted untrained, with
    bootstrap bars (the untrained points nudged right so that the bars do not overlap)."""
    variants = {n: v for n, v in state.get("variants", {}).items() if "not_applicable" not in v}
    if not any(v.get(w) for v in variants.values() for w in ("trained", "untrained")):
        return

    def draw(axes):
        for ax, score in zip(axes, SCORES):
            for colour, (name, by_weights) in enumerate(variants.items()):
                for weights, nudge, style in (("trained", 1.0, "-"), ("untrained", 1.06, ":")):
                    points = sorted((int(c), r[score]) for c, r in by_weights.get(weights, {}).items())
                    if not points:
                        continue
                    y = [r["auroc"] for _, r in points]
                    bars = [[v - r["ci"][0] for v, (_, r) in zip(y, points)],
                            [r["ci"][1] - v for v, (_, r) in zip(y, points)]]
                    ax.errorbar([c * nudge for c, _ in points], y, yerr=bars, marker="o", capsize=3, linestyle=style,
                                color=f"C{colour}", label=f"{name}, {weights}")
            ax.axhline(0.5, color="grey", linewidth=1)
            ax.set_xscale("log")
            ax.set_title(score)
            ax.set_xlabel("context (bp)")
        axes[0].set_ylabel("AUROC, singleton vs common")

    _plot(path, draw, panels=len(SCORES))
