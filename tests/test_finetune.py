"""Fine-tuning end to end on the fixture: learnable signal, save/load, resume, validation carve, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lrgen.errors import LrgenError
from lrgen.glrb.finetune import FinetuneOptions, carve_validation, finetune
from lrgen.glrb.data import make_windows, read_task
from lrgen.glrb.evaluate import EvaluateOptions, evaluate_task
from lrgen.glrb.tasks import get_task
from lrgen.io.genome import Genome
from lrgen.models.finetuned import load_finetuned
from lrgen.training.inference import loader, pooled_features, scores_from_features
from lrgen.training.loop import STATE_FILE


@pytest.fixture(scope="module")
def bench(glrb_bench):
    return glrb_bench(n_train=48, n_test=24)


def _config(bench, out, **kw) -> FinetuneOptions:
    data, genome = bench
    base = dict(task="promoter", model="hawk-tiny", data_dir=data, genome=genome, context=256, output=str(out),
                device="cpu", batch_size=16, warmup_steps=5)
    base.update(kw)
    return FinetuneOptions(**base)


def test_frozen_backbone_learns_the_fixture_signal(bench, tmp_path):
    summary = finetune(_config(bench, tmp_path / "ft", freeze_backbone=True, epochs=40, patience=100))
    assert summary["counts"]["train"]["n_heavy"] == 1
    result = evaluate_task(EvaluateOptions(task="promoter", model=str(tmp_path / "ft"), data_dir=bench[0], genome=bench[1], output=str(tmp_path / "ev"), device="cpu", bootstrap=20))
    row = result["contexts"][0]
    assert row["context"] == 256 and row["n"] == 24
    assert row["metrics"]["auroc"] >= 0.9
    saved = json.loads((tmp_path / "ev/results.json").read_text())
    assert saved["contexts"][0]["metrics"]["auroc"] == pytest.approx(row["metrics"]["auroc"])
    assert "| 256 | 24 |" in (tmp_path / "ev/results.md").read_text()


@pytest.fixture(scope="module")
def small_bench(glrb_bench):
    return glrb_bench(n_train=8, n_test=6)  # the size test_glrb_data.py uses: written once for both


def test_unfrozen_eqtl_saves_loads_and_resumes(small_bench, tmp_path):
    bench = small_bench
    out = tmp_path / "eqtl"
    cfg = _config(bench, out, task="eqtl", context=1536, batch_size=4, max_steps=2, eval_every=1, hidden=16)
    first = finetune(cfg)
    assert first["steps"] == 2 and [h["step"] for h in first["history"]] == [1, 2]
    state = torch.load(out / STATE_FILE, weights_only=True)
    assert state["run"]["done"]

    model, meta = load_finetuned(out)
    assert meta["head"]["tissues"] == sorted({"Whole_Blood", "Liver", "Lung", "Thyroid"} & set(meta["head"]["tissues"]))
    # the saved model reproduces the scores of a fresh load (backbone + head + task metadata round trip)
    data, genome = bench
    table = read_task(get_task("eqtl"), data)
    w = make_windows(table, table.split("test")[:4], Genome(genome), 1536)
    feats = pooled_features(model, loader(w, model.backbone.tokenizer, 4, model.spec.tissues), torch.device("cpu"))
    again, _ = load_finetuned(out)
    a = scores_from_features(model, feats, torch.device("cpu"))
    b = scores_from_features(again, feats, torch.device("cpu"))
    np.testing.assert_allclose(a, b, rtol=0, atol=0)

    with pytest.raises(LrgenError, match="pass --resume"):
        finetune(cfg)
    resumed = finetune(FinetuneOptions(**{**cfg.__dict__, "resume": True, "max_steps": 4}))
    assert resumed["steps"] == 4 and [h["step"] for h in resumed["history"]] == [1, 2, 3, 4]

    result = evaluate_task(EvaluateOptions(task="eqtl", model=str(out), data_dir=data, genome=genome, context=[1536, 2048], device="cpu"))
    assert [r["context"] for r in result["contexts"]] == [1536, 2048]
    with pytest.raises(LrgenError, match="fine-tuned on variant_effect_causal_eqtl, not variant_effect_pathogenic_omim"):
        evaluate_task(EvaluateOptions(task="omim", model=str(out), data_dir=data, genome=genome, device="cpu"))  # a tissue head does not transfer
    buckets = result["contexts"][0]["buckets"]
    assert set(buckets) == {"0-30k", "30-100k", ">100k"} and sum(b["n"] for b in buckets.values()) == 6


def test_validation_is_carved_from_train_by_locus(bench):
    table = read_task(get_task("eqtl"), bench[0])
    train, val = carve_validation(table, 0.25, seed=0)
    assert val and all(r.split == "train" for r in train + val)
    assert not {(r.chrom, r.center) for r in train} & {(r.chrom, r.center) for r in val}
    assert len(train) + len(val) == len(table.split("train"))
    cage = read_task(get_task("cage"), bench[0])
    assert all(r.split == "valid" for r in carve_validation(cage, 0.25, 0)[1])


def test_refusals(bench, tmp_path):
    with pytest.raises(LrgenError, match="only a test split"):
        finetune(_config(bench, tmp_path / "a", task="omim"))
    with pytest.raises(LrgenError, match="not found"):
        finetune(_config(bench, tmp_path / "b", resume=True))
    with pytest.raises(LrgenError, match="needs a fine-tuned model"):
        evaluate_task(EvaluateOptions(task="promoter", model="hawk-tiny", data_dir=bench[0], genome=bench[1], context=[256], device="cpu"))


def test_compile_flag_compiles_the_backbone(small_bench, tmp_path, monkeypatch):
    import lrgen.training.loop as train
    from lrgen.models import compile_position_wise

    calls = []
    monkeypatch.setattr(train, "compile_position_wise",
                        lambda model: calls.append(compile_position_wise(model, backend="aot_eager")))
    summary = finetune(_config(small_bench, tmp_path / "ft", max_steps=2, batch_size=4, hidden=16, compile=True))
    assert summary["steps"] == 2 and len(calls) == 1 and "layers.0.mlp.forward" in calls[0]
