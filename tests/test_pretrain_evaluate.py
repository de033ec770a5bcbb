"""evaluate_mlm: perplexity at several contexts, streamed vs whole, NTv2 beyond its trained context, outputs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lrgen.errors import LrgenError
from lrgen.pretrain.evaluate import MlmOptions, evaluate_mlm, mlm_table
from lrgen.pretrain.loop import run_pretrain

from helpers import random_bases, write_fasta


@pytest.fixture
def fasta(tmp_path):
    return str(write_fasta(tmp_path / "heldout.fa", {"a": random_bases(3000, 1), "b": "ACGT" * 100}))


def test_rows_outputs_and_streaming_matches_one_chunk(fasta, tmp_path):
    out = tmp_path / "eval"
    streamed = evaluate_mlm(MlmOptions(model="hawk-tiny", fasta=[fasta], context=[300, 80, 5000], windows=2, chunk_size=37, device="cpu", output=str(out)))
    rows = streamed["results"]
    assert [r["context"] for r in rows] == [80, 300, 5000]
    assert rows[2]["error"] == "longest contig is 3000 bp"
    for row in rows[:2]:
        assert row["mode"] == "stream" and row["tokens_per_window"] == row["context"]
        assert row["targets"] > 0 and 0 <= row["accuracy"] <= 1
        assert row["perplexity"] == pytest.approx(math.exp(row["loss"]))
        assert row["perplexity"] == pytest.approx(row["perplexity_per_base"])
        assert row["loss"] == pytest.approx(math.log(12), abs=0.4)  # untrained: near uniform
    whole = evaluate_mlm(MlmOptions(model="hawk-tiny", fasta=[fasta], context=[80, 300], windows=2, chunk_size=5000, device="cpu"))
    for a, b in zip(rows, whole["results"]):
        assert a["targets"] == b["targets"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    saved = json.loads((out / "mlm.json").read_text())
    assert saved["results"] == json.loads(json.dumps(rows)) and saved["trained_context"] is None
    assert (out / "mlm.tsv").read_text().splitlines()[0].startswith("context\t")
    assert (out / "mlm.png").stat().st_size > 1000
    assert mlm_table(streamed).row_count == 3


def test_ntv2_reports_contexts_beyond_its_training(fasta, tmp_path):
    run = tmp_path / "nt"
    run_pretrain(dict(model="ntv2-tiny", fasta=[fasta], output=str(run), context=300, steps=1, batch_size=2,
                      val_windows=2, val_fraction=0.2))
    result = evaluate_mlm(MlmOptions(model=str(run), fasta=[fasta], context=[120, 600], windows=2, device="cpu"))
    assert result["trained_context"] == 300 and result["family"] == "ntv2"
    short, long = result["results"]
    assert short["mode"] == "full" and not short["beyond_trained_context"] and long["beyond_trained_context"]
    assert long["tokens_per_window"] == 100  # 6-mers
    assert long["perplexity_per_base"] == pytest.approx(math.exp(long["loss"] / 6))


def test_out_of_memory_is_recorded_and_longer_contexts_skipped(fasta, monkeypatch):
    from lrgen.pretrain import evaluate

    real = evaluate.forward

    def limited(lm, inputs, output, **kwargs):
        if inputs.shape[1] > 200:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(lm, inputs, output, **kwargs)

    monkeypatch.setattr(evaluate, "forward", limited)
    rows = evaluate_mlm(MlmOptions(model="hawk-tiny", fasta=[fasta], context=[100, 300, 1000], windows=2, device="cpu"))["results"]
    assert "error" not in rows[0] and rows[0]["targets"] > 0
    assert rows[1]["error"] == "out of GPU memory"
    assert rows[2]["error"] == "skipped after out of GPU memory at 300 bp"


def test_per_window_sums_bootstrap_interval_and_a_shared_centre_span(fasta):
    from lrgen.pretrain.evaluate import bootstrap_perplexity

    both = evaluate_mlm(MlmOptions(model="hawk-tiny", fasta=[fasta], context=[80, 1000], windows=4, device="cpu"))
    row80, row1000 = both["results"]
    assert len(row80["per_window"]) == 4 and sum(w[1] for w in row80["per_window"]) == row80["targets"]
    assert math.fsum(w[0] for w in row80["per_window"]) / row80["targets"] == pytest.approx(row80["loss"])
    low, high = row80["perplexity_per_base_ci"]
    assert low <= row80["perplexity_per_base"] <= high and low < high
    # one context per call, centres drawn for the span of the largest: the same windows as in one call
    alone = evaluate_mlm(MlmOptions(model="hawk-tiny", fasta=[fasta], context=[80], windows=4, device="cpu",
                                    centre_span=1000))["results"][0]
    assert alone["per_window"] == row80["per_window"] and alone["perplexity_per_base_ci"] == [low, high]
    drawn_for_80 = evaluate_mlm(MlmOptions(model="hawk-tiny", fasta=[fasta], context=[80], windows=4, device="cpu"))
    assert drawn_for_80["results"][0]["per_window"] != row80["per_window"]
    with pytest.raises(LrgenError, match="centre span 500 bp must cover the largest context"):
        evaluate_mlm(MlmOptions(model="hawk-tiny", fasta=[fasta], context=[1000], windows=1, device="cpu",
                                centre_span=500))
    # a 6-mer model's loss is per 6 bases; one window gives a zero-width interval
    assert bootstrap_perplexity([[12.0, 2, 1]], 6, seed=0) == pytest.approx([math.exp(1.0)] * 2)
