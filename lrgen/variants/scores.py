"""The variant scores and their exact definitions (docs/score-vcf.md has the full text and sign conventions).

Every score compares the ALT allele with the REF allele in the same genomic context (the window):

- ``llr``: masked marginal. The REF bases are replaced by [MASK]; ``sum_i log p(alt_i) - log p(ref_i)`` over the
  masked positions where the alleles differ. SNVs and MNPs only (an indel has no base-to-base pairing).
- ``wt-marginal``: the same sum read from the unmasked reference pass (Meier et al. 2021), so one pass per window
  scores every SNV/MNP in it.
- ``embedding``: ``emb_cos = 1 - cos(e_ref, e_alt)`` and ``emb_l2 = |e_ref - e_alt|``, where ``e`` is the mean
  last hidden state over the allele and ``embedding_span // 2`` bp on each side of it, in that allele's own
  sequence (flanks aligned, so indels are defined too).
- ``head``: a fine-tuned model's head (``lrgen finetune``) on the hidden states around the allele, pooled as in
  fine-tuning (RC-invariant halves for PS, conjoined when the head was). A variant head (GLRB variant tasks,
  ``--task table`` with variants) gives its probability (binary) or value from ``mean(ref) ⊕ mean(alt)`` over its
  ``pool_bp`` centred on the allele, tissue "unknown" for eQTL heads; a ``centre`` head (``--task regions``,
  regulatory elements) gives ``head(alt) - head(ref)`` of its probabilities over its ``pool_bp`` centred on the
  allele, and a ``bins`` head (``--task tracks``, CAGE) that delta of its predicted values for one bin centred on
  the allele. A head with several outputs gives their mean. Any scorable allele (indels too).

Negative ``llr``/``wt-marginal`` means the model finds ALT less likely than REF; larger embedding distances mean
a larger change. Strands: non-RC-equivariant models are conjoined with their reverse complement (outputs
averaged); an RC-equivariant (PS) model gives the same log-ratios on both strands, so one pass serves.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from lrgen.engine import Edit, EditOutput
from lrgen.io.scored_vcf import SCORE_FIELDS, substitution_applies
from lrgen.tokenizer import CharTokenizer
from lrgen.variants.passes import WindowPasses
from lrgen.variants.triage import Allele
from lrgen.variants.windows import Window

SCORES = ("llr", "wt-marginal", "embedding", "head")
# score -> the values it writes (TSV column names), and value -> (INFO key, description)
VALUES = {"llr": ("llr",), "wt-marginal": ("wt_marginal",), "embedding": ("emb_cos", "emb_l2"), "head": ("head",)}
_DESCRIPTIONS = {
    "llr": "Masked-marginal log-likelihood ratio log p(ALT) - log p(REF) at the masked REF bases (SNV/MNP), {strands}",
    "wt_marginal": "Wild-type marginal log p(ALT) - log p(REF) from the unmasked reference pass (SNV/MNP), {strands}",
    "emb_cos": "Cosine distance 1 - cos between mean REF and ALT embeddings around the allele",
    "emb_l2": "L2 distance between mean REF and ALT embeddings around the allele",
    "head": "Fine-tuned head: a variant head's probability, else its ALT - REF delta around the allele (mean over "
            "outputs)",
}
INFO = {value: (SCORE_FIELDS[value], description) for value, description in _DESCRIPTIONS.items()}

Tick = Callable[[int], None]


def substitution_logratio(logits: Tensor, ref: str, alt: str, tokenizer: CharTokenizer) -> float:
    """``sum_i log p(alt_i) - log p(ref_i)`` over positions where ``ref`` and ``alt`` (equal length) differ, the
    bases' logit columns those of the model's ``tokenizer``."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    rows = [i for i, (r, a) in enumerate(zip(ref, alt)) if r != a]
    index = torch.tensor(rows, dtype=torch.long, device=logp.device)
    alt_ids = tokenizer.encode("".join(alt[i] for i in rows)).to(logp.device)
    ref_ids = tokenizer.encode("".join(ref[i] for i in rows)).to(logp.device)
    return float((logp[index, alt_ids] - logp[index, ref_ids]).sum())


def embedding_distances(ref: Tensor, alt: Tensor) -> tuple[float, float]:
    """``(1 - cos, L2)`` between two mean embeddings."""
    ref, alt = ref.float(), alt.float()
    cos = torch.nn.functional.cosine_similarity(ref, alt, dim=0)
    return float(1 - cos), float(torch.linalg.vector_norm(ref - alt))


def score_window(window: Window, passes: WindowPasses, scores: tuple[str, ...], *, embedding_span: int,
                 tick: Tick | None = None, head: tuple | None = None) -> None:
    """Fill ``allele.scores`` / ``allele.not_applicable`` of every scorable allele of ``window``.

    ``head`` is ``(FinetunedModel, WindowPasses)`` for the ``head`` score (its own passes: the head fixes
    conjoining).
    """
    alleles = window.alleles()
    substitutions = []
    for allele in alleles:
        why = substitution_applies(allele.variant)
        if why is None:
            substitutions.append(allele)
        else:
            for score in ("llr", "wt-marginal"):
                if score in scores:
                    allele.not_applicable[score] = why
    if "wt-marginal" in scores and substitutions:
        _wt_marginal(window, passes, substitutions)
    if "llr" in scores and substitutions:
        _llr(window, passes, substitutions, tick)
    if "embedding" in scores and alleles:
        _embedding(window, passes, alleles, embedding_span, tick)
    if "head" in scores and alleles:
        _head(window, *head, alleles, tick)
    for allele in alleles:
        if not allele.scores:
            allele.skip = "no_score_applies"


