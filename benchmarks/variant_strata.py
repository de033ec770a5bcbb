"""The pretraining suite's singleton-vs-common AUROCs split by what the sites are: CpG or not, transition or
transversion — to see whether a score separates the classes through mutability, which differs between them,
rather than through anything the model learnt about selection.

Reads a suite's ``--out`` (``results.json``: the sites with REF/ALT and every stage's per-site scores) and the human
FASTA the sites lie on; prints Markdown: each class's share of CpG sites and transitions, then per model, weights,
score and context the AUROC (singletons positive, negated score) over all sites, non-CpG and CpG sites, with 95%
bootstrap intervals, and the correlation of the negated score with CpG status.

    python benchmarks/variant_strata.py --suite SUITE_OUT --human DATA/human/20.fa.gz
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrgen.errors import LrgenError  # noqa: E402
from lrgen.pretrain.data import load_species, parse_region  # noqa: E402
from lrgen.sizes import format_size  # noqa: E402
from lrgen.training.metrics import auroc, bootstrap_ci  # noqa: E402

TRANSITIONS = {("A", "G"), ("G", "A"), ("C", "T"), ("T", "C")}
BOOTSTRAP = 1000


def site_classes(sites: dict, human: str) -> tuple[np.ndarray, np.ndarray]:
    """(CpG, transition) flags per site: CpG when REF is the C of a CG or the G of one, on the forward strand."""
    chrom = parse_region(sites["region"]).chrom
    species = load_species(human)
    contig = next((c for c in species.contigs if c.name.removeprefix("chr") == chrom.removeprefix("chr")), None)
    if contig is None:
        raise LrgenError(f"{human}: no contig {chrom}, where the suite's sites lie")
    seq = contig.seq
    cpg, transition = [], []
    for pos, ref, alt in zip(sites["pos"], sites["ref"], sites["alt"]):
        base = chr(seq[pos - 1])
        if base != ref:
            raise LrgenError(f"{human}: {chrom}:{pos} is {base}, the suite's site has REF {ref}: another assembly?")
        cpg.append((ref == "C" and chr(seq[pos]) == "G") or (ref == "G" and chr(seq[pos - 2]) == "C"))
        transition.append((ref, alt) in TRANSITIONS)
    return np.array(cpg), np.array(transition)


def cell(y: np.ndarray, score: np.ndarray, seed: int) -> str:
    ok = np.isfinite(score)
    if ok.sum() < 2 or len(set(y[ok])) < 2:
        return "-"
    lo, hi = bootstrap_ci("auroc", y[ok], score[ok], BOOTSTRAP, seed)
    return f"{auroc(y[ok], score[ok]):.3f} [{lo:.3f}–{hi:.3f}]"


def report(state: dict, human: str, seed: int) -> str:
    sites = state.get("variant_sites")
    if sites is None:
        raise LrgenError("the suite has no variant sites yet (its variant stage has not started)")
    y = np.array(sites["singleton"], dtype=bool)
    cpg, transition = site_classes(sites, human)
    lines = [f"Sites: {y.sum()} singletons, {(~y).sum()} common; CpG {cpg[y].mean():.1%} of singletons and "
             f"{cpg[~y].mean():.1%} of common alleles; transitions {transition[y].mean():.1%} and "
             f"{transition[~y].mean():.1%}.", "",
             "| model | weights | score | context | AUROC, all | non-CpG | CpG | corr(−score, CpG) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, by_weights in state.get("variants", {}).items():
        for weights in ("trained", "untrained"):
            for context, stage in sorted(by_weights.get(weights, {}).items(), key=lambda kv: int(kv[0])):
                for score in ("llr", "wt-marginal"):
                    values = -np.array([np.nan if v is None else v for v in stage[score]["values"]], dtype=float)
                    ok = np.isfinite(values)
                    corr = np.corrcoef(values[ok], cpg[ok])[0, 1] if ok.sum() > 2 else float("nan")
                    lines.append(f"| {name} | {weights} | {score} | {format_size(int(context))} | "
                                 f"{cell(y, values, seed)} | {cell(y[~cpg], values[~cpg], seed)} | "
                                 f"{cell(y[cpg], values[cpg], seed)} | {corr:+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--suite", required=True, help="a pretraining suite's --out folder (results.json)")
    p.add_argument("--human", required=True, help="the FASTA the suite's sites lie on (its --human)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed [0]")
    args = p.parse_args(argv)
    try:
        try:
            state = json.loads((Path(args.suite) / "results.json").read_text())["state"]
        except (OSError, ValueError, KeyError):
            raise LrgenError(f"--suite {args.suite}: no readable results.json of the suite") from None
        print(report(state, args.human, args.seed), end="")
    except LrgenError as err:
        print(f"variant_strata: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
