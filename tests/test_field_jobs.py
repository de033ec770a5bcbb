"""lrgen's jobs on checkpoints from the field: a tiny PlantCaduceus-like folder (its own ids: [PAD]0 [MASK]1 [UNK]2
a3 c4 g5 t6) through score-vcf, predict, embed, evaluate --task mlm and pretraining, checked against hand computations
with those ids; a tiny NTv2 folder in the ESM layout through evaluate --task mlm, refused by embed and score-vcf;
``lrgen info --model`` and ``lrgen export``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pysam
import pytest
import torch
from safetensors import safe_open

import lrgen
from lrgen.cli import main
from lrgen.errors import LrgenError
from lrgen.models.describe import describe_model
from lrgen.models.finetuned import FinetunedModel, make_spec, save_finetuned
from lrgen.models.resolve import resolve_model
from lrgen.pretrain.data import tokenize_windows
from lrgen.pretrain.evaluate import MlmOptions, evaluate_mlm
from lrgen.pretrain.masking import MaskingScheme
from lrgen.tokenizer import Tokens
from test_layouts import esm_tensors, write_esm, write_plant

PLANT_IDS = {"A": 3, "C": 4, "G": 5, "T": 6}  # the checkpoint's ids; N is [UNK] 2, [MASK] 1, [PAD] 0
ACGT = [PLANT_IDS[b] for b in "ACGT"]
LENGTH = 1200


@pytest.fixture(scope="module")
def plant(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("field") / "plant"
    write_plant(folder, seed=11)
    return folder


@pytest.fixture(scope="module")
def ntv2(tmp_path_factory) -> Path:
    return write_esm(tmp_path_factory.mktemp("field") / "nt", esm_tensors(seed=12))


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> tuple[Path, str]:
    """A random contig ``20`` with a run of N, indexed."""
    seq = list("".join(np.random.default_rng(4).choice(list("ACGT"), LENGTH)))
    seq[500:510] = "N" * 10
    seq = "".join(seq)
    path = tmp_path_factory.mktemp("genome") / "g.fa"
    path.write_text(">20\n" + "\n".join(seq[i : i + 60] for i in range(0, LENGTH, 60)) + "\n")
    pysam.faidx(str(path))
    return path, seq


def plant_ids(seq: str) -> torch.Tensor:
    """Ids of ``seq`` written out by hand from the checkpoint's vocabulary."""
    return torch.tensor([PLANT_IDS.get(b, 2) for b in seq])


def lrgen_cli(*args: str) -> None:
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in args])
    assert done.value.code == 0


def test_plant_ids_in_the_jobs_building_blocks(plant):
    tokenizer = lrgen.load_model(plant).tokenizer
    ids, positions = Tokens(tokenizer)("ACGTN")
    assert ids.tolist() == [3, 4, 5, 6, 2] and positions.tolist() == [0, 1, 2, 3, 4]
    windows = [np.frombuffer(b"ACGTN", np.uint8), np.frombuffer(b"TTGCA", np.uint8)]
    assert tokenize_windows(windows, tokenizer).tolist() == [[3, 4, 5, 6, 2], [6, 6, 5, 4, 3]]
    scheme = MaskingScheme.for_tokenizer(tokenizer)
    assert scheme.mask_id == 1 and scheme.target_ids.tolist() == ACGT and scheme.bases_per_target == 1


