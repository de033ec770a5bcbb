"""Pretrain a small Caduceus-PS, Hawk and NTv2 on the same data and token budget, then measure MLM perplexity
from 1 kbp to 1 Mbp of context (zero-shot beyond the training length).

Data: every FASTA in ``--genomes`` (one species each) plus human chr20 (``--human``), with ``--val-region``
(default chr20:1–4 Mb) held out of training and used for validation and for the context sweep. The token budget
is the same for the three models: a short calibration run measures each model's training throughput and the budget
is what the slowest one trains in ``--train-seconds`` (or give ``--tokens``).

Writes into ``--out`` (seven files, so that all of them come back from a device run): ``results.json`` (training
summaries, resolved configs and evaluation rows), ``results.md`` (tables for docs/results.md), ``perplexity.png``
(perplexity vs context), ``training.png`` (validation loss vs bases seen), ``metrics.jsonl`` (every run's metrics,
with a ``model`` key) and the best Caduceus checkpoint (``config.json`` + ``model.safetensors``) in
``caduceus-ps-demo/``. Runs with full checkpoints and the per-model evaluation files stay in ``--work-dir``.

GPU (one H100, about 8 minutes)::

    python benchmarks/pretrain_suite.py --genomes DATA/genomes --human DATA/human/20.fa.gz --out $OUT

CPU smoke run (tiny presets, seconds)::

    python benchmarks/pretrain_suite.py --genomes ... --human ... --out /tmp/suite --tiny --device cpu \\
        --context 256 --batch-size 4 --train-seconds 5 --contexts 1k,4k --windows 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lrgen.models.checkpoint import save_model  # noqa: E402
from lrgen.models.registry import build_model, preset_config  # noqa: E402
from lrgen.pretrain.data import load_species, parse_region  # noqa: E402
from lrgen.pretrain.evaluate import MlmOptions, evaluate_mlm, plot_perplexity  # noqa: E402
from lrgen.pretrain.loop import train  # noqa: E402
from lrgen.pretrain.config import resolve_config  # noqa: E402
from lrgen.sizes import format_size, parse_size, parse_size_list  # noqa: E402

# a few million parameters each; same depth budget, widths chosen for comparable size
SMALL = {
    "caduceus-ps": ("caduceus-ps-tiny", {"d_model": 192, "n_layer": 8, "ssm_cfg": {"d_state": 16, "d_conv": 4, "expand": 2}}),
    "hawk": ("hawk-tiny", {"d_model": 192, "n_layers": 6, "n_heads": 4, "mlp_expansion": 3}),
    "ntv2": ("ntv2-tiny", {"d_model": 192, "n_layers": 6, "n_heads": 6, "mlp_hidden": 768}),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def initial_checkpoint(name: str, tiny: bool, work: Path, seed: int) -> Path:
    """A freshly initialised model of the suite's size for ``name``, saved as a checkpoint directory."""
    preset, overrides = SMALL[name]
    config = preset_config(preset)
    if not tiny:
        config = dataclasses.replace(config, **overrides)
    path = work / "init" / name
    save_model(build_model(config, seed=seed), path)
    return path


def heldout_fasta(human: str, region: str, work: Path) -> Path:
    """The validation region written as a FASTA of its own (the context sweep reads it)."""
    reg = parse_region(region)
    species = load_species(human)
    contig = next(c for c in species.contigs if c.name.removeprefix("chr") == reg.chrom.removeprefix("chr"))
    seq = contig.seq[reg.start : reg.end].tobytes().decode("ascii")
    path = work / "heldout.fa"
    path.write_text(f">{region}\n" + "\n".join(seq[i : i + 80] for i in range(0, len(seq), 80)) + "\n")
    return path


def pretrain(name: str, init: Path, out: Path, args, fasta: list[str], steps: int, eval_every: int) -> dict:
    config = resolve_config(dict(
        model=str(init), output=str(out), fasta=fasta, val_region=[args.val_region], context=args.context, steps=steps,
        batch_size=args.batch_size, lr=args.lr, eval_every=eval_every, val_windows=args.val_windows,
        save_every=steps, keep_checkpoints=1, seed=args.seed, device=args.device,
    ))
    return train(config)


