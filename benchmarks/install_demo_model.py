"""Install the pretraining suite's Caduceus-PS as the bundled model ``caduceus-ps-demo``, with a card written from
the suite's results.

Reads a suite's ``--out`` folder (``results.json`` and ``models/caduceus-ps.safetensors``, as they came back from
the GPU machine), checks that the model loads as a Caduceus-PS with the parameter count the suite recorded and that
its weights stay under 20 MB, and replaces ``lrgen/data/models/caduceus-ps-demo`` (``config.json``,
``model.safetensors`` in bfloat16, ``README.md``: the card, whose first line ``lrgen info --models`` lists)
atomically. Everything in the card comes from ``results.json``; what the suite did not measure is said to be so.

    python benchmarks/install_demo_model.py --suite SUITE_OUT
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lrgen.errors import LrgenError  # noqa: E402
from lrgen.models.registry import BUNDLED_DIR, load_checkpoint  # noqa: E402
from lrgen.models.weights import SAFETENSORS_NAME  # noqa: E402
from lrgen.pretrain.data import parse_region  # noqa: E402
from lrgen.runtime.files import replace_dir, temporary_sibling  # noqa: E402
from lrgen.sizes import format_size  # noqa: E402

from suite.family import unpack  # noqa: E402
from suite.report import interval  # noqa: E402
from suite.variant_signal import SCORES  # noqa: E402

NAME = "caduceus-ps-demo"
MAX_BYTES = 20_000_000
#: how the card names the suite's other models
ARTICLE_NAMES = {"hawk": "a Hawk", "ntv2": "an NTv2"}
#: files that describe the bundled model in words (its size, its numbers), to read again after installing
DESCRIBED_IN = ("README.md", "docs/models.md", "docs/predict.md", "docs/score-vcf.md", "docs/finetune.md")


def card(state: dict, model: str, parameters: int, config: dict) -> str:
    """The model card (Markdown) of suite model ``model`` from the suite's state."""
    s, t = state["settings"], state["train"][model]
    choice = state["sweep"][model]["choice"]
    calls = state.get("calls", [])
    device = calls[-1]["device"] if calls else "unknown device"
    date = calls[-1]["date"][:10] if calls else "unknown date"
    ssm = config.get("ssm_cfg", {})
    region = parse_region(s["val_region"])
    held_out = (region.end or 0) - region.start
    lines = [
        f"# Caduceus-PS, d_model {config['d_model']} × {config['n_layer']} layers, {parameters / 1e6:.1f}M "
        f"parameters, pretrained on {len(s['species']) - 1} microbial genomes + human chr20 (demo)",
        "",
        f"- Architecture: Caduceus-PS (RC-equivariant, parameter sharing), d_model {config['d_model']}, "
        f"{config['n_layer']} layers, d_state {ssm.get('d_state')}, d_conv {ssm.get('d_conv')}, expand "
        f"{ssm.get('expand')}, character tokens; {parameters:,} parameters; official Caduceus checkpoint layout. "
        "Weights stored in bfloat16 (loaded into float32 parameters); every number below was measured with them.",
        f"- Data: {', '.join(s['species'])} (one species per file, windows drawn in proportion to length); "
        f"{s['val_region']} held out of training.",
        f"- Training: masked LM (15% of positions; 80% [MASK], 10% random, 10% unchanged), {s['context']:,} bp "
        f"windows, batch {choice['batch_size']}, {t['steps']:,} steps = {t['tokens']:,} bases, AdamW (0.9, 0.95, "
        f"weight decay 0.1), peak LR {choice['lr']:g} ({_lr_choice(s['sweep_lrs'])}), 5% warm-up then cosine to "
        f"10%, clipping 1.0, {'bf16 autocast' if t['dtype'] == 'bfloat16' else 'float32'}, no reverse-complement "
        "augmentation (the model is RC-equivariant); "
        f"{t['step_seconds']:,.0f} s of steps at {t['bases_per_s']:,.0f} bases/s on {device}. "
        + _compared([m for m in s["models"] if m in state["train"]], model),
        f"- Held out ({s['val_windows']} windows of {s['context']:,} bp, best checkpoint, step "
        f"{t['best_val_step']:,}): loss {t['best_val_loss']:.4f}, perplexity {t['val_perplexity_per_base']:.3f} "
        f"per base, masked accuracy {t['val_accuracy']:.3f}.",
        "",
    ]
    lines += _perplexity(state, model) + _variants(state, model)
    lines += [
        "## Limits",
        "",
        f"- Small and briefly trained: {t['tokens']:,} bases, where the paper trains for billions. Use it "
        "to learn the tools; its scores are not biological evidence.",
        "- Human sequence is chr20 of GRCh37 only; the rest is microbial. Other chromosomes and species are out "
        "of its training distribution.",
        f"- Trained on {format_size(s['context'])} windows: longer contexts are zero-shot (see the table above).",
        f"- The variant AUROCs are zero-shot, on one {format_size(held_out)} region and one population panel; "
        "singleton vs common is a "
        "proxy for constraint, not a measure of pathogenicity.",
        "",
        f"Made by `benchmarks/pretrain_suite.py` ({date}, {len(calls)} call(s)); installed by "
        "`benchmarks/install_demo_model.py`. Full results: docs/results.md.",
    ]
    return "\n".join(_wrap(line) for line in lines) + "\n"


