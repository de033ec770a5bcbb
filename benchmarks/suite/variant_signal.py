"""Zero-shot variant signal: AUROC of singleton (AC = 1) against common (AF ≥ 5%) alleles on the held-out region.

Sites: biallelic SNVs of ``--vcf`` whose every scoring window lies inside ``--val-region`` (at least the largest
``--variant-contexts`` length from its ends), in two classes — singletons (INFO ``AC`` = 1: one copy among the
VCF's own ``AN`` haplotypes) and common alleles (INFO ``AF`` ≥ 0.05) — of which ``--variant-sites`` each are drawn
with ``--seed`` (all of a class when it has fewer). They are written as one sorted VCF that every stage scores.

Stages: each scorable model (trained, and its untrained control: the same architecture with the initial weights its
training started from) at each context, through lrgen's score-vcf job (:func:`lrgen.variants.score_vcf`, resumable,
so a stage cut by the deadline continues) with scores ``llr`` and ``wt-marginal``; edited passes recompute
``--recompute-span`` bp around each site from the reference pass's states. The AUROC takes singletons as positives
and the negated score as the predictor (AUROC > 0.5: the model finds singleton ALT alleles less likely than common
ones), with a percentile bootstrap interval over sites. NTv2 is not scorable: score-vcf needs per-base,
streamable models, and 6-mer tokens give no per-base probability (recorded as not applicable).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from lrgen.errors import LrgenError
from lrgen.io.genome import same_contig
from lrgen.io.vcf import open_vcf
from lrgen.pretrain.data import parse_region
from lrgen.runtime.files import atomic_write_text
from lrgen.sizes import format_size
from lrgen.training.metrics import auroc, bootstrap_ci
from lrgen.variants import ScoreVcfOptions, score_vcf

from suite.clock import OutOfTime, estimate_seconds
from suite.context import Suite, log
from suite.family import RC_EQUIVARIANT, SCORABLE

SCORES = ("llr", "wt-marginal")
COLUMNS = {"llr": "llr", "wt-marginal": "wt_marginal"}
COMMON_AF = 0.05
BOOTSTRAP = 1000
OVERHEAD = 5.0  # seconds to load a model, read the VCF and run the first kernels
NOT_SCORABLE = ("score-vcf needs a per-base, streamable model: NTv2's 6-mer tokens give no per-base probability and "
                "its attention cannot stream")


def run_variant_signal(suite: Suite) -> None:
    sites = _sites(suite)
    for name in suite.names:
        if name not in SCORABLE:
            suite.state.put("variants", name, value={"not_applicable": NOT_SCORABLE})
            continue
        for weights in ("trained", "untrained"):
            for context in suite.args.variant_contexts:
                if suite.state.get("variants", name, weights, str(context)) is None:
                    _score_stage(suite, sites, name, weights, context)


def _sites(suite: Suite) -> dict:
    """The balanced sample (drawn once): positions, alleles and class, and the VCF written from it."""
    sites = suite.state.get("variant_sites")
    path = suite.work / "variants" / "sites.vcf"
    if sites is not None and path.is_file():
        return sites
    a = suite.args
    region = parse_region(a.val_region)
    margin = max(a.variant_contexts)
    header, records = "", []
    with open_vcf(a.vcf) as reader:
        info = reader.header.info
        if "AC" not in info or "AF" not in info:
            raise LrgenError(f"{a.vcf}: needs INFO fields AC (allele count) and AF (allele frequency)")
        header = str(reader.header)
        for record, variants in reader:
            if len(variants) != 1 or variants[0].kind != "snv" or not set(record.ref + variants[0].alt) <= set("ACGT"):
                continue
            if not same_contig(record.chrom, region.chrom):
                continue
            if not region.start + margin <= record.pos - 1 < (region.end or 0) - margin:
                continue
            ac, af = _first(record.info.get("AC")), _first(record.info.get("AF"))
            if ac == 1 or (af is not None and af >= COMMON_AF):
                records.append((record.pos, record.ref, variants[0].alt, ac == 1, str(record)))
    singletons = [i for i, r in enumerate(records) if r[3]]
    common = [i for i, r in enumerate(records) if not r[3]]
    if not singletons or not common:
        raise LrgenError(f"{a.vcf}: no singleton or no common SNV inside {a.val_region} (at least "
                         f"{format_size(margin)} from its ends)")
    rng = np.random.default_rng(a.seed)
    n = min(a.variant_sites, len(singletons), len(common))
    chosen = sorted([*rng.choice(singletons, n, replace=False), *rng.choice(common, n, replace=False)],
                    key=lambda i: records[i][0])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, header + "".join(records[i][4] for i in chosen))
    sites = {"pos": [records[i][0] for i in chosen], "ref": [records[i][1] for i in chosen],
             "alt": [records[i][2] for i in chosen], "singleton": [records[i][3] for i in chosen],
             "available": {"singleton": len(singletons), "common": len(common)}, "per_class": n,
             "region": f"{region.chrom}:{region.start + margin + 1}-{(region.end or 0) - margin}"}
    suite.state.put("variant_sites", value=sites)
    log(f"variant sites: {n} singletons and {n} common SNVs (of {len(singletons):,} and {len(common):,}) "
        f"in {sites['region']}")
    return sites


def _first(value):
    """A Number=A field's first value (pysam gives a tuple), or a Number=1 field's value."""
    return value[0] if isinstance(value, tuple) else value


def _score_stage(suite: Suite, sites: dict, name: str, weights: str, context: int) -> None:
    a = suite.args
    work = _work(suite, sites, name, context)
    done = [(_work(suite, sites, name, int(c)), r["wall_seconds"])
            for w in ("trained", "untrained") for c, r in (suite.state.get("variants", name, w) or {}).items()]
    estimate = estimate_seconds(work, done, suite.state.get("train", name, "bases_per_s"), OVERHEAD)
    label = f"variants {name} ({weights}) at {format_size(context)}"
    if not suite.deadline.fits(estimate):
        log(f"{label}: estimated {estimate:,.0f} s, {max(suite.deadline.remaining(), 0):,.0f} s left")
        raise OutOfTime()
    model = suite.trained_model(name) if weights == "trained" else suite.init[name]
    folder = suite.work / "variants" / f"{name}-{weights}"
    folder.mkdir(parents=True, exist_ok=True)
    tsv = folder / f"{context}.tsv"
    started = time.perf_counter()
    summary = score_vcf(ScoreVcfOptions(
        suite.work / "variants" / "sites.vcf", Path(a.human), str(model), context, folder / f"{context}.vcf",
        scores=SCORES, tsv=tsv, resume=True, recompute_span=a.recompute_span, device=a.device,
        chunk_size=a.chunk_size, dtype="bfloat16" if suite.device.startswith("cuda") else "float32", progress=False))
    result = {"wall_seconds": time.perf_counter() - started, "estimated_seconds": estimate,
              "windows": summary.windows, **_aurocs(sites, tsv, a.seed)}
    suite.state.put("variants", name, weights, str(context), value=result)
    log(f"{label}: " + ", ".join(f"{s} AUROC {result[s]['auroc']:.3f} [{result[s]['ci'][0]:.3f}–"
                                  f"{result[s]['ci'][1]:.3f}]" for s in SCORES)
        + f" ({result['wall_seconds']:.1f} s, estimated {estimate:.0f} s)")


def _aurocs(sites: dict, tsv: Path, seed: int) -> dict:
    """Each score's AUROC (singletons positive, negated score) with its bootstrap interval, and the scores."""
    values: dict[tuple, dict[str, float]] = {}
    lines = tsv.read_text().splitlines()
    columns = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(columns, line.split("\t")))
        values[int(row["pos"]), row["ref"], row["alt"]] = {
            s: float(row[c]) if row[c] != "." else math.nan for s, c in COLUMNS.items()}
    keys = list(zip(sites["pos"], sites["ref"], sites["alt"]))
    y = np.array(sites["singleton"], dtype=bool)
    out = {}
    for score in SCORES:
        raw = np.array([values.get(k, {}).get(score, math.nan) for k in keys])
        ok = ~np.isnan(raw)
        interval = bootstrap_ci("auroc", y[ok], -raw[ok], BOOTSTRAP, seed)
        out[score] = {"auroc": auroc(y[ok], -raw[ok]), "ci": list(interval),
                      "scored": int(ok.sum()), "values": [None if math.isnan(v) else round(float(v), 5) for v in raw]}
    return out


def _work(suite: Suite, sites: dict, name: str, context: int) -> float:
    """Bases a stage passes through the model: a reference pass per window and a recomputed span per site, both
    strands for a model that is not RC-equivariant."""
    span = suite.args.recompute_span
    strands = 1 if name in RC_EQUIVARIANT else 2
    windows, first = 0, None
    for pos in sites["pos"]:
        if first is None or pos - first > context // 2:
            windows, first = windows + 1, pos
    return strands * (windows * context + len(sites["pos"]) * min(context, span + span // 4))