def passes_needed(window: Window, scores: tuple[str, ...]) -> int:
    """How many edited passes :func:`score_window` runs for ``window`` (for progress)."""
    alleles = window.alleles()
    sites = {(a.variant.start, len(a.ref)) for a in alleles if substitution_applies(a.variant) is None}
    per_allele = ("embedding" in scores) + ("head" in scores)
    return (len(sites) if "llr" in scores else 0) + per_allele * len(alleles)


def _offset(window: Window, allele: Allele) -> int:
    return allele.variant.start - window.start


def _wt_marginal(window: Window, passes: WindowPasses, alleles: list[Allele]) -> None:
    logits, tokenizer = passes.reference("logits"), passes.tokenizer
    snvs = [a for a in alleles if len(a.ref) == 1]
    if snvs:  # every SNV of the window in one gather
        logp = torch.log_softmax(logits.float(), dim=-1)
        at = torch.tensor([_offset(window, a) for a in snvs], device=logp.device)
        alt = tokenizer.encode("".join(a.alt for a in snvs)).to(logp.device)
        ref = tokenizer.encode("".join(a.ref for a in snvs)).to(logp.device)
        for allele, value in zip(snvs, (logp[at, alt] - logp[at, ref]).cpu().tolist()):
            allele.scores["wt_marginal"] = value
    for allele in alleles:
        if len(allele.ref) > 1:
            o = _offset(window, allele)
            allele.scores["wt_marginal"] = substitution_logratio(logits[o : o + len(allele.ref)], allele.ref,
                                                                 allele.alt, tokenizer)


def _llr(window: Window, passes: WindowPasses, alleles: list[Allele], tick: Tick | None) -> None:
    sites: dict[tuple[int, int], list[Allele]] = {}
    for allele in alleles:
        sites.setdefault((_offset(window, allele), len(allele.ref)), []).append(allele)
    keys = list(sites)
    tokenizer = passes.tokenizer
    edits = [Edit(o, o + r, torch.full((r,), tokenizer.mask_id, dtype=torch.long)) for o, r in keys]
    masked = passes.edited(edits, "logits", reduce=lambda region: region.values.float().cpu(), advance=tick)
    for key, logits in zip(keys, masked):
        for allele in sites[key]:
            allele.scores["llr"] = substitution_logratio(logits, allele.ref, allele.alt, tokenizer)


def _embedding(window: Window, passes: WindowPasses, alleles: list[Allele], span: int, tick: Tick | None) -> None:
    half = span // 2
    hidden = passes.reference("hidden")
    length = passes.length
    ref_means = []
    edits = []
    for allele in alleles:
        o, r = _offset(window, allele), len(allele.ref)
        left, right = min(half, o), min(half, length - o - r)
        ref_means.append(hidden[o - left : o + r + right].float().mean(0))
        edits.append(Edit(o, o + r, passes.tokenizer.encode(allele.alt), margin=half))
    del hidden

    def mean(region: EditOutput) -> Tensor:
        return region.values.float().mean(0)

    alt_means = passes.edited(edits, "hidden", reduce=mean, advance=tick)
    for allele, ref_mean, alt_mean in zip(alleles, ref_means, alt_means):
        allele.scores["emb_cos"], allele.scores["emb_l2"] = embedding_distances(ref_mean, alt_mean)


def _head(window: Window, model, passes: WindowPasses, alleles: list[Allele], tick: Tick | None) -> None:
    half = model.allele_width // 2

    def pooled(values: Tensor, at: int) -> Tensor:
        mean = values[max(0, at - half) : at + half].float().mean(0)
        if model.spec.rc_pool:  # as lrgen.models.pooling.rc_invariant over a region centred on the allele
            width = mean.shape[0] // 2
            mean = (mean[:width] + mean[width:].flip(0)) / 2
        return mean

    hidden = passes.reference("hidden")
    ref_features = [pooled(hidden, _offset(window, a)) for a in alleles]
    del hidden
    edits = [Edit(_offset(window, a), _offset(window, a) + len(a.ref), passes.tokenizer.encode(a.alt), margin=half)
             for a in alleles]
    alt_features = passes.edited(edits, "hidden", reduce=lambda region: pooled(region.values, region.offset),
                                 advance=tick)
    with torch.no_grad():
        if model.spec.pooling == "variant":
            features = torch.stack([torch.cat([r, a]) for r, a in zip(ref_features, alt_features)])
            tissue = torch.zeros(len(alleles), dtype=torch.long, device=features.device)  # 0: tissue unknown
            values = model.scores(features, tissue)
        else:
            values = model.scores(torch.stack(alt_features)) - model.scores(torch.stack(ref_features))
    for allele, value in zip(alleles, values.float().mean(-1).cpu().tolist()):
        allele.scores["head"] = value