def calibrate(name: str, init: Path, args, fasta: list[str], work: Path) -> float:
    """Training throughput (bases/s, median of the last steps of a short run, after kernel warm-up)."""
    out = work / "calibrate" / name
    shutil.rmtree(out, ignore_errors=True)
    pretrain(name, init, out, args, fasta, steps=args.calibration_steps, eval_every=10**9)
    rates = [json.loads(line)["tokens_per_s"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "train"]
    return statistics.median(rates[len(rates) // 2 :])


def write_report(out: Path, results: dict, evaluations: list[dict]) -> None:
    """results.json, results.md and perplexity.png as far as the suite got (so a cut-off run still reports)."""
    for name, text in (("results.json", json.dumps(results, indent=2) + "\n"), ("results.md", markdown(results))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)
    if evaluations:
        plot_perplexity(evaluations, out / "perplexity.png")
    plot_training(out / "metrics.jsonl", out / "training.png")


def plot_training(metrics: Path, path: Path) -> None:
    """Validation loss per base (log scale of bases seen) of every model in the combined metrics file."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    curves: dict[str, list[tuple[int, float]]] = {}
    for line in metrics.read_text().splitlines():
        r = json.loads(line)
        if r["split"] == "val":
            curves.setdefault(r["model"], []).append((r["tokens"], math.log(r["perplexity_per_base"])))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, points in curves.items():
        ax.plot(*zip(*points), marker="o", label=name)
    ax.set_xlabel("bases seen")
    ax.set_ylabel("validation loss per base (nats)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def markdown(results: dict) -> str:
    lines = [f"Token budget {results['tokens']:,} bases per model ({results['steps']} steps × "
             f"{results['batch_size']} windows × {results['context']:,} bp), data: {', '.join(results['species'])}; "
             f"held out: {results['val_region']}. Device: {results['device']}.", "",
             "| model | parameters | train time (s) | bases/s | final train loss | best val loss | val perplexity/base | val accuracy |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results["models"].items():
        s = r["train"]
        lines.append(f"| {name} | {s['parameters']:,} | {s['seconds']:.0f} | {s['tokens_per_s']:,.0f} | "
                     f"{s['train']['loss']:.4f} | {s['best_val_loss']:.4f} | {s['val']['perplexity_per_base']:.4f} | "
                     f"{s['val']['accuracy']:.4f} |")
    contexts = sorted({row["context"] for r in results["models"].values() for row in r.get("eval", {}).get("results", [])})
    lines += ["", "MLM perplexity per base on the held-out region vs context (trained at "
              f"{format_size(results['context'])}; same window centres for every context):", "",
              "| model | " + " | ".join(format_size(c) for c in contexts) + " |",
              "| --- |" + " ---: |" * len(contexts)]
    for name, r in results["models"].items():
        if "eval" not in r:
            lines.append(f"| {name} | " + " | ".join("-" for _ in contexts) + f" |  (evaluation failed: {r.get('eval_error')})")
            continue
        by_context = {row["context"]: row for row in r["eval"]["results"]}
        cells = []
        for c in contexts:
            row = by_context.get(c, {})
            cells.append(f"{row['perplexity_per_base']:.3f}" if "perplexity_per_base" in row else row.get("error", "-"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--genomes", required=True, help="folder of microbial FASTA files (*.fa.gz), one species each")
    p.add_argument("--human", required=True, help="human chr20 FASTA (20.fa.gz)")
    p.add_argument("--out", required=True, help="folder for results (kept small)")
    p.add_argument("--work-dir", default=None, help="folder for runs with full checkpoints [OUT/../suite-work]")
    p.add_argument("--val-region", default="20:1000000-4000000")
    p.add_argument("--models", default="caduceus-ps,hawk,ntv2")
    p.add_argument("--context", type=parse_size, default=2000, help="training window [2kb]")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--tokens", type=parse_size, default=None, help="budget in bases per model [calibrated]")
    p.add_argument("--train-seconds", type=float, default=90.0, help="training time of the slowest model [90]")
    p.add_argument("--calibration-steps", type=int, default=8)
    p.add_argument("--val-windows", type=int, default=32)
    p.add_argument("--contexts", type=parse_size_list, default=parse_size_list("1k,2k,4k,12k,32k,120k,1M"))
    p.add_argument("--windows", type=int, default=8, help="evaluation windows per context [8]")
    p.add_argument("--chunk-size", type=parse_size, default=None, help="engine chunk for the sweep [engine default]")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="use the *-tiny presets (CPU smoke run)")
    args = p.parse_args(argv)

    started = time.perf_counter()
    out = Path(args.out)
    work = Path(args.work_dir) if args.work_dir else out.parent / f"{out.name}-work"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = set(names) - set(SMALL)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {sorted(SMALL)}")
    genomes = sorted(str(f) for f in Path(args.genomes).iterdir() if f.name.endswith((".fa", ".fa.gz", ".fasta", ".fasta.gz")))
    if not genomes:
        p.error(f"no FASTA files in {args.genomes}")
    fasta = [*genomes, args.human]
    log(f"loading {len(fasta)} FASTA files")
    species = [load_species(f) for f in fasta]
    log(f"loaded {sum(s.length for s in species):,} bp")
    heldout = heldout_fasta(args.human, args.val_region, work)
    inits = {name: initial_checkpoint(name, args.tiny, work, args.seed) for name in names}

    if args.tokens is None:
        rates = {name: calibrate(name, inits[name], args, fasta, work) for name in names}
        for name, rate in rates.items():
            log(f"calibration {name}: {rate:,.0f} bases/s")
        budget = min(rates.values()) * args.train_seconds
    else:
        budget = args.tokens
    per_step = args.context * args.batch_size
    steps = max(1, int(budget // per_step))
    eval_every = max(1, steps // 8)
    log(f"budget {steps * per_step:,} bases per model = {steps} steps")

    results = {"tokens": steps * per_step, "steps": steps, "context": args.context, "batch_size": args.batch_size,
               "lr": args.lr, "species": [s.name for s in species], "val_region": args.val_region,
               "device": args.device, "models": {}}
    (out / "metrics.jsonl").unlink(missing_ok=True)
    runs = {}
    for name in names:
        run = runs[name] = work / "runs" / name
        shutil.rmtree(run, ignore_errors=True)
        log(f"pretraining {name}")
        summary = pretrain(name, inits[name], run, args, fasta, steps, eval_every)
        log(f"{name}: {summary['parameters']:,} parameters, val loss {summary['best_val_loss']:.4f}, "
            f"{summary['seconds']:.0f} s")
        results["models"][name] = {"train": summary,
                                   "config": json.loads((run / "pretrain_config.json").read_text())}
        with (out / "metrics.jsonl").open("a") as log_all:
            for line in (run / "metrics.jsonl").read_text().splitlines():
                log_all.write(json.dumps({"model": name, **json.loads(line)}) + "\n")
        if name.startswith("caduceus"):
            demo = out / f"{name}-demo"
            shutil.rmtree(demo, ignore_errors=True)
            demo.mkdir(parents=True)
            for f in ("config.json", "model.safetensors"):
                shutil.copy(run / "checkpoints" / "best" / f, demo / f)
        write_report(out, results, [])

    evaluations: list[dict] = []
    for name in sorted(names, key=lambda n: n == "ntv2"):  # the transformer last: it may hit the memory limit
        log(f"evaluating {name} at {', '.join(format_size(c) for c in args.contexts)}")
        try:
            evaluation = evaluate_mlm(MlmOptions(model=str(runs[name] / "checkpoints" / "best"), fasta=[str(heldout)], context=args.contexts, windows=args.windows, chunk_size=args.chunk_size, device=args.device, seed=args.seed, output=str(work / "eval" / name)))
        except Exception as exc:  # keep the other models' results; the error is reported in results.json
            log(f"evaluation of {name} failed: {exc!r}")
            results["models"][name]["eval_error"] = repr(exc)
            write_report(out, results, evaluations)
            continue
        evaluation["model"] = name
        evaluations.append(evaluation)
        results["models"][name]["eval"] = evaluation
        results["device"] = evaluation["device"]
        write_report(out, results, evaluations)
    results["seconds"] = time.perf_counter() - started
    write_report(out, results, evaluations)
    print(markdown(results))
    log(f"done in {results['seconds']:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