@torch.no_grad()
def test_plant_score_vcf_llr_and_wt_marginal_use_the_checkpoints_columns(plant, genome, tmp_path):
    path, seq = genome
    model = lrgen.load_model(plant)
    context, sites = 128, [(200, "G"), (700, "A"), (1000, "T")]  # 0-based; one window each
    sites = [(p, alt if alt != seq[p] else "C") for p, alt in sites]
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=20>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   + "".join(f"20\t{p + 1}\t.\t{seq[p]}\t{alt}\t.\t.\t.\n" for p, alt in sites))
    tsv = tmp_path / "s.tsv"
    lrgen_cli("score-vcf", vcf, "-g", path, "-m", plant, "-c", context, "-o", tmp_path / "s.vcf", "--tsv", tsv,
              "--score", "llr", "--score", "wt-marginal", "--exact", "--device", "cpu")
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    header, rows = rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]
    assert "llr" in header and "wt_marginal" in header and len(rows) == 3
    for (p, alt), row in zip(sites, rows):
        ids = plant_ids(seq[p - context // 2 : p + context // 2])[None]  # the window centred on the site
        logp = torch.log_softmax(model(ids)[0, context // 2], -1)
        assert float(row["wt_marginal"]) == pytest.approx(float(logp[PLANT_IDS[alt]] - logp[PLANT_IDS[seq[p]]]),
                                                          abs=1e-4)
        ids[0, context // 2] = 1  # [MASK]
        logp = torch.log_softmax(model(ids)[0, context // 2], -1)
        assert float(row["llr"]) == pytest.approx(float(logp[PLANT_IDS[alt]] - logp[PLANT_IDS[seq[p]]]), abs=1e-4)


@torch.no_grad()
def test_plant_predict_logprob_is_over_the_checkpoints_acgt_columns(plant, genome, tmp_path):
    path, seq = genome
    model = lrgen.load_model(plant)
    bed = tmp_path / "r.bed"
    bed.write_text("20\t450\t550\n")  # crosses the N run
    out = tmp_path / "t.bedGraph"
    lrgen_cli("predict", bed, "-g", path, "-m", plant, "-o", out, "--context", 256, "--flank", 64, "--device", "cpu")
    got = np.full(LENGTH, np.nan)
    for line in out.read_text().splitlines():
        _, start, end, value = line.split("\t")
        got[int(start) : int(end)] = float(value)
    window = slice(450 - 64, 450 - 64 + 256)  # one window: the region and 64 bp on each side
    logp = torch.log_softmax(model(plant_ids(seq[window])[None])[0][:, ACGT], -1)
    expected = np.full(LENGTH, np.nan)
    for i, base in enumerate(seq[window], start=window.start):
        if 450 <= i < 550 and base in PLANT_IDS:
            expected[i] = float(logp[i - window.start, "ACGT".index(base)])
    np.testing.assert_allclose(got, expected, atol=1e-4)  # N positions have no value on either side


@torch.no_grad()
def test_plant_embed_reads_the_checkpoints_ids(plant, genome, tmp_path):
    path, seq = genome
    model = lrgen.load_model(plant)
    bed = tmp_path / "r.bed"
    bed.write_text("20\t480\t600\tacross_n\n")
    out = tmp_path / "e.safetensors"
    lrgen_cli("embed", bed, "-g", path, "-m", plant, "-o", out, "--device", "cpu")
    with safe_open(str(out), "pt") as fh:
        got = fh.get_tensor("across_n")
    torch.testing.assert_close(got, model.embed(plant_ids(seq[480:600])[None])[0].mean(0), rtol=1e-4, atol=1e-5)


def test_plant_evaluate_mlm_and_pretraining_further(plant, genome, tmp_path):
    from lrgen.pretrain.loop import run_pretrain

    path, _ = genome
    result = evaluate_mlm(MlmOptions(model=str(plant), fasta=[str(path)], context=[100, 300], windows=2,
                                     device="cpu"))
    for row in result["results"]:
        assert row["targets"] > 0 and math.isfinite(row["loss"]) and 0 <= row["accuracy"] <= 1
        assert row["perplexity"] == pytest.approx(row["perplexity_per_base"])
    run = tmp_path / "run"
    run_pretrain(dict(model=str(plant), fasta=[str(path)], output=str(run), context=200, steps=1, batch_size=2,
                      val_windows=2, val_fraction=0.2))
    again = resolve_model(run)
    assert again.model.tokenizer == lrgen.load_model(plant).tokenizer
    assert describe_model(again)["trained_context"] == ["200 bp (pretrain_config.json of the lrgen run)"]


def test_plant_glrb_finetune_and_evaluate(plant, tmp_path):
    data = tmp_path / "bench"
    lrgen_cli("glrb", "make-fixture", data, "--n-train", 16, "--n-test", 8)
    common = ("--data-dir", data, "--genome", data / "genome.fa", "--device", "cpu")
    lrgen_cli("finetune", "--task", "enhancer", "--model", plant, "--context", 256, "-o", tmp_path / "ft",
              "--freeze-backbone", "--epochs", 1, "--batch-size", 8, *common)
    assert lrgen.load_model(tmp_path / "ft").tokenizer == lrgen.load_model(plant).tokenizer
    lrgen_cli("evaluate", "--task", "enhancer", "--model", tmp_path / "ft", "--context", 256, "--bootstrap", 2,
              "-o", tmp_path / "ev", *common)
    assert (tmp_path / "ev").is_dir()


def test_ntv2_esm_evaluate_mlm_works_and_per_base_jobs_refuse_it(ntv2, genome, tmp_path):
    from lrgen.embed import EmbedOptions, embed_regions
    from lrgen.variants import ScoreVcfOptions, score_vcf

    path, _ = genome
    result = evaluate_mlm(MlmOptions(model=str(ntv2), fasta=[str(path)], context=[120], windows=2, device="cpu"))
    row = result["results"][0]
    assert result["tokenizer_kind"] == "kmer" and row["mode"] == "full" and row["tokens_per_window"] >= 120 // 6
    assert row["perplexity_per_base"] == pytest.approx(math.exp(row["loss"] / 6))
    bed = tmp_path / "r.bed"
    bed.write_text("20\t100\t200\n")
    with pytest.raises(LrgenError, match=r"^embed: model .* \(ntv2\) cannot be used here: it needs a model that reads "
                                         r"one token per base"):
        embed_regions(EmbedOptions(regions=bed, genome=path, model=str(ntv2), output=tmp_path / "e.npz"))
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=20>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    with pytest.raises(LrgenError, match="score-vcf: .* reads one token per base"):
        score_vcf(ScoreVcfOptions(vcf=vcf, genome=path, model=str(ntv2), context=128, output=tmp_path / "o.vcf",
                                  progress=False))


def test_info_describes_what_the_resolver_recognised(plant, ntv2, monkeypatch, capsys):
    plant_info = describe_model(resolve_model(plant))
    assert plant_info["family"] == "caduceus" and plant_info["layout"].startswith("PlantCaduceus-like")
    assert plant_info["source"] == "checkpoint folder" and plant_info["directory"] == str(plant)
    assert plant_info["vocabulary"] == {"kind": "char", "size": 7, "A": 3, "C": 4, "G": 5, "T": 6, "N": 2, "mask": 1,
                                        "pad": 0, "unk": 2}
    assert plant_info["rc_equivariant"] and plant_info["streamable"] and plant_info["per_base"]
    assert plant_info["parameters"] == lrgen.load_model(plant).num_parameters() and plant_info["trained_context"] == []
    nt_info = describe_model(resolve_model(ntv2))
    assert nt_info["layout"] == "NTv2 in the Hugging Face ESM layout" and not nt_info["streamable"]
    assert nt_info["vocabulary"]["cls"] == 3 and nt_info["vocabulary"]["k"] == 6 and not nt_info["per_base"]
    assert nt_info["trained_context"] == ["40 tokens (config.json max_position_embeddings)"]
    preset = describe_model(resolve_model("caduceus-ph-tiny"))
    assert preset["source"] == "preset: architecture only, random weights" and preset["layout"] == "lrgen"
    assert preset["vocabulary"]["A"] == 7 and not preset["rc_equivariant"]

    monkeypatch.setenv("COLUMNS", "200")
    lrgen_cli("info", "--model", plant)
    out = capsys.readouterr().out
    for text in ("PlantCaduceus-like", "kind char, size 7, A 3, C 4, G 5, T 6, N 2, mask 1, pad 0, unk 2",
                 "checkpoint folder", "not stated"):
        assert text in out, out
    assert "head parameters" not in out


@torch.no_grad()
def test_export_round_trip_and_refusals(plant, ntv2, tmp_path, capsys):
    model = lrgen.load_model(plant)
    ids = plant_ids("ACGTTGCANNACGTAGGCT")[None]
    lrgen_cli("export", "--model", plant, "-o", tmp_path / "hub")
    exported = lrgen.load_model(tmp_path / "hub")
    assert exported.tokenizer == model.tokenizer and torch.equal(exported(ids), model(ids))
    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    assert config["architectures"] == ["CaduceusForMaskedLM"] and not list(tmp_path.glob(".hub*"))
    # a fine-tuned folder exports its backbone
    finetuned = FinetunedModel(model, make_spec(model, task="promoter", context=128, n_outputs=1, pooling="centre",
                                                binary=True, pool_bp=64))
    save_finetuned(finetuned, tmp_path / "ft")
    lrgen_cli("export", "-m", tmp_path / "ft", "--output", tmp_path / "ft-hub")
    assert torch.equal(lrgen.load_model(tmp_path / "ft-hub")(ids), model(ids))
    assert not (tmp_path / "ft-hub" / "task.json").exists()
    capsys.readouterr()
    for args, message in (
        (("-m", ntv2, "-o", tmp_path / "nt-hub"), "is a ntv2 model; lrgen export writes Caduceus models"),
        (("-m", plant, "-o", tmp_path / "hub"), "exists: choose a new folder"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(["export", *map(str, args)])
        err = capsys.readouterr().err
        assert stop.value.code == 1 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "nt-hub").exists()
