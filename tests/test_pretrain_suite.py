"""The GPU pretraining suite's scripts, end to end on CPU with tiny models and a tiny budget: a call cut by its
deadline, the same command finishing the work, a cold machine finishing the evaluations from the returned weights,
and the bundled-model installer on the result."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import lrgen

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the suite's package, as the scripts run
RESULTS = ("perplexity_per_base", "perplexity_per_base_ci", "accuracy", "per_window")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(data: Path, out: Path, work: Path) -> list[str]:
    return ["--genomes", str(data / "genomes"), "--human", str(data / "human" / "20.fa.gz"),
            "--vcf", str(data / "human" / "chr20_1-4Mb.sites.vcf.gz"), "--out", str(out), "--work-dir", str(work),
            "--tiny", "--device", "cpu", "--reserve", "0.5", "--context", "120", "--sweep-batches", "2,4",
            "--sweep-lrs", "2e-3,4e-3", "--sweep-tokens", "1k", "--probe-steps", "2", "--tokens", "4k",
            "--val-windows", "2", "--eval-points", "2", "--contexts", "120,1.2k,4.8k", "--windows", "2",
            "--ntv2-max-context", "1.2k", "--variant-contexts", "256,1k", "--variant-sites", "3",
            "--attention-windows", "2", "--attention-queries", "16", "--recompute-span", "256"]


def _state(out: Path) -> tuple[bool, dict]:
    results = json.loads((out / "results.json").read_text())
    return results["complete"], results["state"]


@pytest.fixture(scope="module")
def suite_runs(shared_data, tmp_path_factory):
    """Three calls: one cut by a short deadline, the same command finishing, and a cold machine (new work folder)
    continuing from the second call's outputs with the evaluations taken out of its state."""
    suite = _script("pretrain_suite")
    root = tmp_path_factory.mktemp("suite")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every test runs (conftest), which a module fixture's setup precedes
    args = lambda out, work="work": _args(shared_data, root / out, root / work)  # noqa: E731
    assert suite.main([*args("out1"), "--deadline", "4"]) == 0
    assert suite.main(args("out2")) == 0
    complete, state = _state(root / "out2")
    cold = root / "cold"
    shutil.copytree(root / "out2" / "models", cold / "models")
    evaluations = {key: state.pop(key) for key in ("mlm", "variants", "attention")}
    (cold / "results.json").write_text(json.dumps({"complete": False, "state": state}))
    no_genomes = [*args("out3", "work3"), "--restore", str(cold)]
    no_genomes[1] = str(root / "absent")  # every model is trained: the training data is not needed
    assert suite.main(no_genomes) == 0
    torch.set_num_threads(threads)
    return root, evaluations


