"""The pretraining suite's singleton-vs-common AUROCs split by what the sites are: CpG or not, transition or
transversion, the substitution in its trinucleotide — to see whether a score separates the classes through
mutability, which differs between them, rather than through anything the model learnt about selection.

Reads a suite's ``--out`` (``results.json``: the sites with REF/ALT and every stage's per-site scores) and the human
FASTA the sites lie on; prints Markdown: each class's share of CpG sites and transitions, what local sequence alone
separates (each site scored by the singleton share of the other sites of its trinucleotide substitution class, one
of 96 with the strands folded together), then per model, weights, score and context the AUROC (singletons positive,
negated score) over all sites, matched on context (singletons compared only with common alleles of their own class:
the within-class pairs of every class pooled), over non-CpG and CpG sites, with 95% bootstrap intervals over sites,
and the correlation of the negated score with CpG status.

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
COMPLEMENT = str.maketrans("ACGTN", "TGCAN")
BOOTSTRAP = 1000


def substitution_class(left: str, ref: str, right: str, alt: str) -> str:
    """The substitution in its trinucleotide with a pyrimidine REF (``ACG>T``): a purine REF is read on the other
    strand, so the 192 classes fold into 96."""
    if ref in "AG":
        left, ref, right, alt = (b.translate(COMPLEMENT) for b in (right, ref, left, alt))
    return f"{left}{ref}{right}>{alt}"


def site_classes(sites: dict, human: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(CpG, transition, substitution class) per site: CpG when REF is the C of a CG or the G of one, on the forward
    strand."""
    chrom = parse_region(sites["region"]).chrom
    species = load_species(human)
    contig = next((c for c in species.contigs if c.name.removeprefix("chr") == chrom.removeprefix("chr")), None)
    if contig is None:
        raise LrgenError(f"{human}: no contig {chrom}, where the suite's sites lie")
    seq = contig.seq
    cpg, transition, classes = [], [], []
    for pos, ref, alt in zip(sites["pos"], sites["ref"], sites["alt"]):
        base = chr(seq[pos - 1])
        if base != ref:
            raise LrgenError(f"{human}: {chrom}:{pos} is {base}, the suite's site has REF {ref}: another assembly?")
        left, right = chr(seq[pos - 2]).upper(), chr(seq[pos]).upper()
        cpg.append((ref == "C" and right == "G") or (ref == "G" and left == "C"))
        transition.append((ref, alt) in TRANSITIONS)
        classes.append(substitution_class(left, ref, right, alt))
    return np.array(cpg), np.array(transition), np.array(classes)


def matched_auroc(y: np.ndarray, score: np.ndarray, classes: np.ndarray) -> float:
    """P(a singleton scores above a common allele of its own class), ties half: every class's Mann-Whitney pairs
    pooled (classes without both kinds add none); NaN without any pair."""
    wins = pairs = 0.0
    for c in np.unique(classes):
        m = classes == c
        n_pos, n_neg = int(y[m].sum()), int((~y[m]).sum())
        if n_pos and n_neg:
            wins += auroc(y[m], score[m]) * n_pos * n_neg
            pairs += n_pos * n_neg
    return wins / pairs if pairs else float("nan")


def context_only(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Each site's score from local sequence alone: the singleton share of the other sites of its class (leave one
    out, so a site does not predict itself; 0.5 for a class of one)."""
    out = np.empty(len(y))
    for c in np.unique(classes):
        m = classes == c
        n, k = int(m.sum()), int(y[m].sum())
        out[m] = (k - y[m]) / (n - 1) if n > 1 else 0.5
    return out


def cell(y: np.ndarray, score: np.ndarray, seed: int, classes: np.ndarray | None = None) -> str:
    """AUROC (matched on ``classes`` when given) with its 95% percentile bootstrap interval over sites."""
    ok = np.isfinite(score)
    if ok.sum() < 2 or len(set(y[ok])) < 2:
        return "-"
    y, score = y[ok], score[ok]
    if classes is None:
        lo, hi = bootstrap_ci("auroc", y, score, BOOTSTRAP, seed)
        return f"{auroc(y, score):.3f} [{lo:.3f}–{hi:.3f}]"
    classes = classes[ok]
    value = matched_auroc(y, score, classes)
    if np.isnan(value):
        return "-"
    rng = np.random.default_rng(seed)
    draws = [matched_auroc(y[i], score[i], classes[i]) for i in (rng.integers(0, len(y), len(y)) for _ in
                                                                  range(BOOTSTRAP))]
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return f"{value:.3f} [{lo:.3f}–{hi:.3f}]"


def report(state: dict, human: str, seed: int) -> str:
    sites = state.get("variant_sites")
    if sites is None:
        raise LrgenError("the suite has no variant sites yet (its variant stage has not started)")
    y = np.array(sites["singleton"], dtype=bool)
    cpg, transition, classes = site_classes(sites, human)
    lines = [f"Sites: {y.sum()} singletons, {(~y).sum()} common; CpG {cpg[y].mean():.1%} of singletons and "
             f"{cpg[~y].mean():.1%} of common alleles; transitions {transition[y].mean():.1%} and "
             f"{transition[~y].mean():.1%}; {len(np.unique(classes))} of the 96 substitution classes.", "",
             f"Local sequence alone (each site scored by the singleton share of the other sites of its substitution "
             f"class): AUROC {cell(y, context_only(y, classes), seed)}.", "",
             "| model | weights | score | context | AUROC, all | context-matched | non-CpG | CpG | corr(−score, CpG) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, by_weights in state.get("variants", {}).items():
        for weights in ("trained", "untrained"):
            for context, stage in sorted(by_weights.get(weights, {}).items(), key=lambda kv: int(kv[0])):
                for score in ("llr", "wt-marginal"):
                    values = -np.array([np.nan if v is None else v for v in stage[score]["values"]], dtype=float)
                    ok = np.isfinite(values)
                    corr = np.corrcoef(values[ok], cpg[ok])[0, 1] if ok.sum() > 2 else float("nan")
                    lines.append(f"| {name} | {weights} | {score} | {format_size(int(context))} | "
                                 f"{cell(y, values, seed)} | {cell(y, values, seed, classes)} | "
                                 f"{cell(y[~cpg], values[~cpg], seed)} | {cell(y[cpg], values[cpg], seed)} | "
                                 f"{corr:+.2f} |")
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