def _lr_choice(lrs: list[float]) -> str:
    if len(lrs) == 1:
        return "set, not swept, in this run"
    return f"the lowest validation loss of {', '.join(f'{lr:g}' for lr in lrs)} in the suite's short sweep"


def _compared(models: list[str], model: str) -> str:
    others = [ARTICLE_NAMES.get(m, m) for m in models if m != model]
    if others:
        return (f"The same recipe and token budget trained {' and '.join(others)} of the same size for comparison "
                "(docs/results.md).")
    return "It was trained alone, with the recipe of the three-family comparison in docs/results.md."


def _wrap(line: str) -> str:
    """A list item wrapped at 116 characters (tables and headings stay on one line)."""
    if not line.startswith("- "):
        return line
    return "\n".join(textwrap.wrap(line, 116, subsequent_indent="  ", break_on_hyphens=False))


def _perplexity(state: dict, model: str) -> list[str]:
    s = state["settings"]
    rows = state.get("mlm", {}).get(model, {})
    cells = []
    for c in s["contexts"]:
        row = rows.get(str(c))
        if row is None:
            cells.append("not measured")
        elif "perplexity_per_base" in row:
            cells.append(interval(row["perplexity_per_base"], row["perplexity_per_base_ci"], 3))
        else:
            cells.append(row["error"])
    return [f"Perplexity per base on the held-out region ({s['windows']} windows per context on the same centres, "
            "[95% bootstrap interval over windows]):", "",
            "| " + " | ".join(f"{format_size(c)} ({c / s['context']:g}×)" for c in s["contexts"]) + " |",
            "|" + " ---: |" * len(s["contexts"]),
            "| " + " | ".join(cells) + " |", ""]


def _variants(state: dict, model: str) -> list[str]:
    s = state["settings"]
    sites = state.get("variant_sites")
    stages = state.get("variants", {}).get(model, {})
    if sites is None or not stages:
        return ["Zero-shot variant signal: not measured.", ""]
    contexts = s["variant_contexts"]
    lines = [f"Zero-shot variant signal: AUROC of singleton (AC = 1) against common (AF ≥ 5%) SNVs, "
             f"{sites['per_class']} of each in {sites['region']}, singletons positive, the "
             "negated score as predictor, [95% bootstrap interval over sites]; the untrained control is the same "
             "architecture with the initial weights of this training:", "",
             "| weights | score | " + " | ".join(format_size(c) for c in contexts) + " |",
             "| --- | --- |" + " ---: |" * len(contexts)]
    for weights in ("trained", "untrained"):
        for score in SCORES:
            cells = [interval(r[score]["auroc"], r[score]["ci"], 3) if (r := stages.get(weights, {}).get(str(c)))
                     else "not measured" for c in contexts]
            lines.append(f"| {weights} | {score} | " + " | ".join(cells) + " |")
    verdicts = []
    for score in SCORES:
        for c in contexts:
            r = stages.get("trained", {}).get(str(c))
            if r:
                low, high = r[score]["ci"]
                where = "above 0.5" if low > 0.5 else "below 0.5" if high < 0.5 else "not distinguishable from 0.5"
                verdicts.append(f"{score} at {format_size(c)} {where}")
    return lines + ["", "Trained model: " + "; ".join(verdicts) + ".", ""]


def install(suite_out: Path, target: Path, model: str = "caduceus-ps") -> Path:
    """Install ``model`` of the suite output ``suite_out`` at ``target`` with its card; returns ``target``."""
    try:
        results = json.loads((suite_out / "results.json").read_text())
        state = results["state"]
    except (OSError, ValueError, KeyError):
        raise LrgenError(f"{suite_out}: no readable results.json of the pretraining suite") from None
    if model not in state.get("train", {}):
        raise LrgenError(f"{suite_out}: the suite has not finished training {model}; run it to the end first")
    staged = unpack(suite_out / "models" / f"{model}.safetensors", temporary_sibling(target, "new"))
    try:
        loaded = load_checkpoint(staged)
        config = json.loads((staged / "config.json").read_text())
        expected = state["train"][model]["parameters"]
        if loaded.family != "caduceus" or not config.get("rcps") or loaded.num_parameters() != expected:
            raise LrgenError(f"{suite_out}: {model} is not the Caduceus-PS of {expected:,} parameters the suite "
                             "trained")
        size = (staged / SAFETENSORS_NAME).stat().st_size
        if size > MAX_BYTES:
            raise LrgenError(f"{model}: weights of {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB allowed")
        (staged / "README.md").write_text(card(state, model, loaded.num_parameters(), config))
        replace_dir(staged, target)
    finally:
        if staged.exists():
            shutil.rmtree(staged)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", required=True, help="the suite's --out folder (results.json, models/)")
    p.add_argument("--target", default=str(BUNDLED_DIR / NAME),
                   help=f"model folder to replace [lrgen/data/models/{NAME}]")
    args = p.parse_args(argv)
    try:
        target = install(Path(args.suite), Path(args.target))
    except LrgenError as err:
        print(f"install_demo_model: error: {err}", file=sys.stderr)
        return 1
    size = (target / SAFETENSORS_NAME).stat().st_size
    print(f"installed {target} ({size / 1e6:.1f} MB of weights); its card: {target / 'README.md'}")
    print("next: the golden outputs of tests/test_golden_outputs.py were recorded with the previous model; record "
          "them again and review the diff: bash tests/data/golden/make.sh 'python -m lrgen'")
    print("then read again what describes the bundled model in words: " + ", ".join(DESCRIBED_IN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
