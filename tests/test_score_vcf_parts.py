"""score-vcf's parts: batched local restarts against the engine, windows, log-ratios, strand handling."""

from __future__ import annotations

import pytest
import torch

import lrgen
from lrgen.engine import restream_span, stream
from lrgen.io.vcf import Variant
from lrgen.tokenizer import CHAR_TOKENIZER, MASK_ID, encode
from lrgen.engine import Edit as Replacement
from lrgen.variants.passes import WindowPasses
from lrgen.variants.scores import substitution_logratio
from lrgen.variants.triage import Allele, Entry
from lrgen.variants.windows import group_windows


REPLACEMENTS = [  # at the left end (zero forward state), inside, an insertion, a deletion, at the right end
    Replacement(3, 4, torch.tensor([MASK_ID]), margin=8),
    Replacement(150, 151, torch.tensor([MASK_ID]), margin=8),
    Replacement(120, 121, encode("ACGT"), margin=16),
    Replacement(200, 204, encode("G"), margin=16),
    Replacement(297, 298, encode("T"), margin=4),
    Replacement(60, 61, torch.tensor([MASK_ID]), margin=0),
]


@pytest.mark.parametrize("preset, conjoin", [("hawk-tiny", False), ("caduceus-ph-tiny", True)])
def test_batched_local_passes_equal_engine_restarts(preset, conjoin):
    model = lrgen.load_model(preset).eval()
    ref = torch.randint(7, 11, (300,))
    span, chunk = 64, 23
    passes = WindowPasses(model, ref, conjoin=conjoin, chunk_size=chunk, batch_size=4, recompute_span=span)
    regions = passes.edited(REPLACEMENTS, "logits", reduce=lambda region: region)
    _, record = stream(model, ref[None], chunk_size=chunk, conjoin=conjoin, record_every=span // 4)
    for r, region in zip(REPLACEMENTS, regions):
        lo, hi = max(0, r.start - span // 2), min(300, r.end + span // 2)
        ids = torch.cat([ref[lo : r.start], r.ids, ref[r.end : hi]])
        expected = restream_span(model, record, ids[None], (lo, hi), chunk_size=chunk)[0]
        at = r.start - lo
        left, right = min(r.margin, r.start), min(r.margin, 300 - r.end)
        assert region.offset == left
        torch.testing.assert_close(region.values, expected[at - left : at + len(r.ids) + right], atol=1e-5, rtol=1e-5)


def test_covering_span_equals_exact_passes():
    model = lrgen.load_model("caduceus-ph-tiny").eval()
    ref = torch.randint(7, 11, (300,))
    local = WindowPasses(model, ref, conjoin=True, chunk_size=64, batch_size=3, recompute_span=1024)
    exact = WindowPasses(model, ref, conjoin=True, chunk_size=64, batch_size=3, recompute_span=None)
    for output in ("logits", "hidden"):
        a = local.edited(REPLACEMENTS, output, reduce=lambda region: region.values)
        b = exact.edited(REPLACEMENTS, output, reduce=lambda region: region.values)
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_small_span_is_an_approximation_that_grows_better():
    """Recomputing more around a change gets closer to the exact pass (never worse, here strictly better)."""
    model = lrgen.load_model("hawk-tiny").eval()
    ref = torch.randint(7, 11, (400,))
    change = [Replacement(200, 201, torch.tensor([MASK_ID]), margin=8)]
    exact = WindowPasses(model, ref, conjoin=False, chunk_size=64, batch_size=1, recompute_span=None)
    truth = exact.edited(change, "logits", reduce=lambda region: region.values)[0]
    errors = []
    for span in (16, 64, 256):
        local = WindowPasses(model, ref, conjoin=False, chunk_size=64, batch_size=1, recompute_span=span)
        errors.append((local.edited(change, "logits", reduce=lambda region: region.values)[0] - truth).abs().max())
    assert errors[0] > errors[2] and errors[1] >= errors[2]


def test_ps_model_needs_no_reverse_complement_pass():
    """Caduceus-PS is RC-equivariant: its logits already equal the conjoined ones, so llr/wt-marginal match."""
    model = lrgen.load_model("caduceus-ps-tiny").eval()
    ref = torch.randint(7, 11, (128,))
    plain = WindowPasses(model, ref, conjoin=False, chunk_size=64, batch_size=1, recompute_span=None)
    both = WindowPasses(model, ref, conjoin=True, chunk_size=64, batch_size=1, recompute_span=None)
    torch.testing.assert_close(plain.reference("logits"), both.reference("logits"), atol=1e-5, rtol=1e-5)


def test_substitution_logratio_sums_differing_positions():
    logits = torch.randn(3, 12)
    logp = torch.log_softmax(logits, -1)
    ids = {b: int(encode(b)[0]) for b in "ACGT"}
    expected = (logp[0, ids["T"]] - logp[0, ids["A"]]) + (logp[2, ids["C"]] - logp[2, ids["G"]])
    assert substitution_logratio(logits, "AGG", "TGC", CHAR_TOKENIZER) == pytest.approx(float(expected), abs=1e-6)


def _entry(chrom: str, pos: int, ref: str = "A", alt: str = "G", number: int = 1, contig: str | None = "20") -> Entry:
    variant = Variant(chrom, pos, None, ref, alt, 0, "snv" if len(ref) == len(alt) == 1 else "deletion", number)
    allele = Allele(variant, skip=None if contig else "unknown_contig")
    return Entry(None, [allele], contig, number)


def test_windows_keep_order_share_context_and_leave_flanks():
    context = 1000
    positions = [100, 150, 590, 601, 2000, 1500, 1510]  # 1500 after 2000: input goes backwards
    entries = [_entry("20", p, number=i + 1) for i, p in enumerate(positions)]
    entries.insert(3, _entry("7", 10, number=99, contig=None))  # nothing to score: joins the open window
    entries.append(_entry("21", 100, number=100, contig="21"))
    windows = list(group_windows(entries, context))
    assert [e.number for w in windows for e in w.entries] == [e.number for e in entries]
    spans = [[a.variant.pos for a in w.alleles()] for w in windows]
    assert spans == [[100, 150, 590], [601], [2000], [1500, 1510], [100]]
    for window in windows:
        assert window.length == context
        for allele in window.alleles():
            assert allele.variant.start - window.start >= context // 4
            assert window.end - allele.variant.end >= context // 4
    assert windows[-1].contig == "21"


def test_snv_edit_windows_have_one_length_so_batches_fill():
    """With K = span / 4 every single-base edit recomputes exactly span + K bases, unless its window reaches past the
    last boundary (288 = 18 K, here) to the sequence end."""
    model = lrgen.load_model("hawk-tiny").eval()
    ref = torch.randint(7, 11, (300,))
    span = 64
    passes = WindowPasses(model, ref, conjoin=False, chunk_size=1000, batch_size=4, recompute_span=span)
    _, record = stream(model, ref[None], chunk_size=1000, record_every=passes.record_every)
    lengths = {end - start for start, end in
               (record.window(s - span // 2, s + 1 + span // 2) for s in range(span // 2, 288 - span // 2))}
    assert lengths == {span + span // 4}