@pytest.mark.slow  # reads all 106 Mbp of the shared genomes; about 25 s
def test_a_call_cut_by_its_deadline_is_finished_by_the_same_command(suite_runs):
    root, _ = suite_runs
    complete, state = _state(root / "out1")
    assert not complete and state["calls"][0]["outcome"] == "deadline"
    complete, state = _state(root / "out2")
    assert complete and [c["outcome"] for c in state["calls"]] == ["deadline", "complete"]
    out = root / "out2"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["auroc.png", "models/caduceus-ps.safetensors", "models/hawk.safetensors",
                     "models/ntv2.safetensors", "perplexity.png", "results.json", "results.md", "training.png"]
    assert state["budget"]["tokens"] == 3840  # whole steps of every model's batch (4 × 120 bp)
    for name in ("caduceus-ps", "hawk", "ntv2"):
        choice, train = state["sweep"][name]["choice"], state["train"][name]
        assert choice["batch_size"] in (2, 4) and choice["lr"] in (2e-3, 4e-3)
        assert train["tokens"] == 3840 and train["steps"] == 3840 // (choice["batch_size"] * 120)
        assert train["rc_augment"] is (name != "caduceus-ps") and train["bases_per_s"] > 0
    ntv2 = state["mlm"]["ntv2"]
    assert "perplexity_per_base" in ntv2["1200"] and ntv2["4800"]["error"].startswith("not run: beyond")
    for name in ("caduceus-ps", "hawk"):
        rows = state["mlm"][name]
        assert [rows[c]["beyond_trained_context"] for c in ("120", "1200", "4800")] == [False, True, True]
        assert all(len(r["per_window"]) == 2 and r["perplexity_per_base_ci"][0] <= r["perplexity_per_base"]
                   for r in rows.values())
        for weights in ("trained", "untrained"):
            for context in ("256", "1000"):
                stage = state["variants"][name][weights][context]
                assert all(stage[s]["scored"] == 6 and 0 <= stage[s]["auroc"] <= 1 for s in ("llr", "wt-marginal"))
    assert "not_applicable" in state["variants"]["ntv2"]
    assert sum(state["variant_sites"]["singleton"]) == 3 and len(state["variant_sites"]["pos"]) == 6
    attention = state["attention"]
    assert sorted(attention) == ["trained", "untrained"] and sorted(attention["trained"]) == ["120", "1200"]
    for weights in ("trained", "untrained"):
        for context, row in attention[weights].items():
            assert len(row["layers"]) == 2 and all(len(heads) == 4 for heads in row["layers"])
            far = [h["far_mass"] for heads in row["layers"] for h in heads]
            assert all(f == 0 for f in far) if context == "120" else all(0 < f < 1 for f in far)
    # untrained, the attention of a query is close to uniform over the window's 200 tokens
    untrained = [h for heads in attention["untrained"]["1200"]["layers"] for h in heads]
    assert all(abs(h["entropy"] - math.log(200)) < 0.1 and h["far_mass"] > 0.7 for h in untrained)
    rope = state["rope"]
    assert len(rope["pairs"]) == 4 and rope["pairs"][0]["turns"]["120"] == pytest.approx(19 / (2 * math.pi))
    text = (out / "results.md").read_text()
    assert "| caduceus-ps | trained | llr |" in text and "| ntv2 | - | - | n/a |" in text
    assert "| untrained | 1.2kbp | 1 |" in text and "channel pairs make less than one turn" in text
    assert "not run yet" not in text


@pytest.mark.slow
def test_a_cold_machine_evaluates_the_returned_weights_alike(suite_runs, shared_data):
    root, evaluations = suite_runs
    complete, state = _state(root / "out3")
    assert complete and [c["outcome"] for c in state["calls"]] == ["deadline", "complete", "complete"]
    for name, rows in evaluations["mlm"].items():
        for context, row in rows.items():
            again = state["mlm"][name][context]
            assert {k: again.get(k) for k in RESULTS} == {k: row.get(k) for k in RESULTS}
    for weights, rows in evaluations["attention"].items():
        assert {c: r["layers"] for c, r in state["attention"][weights].items()} == {
            c: r["layers"] for c, r in rows.items()}
    for name in ("caduceus-ps", "hawk"):
        for weights in ("trained", "untrained"):
            for context, stage in evaluations["variants"][name][weights].items():
                again = state["variants"][name][weights][context]
                assert all(again[s]["values"] == stage[s]["values"] for s in ("llr", "wt-marginal"))
    changed = _script("pretrain_suite").main(_args(shared_data, root / "out4", root / "work3")[:-1] + ["512"])
    assert changed == 1  # the work folder was made with another --recompute-span


