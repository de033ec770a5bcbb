"""Pooling, RC-invariant pooling for Caduceus-PS, conjoining, k-mer batches, streaming and head shapes."""

from __future__ import annotations

import pytest
import torch

import lrgen
from lrgen.errors import LrgenError
from lrgen.glrb.batches import Tokens, WindowDataset, collate
from lrgen.glrb.data import make_windows, read_task
from lrgen.glrb.heads import GlrbModel, make_spec
from lrgen.glrb.pooling import bin_mean, centre_mean
from lrgen.glrb.tasks import get_task
from lrgen.io.genome import Genome
from lrgen.tokenizer import reverse_complement_ids


@pytest.fixture(scope="module")
def bench(glrb_bench):
    data, genome = glrb_bench(n_train=6, n_test=4)
    return data, Genome(genome)


def _batch(bench, task_name, context, kind="char", n=4):
    data, genome = bench
    table = read_task(get_task(task_name), data)
    w = make_windows(table, table.split("train")[:n], genome, context)
    tokens = Tokens(kind)
    items = [WindowDataset(w, tokens, ["Liver", "Lung"])[i] for i in range(len(w.records))]
    return collate(items, tokens.pad_id, context)


def test_pooling_matches_loops():
    torch.manual_seed(0)
    h = torch.randn(2, 10, 3)
    pos = torch.tensor([[0, 6, 12, 18, 24, 25, 26, 27, -1, -1], [0, 1, 2, 3, 4, 10, 16, 22, 28, 34]])
    got = centre_mean(h, pos, 5, 25)
    for b in range(2):
        sel = [t for t in range(10) if 5 <= pos[b, t] < 25]
        torch.testing.assert_close(got[b], h[b, sel].mean(0), rtol=1e-6, atol=1e-6)
    bins = bin_mean(h, pos, 0, 3, 10)
    for b in range(2):
        for k in range(3):
            sel = [t for t in range(10) if 10 * k <= pos[b, t] < 10 * (k + 1)]
            want = h[b, sel].mean(0) if sel else torch.zeros(3)
            torch.testing.assert_close(bins[b, k], want, rtol=1e-6, atol=1e-6)


def test_ps_pooling_is_rc_invariant(bench):
    backbone = lrgen.load_model("caduceus-ps-tiny")
    spec = make_spec(backbone, "promoter", 256, 1)
    assert spec.rc_pool and spec.in_features == backbone.hidden_size // 2
    model = GlrbModel(backbone, spec).eval()
    batch = _batch(bench, "promoter", 256)
    rc = dict(batch, ids=reverse_complement_ids(batch["ids"]))
    with torch.no_grad():
        torch.testing.assert_close(model.features(rc), model.features(batch), rtol=1e-4, atol=1e-5)


def test_conjoined_ph_pooling_is_rc_invariant(bench):
    backbone = lrgen.load_model("caduceus-ph-tiny")
    model = GlrbModel(backbone, make_spec(backbone, "promoter", 256, 1, conjoin=True)).eval()
    plain = GlrbModel(backbone, make_spec(backbone, "promoter", 256, 1)).eval()
    batch = _batch(bench, "promoter", 256)
    rc = dict(batch, ids=reverse_complement_ids(batch["ids"]))
    with torch.no_grad():
        torch.testing.assert_close(model.features(rc), model.features(batch), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(plain.features(rc), plain.features(batch), atol=1e-3)


def test_streamed_features_equal_whole_pass(bench):
    backbone = lrgen.load_model("hawk-tiny")
    model = GlrbModel(backbone, make_spec(backbone, "histone", 512, 20)).eval()
    batch = _batch(bench, "histone", 512)
    with torch.no_grad():
        torch.testing.assert_close(model.features(batch, chunk_size=100), model.features(batch), rtol=1e-4, atol=1e-5)


def test_kmer_variant_batch_and_head_shapes(bench):
    backbone = lrgen.load_model("ntv2-tiny")
    with pytest.raises(LrgenError, match="conjoin"):
        make_spec(backbone, "eqtl", 1536, 1, conjoin=True)
    spec = make_spec(backbone, "eqtl", 1536, 1, tissues=["Liver", "Lung"])
    model = GlrbModel(backbone, spec).eval()
    batch = _batch(bench, "eqtl", 1536, kind="kmer")
    assert batch["ids"].shape == batch["alt_ids"].shape and batch["ids"].shape[1] >= 1536 // 6
    with torch.no_grad():
        out = model(batch)
    assert out.shape == (len(batch["label"]), 1) and torch.isfinite(out).all()


@pytest.mark.parametrize("task, context, shape", [("cage", 1024, (8, 50)), ("bulk_rna", 1536, (218,)), ("clinvar", 1536, (1,))])
def test_head_output_shapes(bench, task, context, shape):
    backbone = lrgen.load_model("hawk-tiny")
    n_out = shape[-1]
    model = GlrbModel(backbone, make_spec(backbone, task, context, n_out)).eval()
    batch = _batch(bench, task, context, n=2)
    with torch.no_grad():
        out = model(batch)
    assert out.shape == (2, *shape) == batch["label"].shape


def test_long_contexts_stream_automatically_for_ssms_only():
    from lrgen.glrb.inference import AUTO_STREAM_BP, stream_chunk

    for name, streams in (("hawk-tiny", True), ("ntv2-tiny", False)):
        backbone = lrgen.load_model(name)
        model = GlrbModel(backbone, make_spec(backbone, "promoter", 256, 1))
        assert stream_chunk(model, 12_000, None) is None
        assert stream_chunk(model, 1_000_000, None) == (AUTO_STREAM_BP if streams else None)
        assert stream_chunk(model, 12_000, 4096) == 4096
