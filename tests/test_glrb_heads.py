"""GLRB heads on the fine-tuned model: pooling, RC-invariant pooling for Caduceus-PS, conjoining, k-mer batches,
streaming and head shapes."""

from __future__ import annotations

import pytest
import torch

import lrgen
from lrgen.errors import LrgenError
from lrgen.glrb.data import make_windows, read_task
from lrgen.glrb.heads import task_spec
from lrgen.glrb.tasks import get_task
from lrgen.io.genome import Genome
from lrgen.models.finetuned import FinetunedModel
from lrgen.models.pooling import bin_mean, centre_mean
from lrgen.tokenizer import CHAR_TOKENIZER, Tokens, reverse_complement_ids
from lrgen.training.batches import WindowDataset, collate
from lrgen.training.inference import batch_inputs, features


def make_spec(backbone, task: str, context: int, n_outputs: int, **kwargs):
    return task_spec(backbone, get_task(task), context, n_outputs, **kwargs)


def whole(model: FinetunedModel, batch: dict) -> torch.Tensor:
    """Features of a whole (not streamed) pass."""
    ids, positions = batch_inputs(batch)
    return model.pool(model.hidden(ids), positions, batch["context"])


def outputs(model: FinetunedModel, batch: dict) -> torch.Tensor:
    return model(*batch_inputs(batch), batch["context"], batch.get("tissue"))


@pytest.fixture(scope="module")
def bench(glrb_bench):
    data, genome = glrb_bench(n_train=6, n_test=4)
    return data, Genome(genome)


def _batch(bench, task_name, context, tokenizer=CHAR_TOKENIZER, n=4):
    data, genome = bench
    table = read_task(get_task(task_name), data)
    w = make_windows(table, table.split("train")[:n], genome, context)
    tokens = Tokens(tokenizer)
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
    model = FinetunedModel(backbone, spec).eval()
    batch = _batch(bench, "promoter", 256)
    rc = dict(batch, ids=reverse_complement_ids(batch["ids"]))
    with torch.no_grad():
        torch.testing.assert_close(features(model, rc), features(model, batch), rtol=1e-4, atol=1e-5)


def test_conjoined_ph_pooling_is_rc_invariant(bench):
    backbone = lrgen.load_model("caduceus-ph-tiny")
    model = FinetunedModel(backbone, make_spec(backbone, "promoter", 256, 1, conjoin=True)).eval()
    plain = FinetunedModel(backbone, make_spec(backbone, "promoter", 256, 1)).eval()
    batch = _batch(bench, "promoter", 256)
    rc = dict(batch, ids=reverse_complement_ids(batch["ids"]))
    with torch.no_grad():
        torch.testing.assert_close(features(model, rc), features(model, batch), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(features(plain, rc), features(plain, batch), atol=1e-3)


def test_streamed_features_equal_whole_pass(bench):
    backbone = lrgen.load_model("hawk-tiny")
    model = FinetunedModel(backbone, make_spec(backbone, "histone", 512, 20)).eval()
    batch = _batch(bench, "histone", 512)
    with torch.no_grad():
        torch.testing.assert_close(features(model, batch, chunk_size=100), whole(model, batch), rtol=1e-4, atol=1e-5)


def test_kmer_variant_batch_and_head_shapes(bench):
    backbone = lrgen.load_model("ntv2-tiny")
    with pytest.raises(LrgenError, match="conjoin"):
        make_spec(backbone, "eqtl", 1536, 1, conjoin=True)
    spec = make_spec(backbone, "eqtl", 1536, 1, tissues=["Liver", "Lung"])
    model = FinetunedModel(backbone, spec).eval()
    batch = _batch(bench, "eqtl", 1536, backbone.tokenizer)
    assert batch["ids"].shape == batch["alt_ids"].shape and batch["ids"].shape[1] >= 1536 // 6
    with torch.no_grad():
        out = outputs(model, batch)
    assert out.shape == (len(batch["label"]), 1) and torch.isfinite(out).all()


@pytest.mark.parametrize("task, context, shape", [("cage", 1024, (8, 50)), ("bulk_rna", 1536, (218,)), ("clinvar", 1536, (1,))])
def test_head_output_shapes(bench, task, context, shape):
    backbone = lrgen.load_model("hawk-tiny")
    n_out = shape[-1]
    model = FinetunedModel(backbone, make_spec(backbone, task, context, n_out)).eval()
    batch = _batch(bench, task, context, n=2)
    with torch.no_grad():
        out = outputs(model, batch)
    assert out.shape == (2, *shape) == batch["label"].shape


def test_features_stream_ssms_and_run_transformers_whole(bench):
    """The engine's chunk policy: Hawk streams (equal to its whole pass), NTv2 runs whole."""
    for name in ("hawk-tiny", "ntv2-tiny"):
        backbone = lrgen.load_model(name)
        model = FinetunedModel(backbone, make_spec(backbone, "promoter", 256, 1)).eval()
        batch = _batch(bench, "promoter", 256, backbone.tokenizer)
        with torch.no_grad():
            torch.testing.assert_close(features(model, batch, chunk_size=64), whole(model, batch), rtol=1e-4, atol=1e-5)