@pytest.mark.slow
def test_the_installer_writes_a_loadable_bundled_model_and_its_card(suite_runs, capsys):
    root, _ = suite_runs
    install = _script("install_demo_model")
    target = root / "installed" / "caduceus-ps-demo"
    assert install.main(["--suite", str(root / "out2"), "--target", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    _, state = _state(root / "out2")
    model = lrgen.load_model(str(target))
    assert model.family == "caduceus" and model.num_parameters() == state["train"]["caduceus-ps"]["parameters"]
    card = (target / "README.md").read_text()
    assert card.startswith("# Caduceus-PS, d_model 32 × 2 layers") and "not measured" not in card
    assert f"{state['train']['caduceus-ps']['tokens']:,} bases" in card and "| trained | llr |" in card
    assert install.main(["--suite", str(root / "missing"), "--target", str(target)]) == 1
    assert "no readable results.json" in capsys.readouterr().err


def test_the_card_says_whether_the_model_was_compared_and_its_rate_swept():
    install = _script("install_demo_model")
    assert install._compared(["caduceus-ps", "hawk", "ntv2"], "caduceus-ps").startswith(
        "The same recipe and token budget trained a Hawk and an NTv2 of the same size")
    assert install._compared(["caduceus-ps"], "caduceus-ps").startswith("It was trained alone")
    assert install._lr_choice([4e-3]) == "set, not swept, in this run"
    assert install._lr_choice([2e-3, 4e-3]).startswith("the lowest validation loss of 0.002, 0.004")


def test_context_matched_auroc_compares_sites_of_one_class():
    strata = _script("variant_strata")
    assert strata.substitution_class("A", "C", "G", "T") == "ACG>T"
    assert strata.substitution_class("C", "G", "T", "A") == "ACG>T"  # the same change read on the other strand
    y = np.array([1, 0, 1, 0, 1, 0], dtype=bool)
    classes = np.array(["a", "a", "b", "b", "b", "b"])
    score = np.array([0.9, 0.1, 0.2, 0.8, 0.7, 0.3])  # class a: 1 of 1 pairs won; class b: 1 of 4 (0.7 > 0.3)
    assert strata.matched_auroc(y, score, classes) == pytest.approx(2 / 5)
    only = strata.context_only(y, classes)  # leave one out: a's singleton sees a's other site (common)
    assert only.tolist() == pytest.approx([0.0, 1.0, 1 / 3, 2 / 3, 1 / 3, 2 / 3])


@pytest.mark.slow
def test_variant_strata_split_the_aurocs_by_cpg(suite_runs, shared_data, capsys):
    root, _ = suite_runs
    strata = _script("variant_strata")
    human = str(shared_data / "human" / "20.fa.gz")
    assert strata.main(["--suite", str(root / "out2"), "--human", human]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Sites: 3 singletons, 3 common; CpG ")
    rows = [line for line in text.splitlines() if line.startswith("| caduceus-ps | trained | llr | 256bp |")]
    assert len(rows) == 1 and rows[0].count("|") == 10
    assert "Local sequence alone (each site scored by the singleton share" in text
    assert strata.main(["--suite", str(root / "missing"), "--human", human]) == 1
    assert "no readable results.json" in capsys.readouterr().err


def test_the_alarm_waits_for_an_import_to_finish(tmp_path, monkeypatch):
    """A module cut off mid-import would stay half-initialised in sys.modules: the alarm rings after it."""
    from suite.clock import Deadline, OutOfTime

    (tmp_path / "slow_import_for_the_alarm.py").write_text("import time\ntime.sleep(0.4)\nDONE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    started = time.perf_counter()
    with pytest.raises(OutOfTime), Deadline(0.1, reserve=0.0).alarm():
        import slow_import_for_the_alarm  # noqa: F401
        time.sleep(5)
    assert sys.modules["slow_import_for_the_alarm"].DONE and 0.4 <= time.perf_counter() - started < 2


def test_stage_estimates_scale_the_nearest_finished_stage():
    from suite.clock import estimate_seconds

    assert estimate_seconds(100.0, [], fallback_rate=10.0, overhead=5.0) == 15.0
    done = [(1_000.0, 20.0), (100_000.0, 50.0)]  # the small stage is dominated by fixed costs
    assert estimate_seconds(2_000.0, done, 10.0, 5.0) == 45.0
    assert estimate_seconds(400_000.0, done, 10.0, 5.0) == 205.0
