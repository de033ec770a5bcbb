"""Fine-tuning on your own data, end to end on a real genome with planted signal: four 40 kbp slices of E. coli
MG1655 as contigs chr1-chr4, GGCGCC arrays planted at the centre of every positive region, and a coverage bigWig
that follows GC content. A frozen tiny Hawk learns both; its folder then works in evaluate, predict and score-vcf."""

from __future__ import annotations

import json

import numpy as np
import pyBigWig
import pytest
from typer.testing import CliRunner

from lrgen.cli.app import app
from lrgen.io.genome import iter_fasta_records
from lrgen.training.metrics import auroc, pearson
from lrgen.userdata.finetune import UserFinetuneOptions, finetune_user

MOTIF = "GGCGCC" * 16
LENGTH = 40_000
SITES = range(600, LENGTH - 600, 700)  # positive region centres on every contig
CONTEXT = 512
TRAIN = dict(model="hawk-tiny", context=CONTEXT, device="cpu", freeze_backbone=True, batch_size=16, epochs=40,
             patience=100, warmup_steps=5)


@pytest.fixture(scope="module")
def planted(shared_data, tmp_path_factory):
    """The genome (chr1-chr4), the positives BED (contigs named 1-4: aliased) and the GC coverage bigWig."""
    _, ecoli = next(iter_fasta_records(shared_data / "genomes" / "ecoli_MG1655.fa.gz"))
    folder = tmp_path_factory.mktemp("own")
    contigs = {}
    for k in range(4):
        seq = list(ecoli[k * 1_000_000 : k * 1_000_000 + LENGTH])
        for centre in SITES:
            seq[centre - len(MOTIF) // 2 : centre + len(MOTIF) // 2] = MOTIF
        contigs[f"chr{k + 1}"] = "".join(seq)
    fasta = folder / "genome.fa"
    fasta.write_text("".join(f">{name}\n{seq}\n" for name, seq in contigs.items()))
    bed = folder / "peaks.bed"
    bed.write_text("".join(f"{name[3:]}\t{c - 100}\t{c + 100}\n" for name in contigs for c in SITES))
    coverage = folder / "gc.bw"
    with pyBigWig.open(str(coverage), "w") as bw:
        bw.addHeader([(name, LENGTH) for name in contigs])
        for name, seq in contigs.items():
            gc = np.array([sum(seq[i : i + 32].count(b) for b in "GC") / 32 for i in range(0, LENGTH, 32)])
            bw.addEntries(name, 0, values=(50 * gc).tolist(), span=32, step=32)
    return {"fasta": fasta, "bed": bed, "coverage": coverage, "contigs": contigs}


def _column(tsv, name: str) -> list[str]:
    header, *rows = (line.split("\t") for line in tsv.read_text().splitlines())
    return [row[header.index(name)] for row in rows]


def test_regions_learn_the_motif_then_predict_and_score_vcf_use_the_folder(planted, tmp_path):
    from lrgen.tracks.predict import PredictOptions, predict
    from lrgen.variants import ScoreVcfOptions, score_vcf

    out = tmp_path / "peaks"
    summary = finetune_user(UserFinetuneOptions(task="regions", genome=str(planted["fasta"]), output=str(out),
                                                positives=str(planted["bed"]), **TRAIN))
    results = json.loads((out / "results.json").read_text())
    assert results["contigs"] == ["chr4"] and summary["test"]["contigs"] == ["chr4"]
    meta = json.loads((out / "task.json").read_text())
    assert meta["userdata"]["valid_chroms"] == ["chr3"] and meta["head"]["pool_bp"] == 200
    assert results["metrics"]["auroc"] >= 0.9, results  # 1.0 when written

    bed = tmp_path / "chr4.bed"
    bed.write_text(f"chr4\t0\t{LENGTH}\n")
    track = predict(PredictOptions(regions=bed, genome=planted["fasta"], model=str(out), output=tmp_path / "p.bw",
                                   progress=False)).outputs[0]
    with pyBigWig.open(str(track)) as bw:
        at_sites = [bw.values("chr4", c, c + 1)[0] for c in SITES]
        between = [bw.values("chr4", c + 350, c + 351)[0] for c in SITES[:-1]]
    assert auroc(np.r_[np.ones(len(at_sites)), np.zeros(len(between))], np.r_[at_sites, between]) >= 0.9  # 0.982

    rng = np.random.default_rng(1)
    seq = planted["contigs"]["chr4"]
    rows = []
    for c in list(SITES)[5:45:4]:  # destroy the array at ten sites; ten same-length substitutions between sites
        for start in (c - len(MOTIF) // 2, c + 350 - len(MOTIF) // 2):
            alt = "".join(rng.choice(list("ACGT"), len(MOTIF)))
            rows.append(f"chr4\t{start + 1}\t.\t{seq[start : start + len(MOTIF)]}\t{alt}\t.\t.\t.\n")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=chr4>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   + "".join(rows))
    tsv = tmp_path / "v.tsv"
    score_vcf(ScoreVcfOptions(vcf=vcf, genome=planted["fasta"], model=str(out), context=CONTEXT,
                              output=tmp_path / "o.vcf", tsv=tsv, scores=("head",), exact=True, progress=False))
    head = [float(v) for v in _column(tsv, "head")]
    destroyed, neutral = head[0::2], head[1::2]
    assert auroc(np.r_[np.zeros(10), np.ones(10)], np.r_[destroyed, neutral]) >= 0.9  # 1.0: -0.75..-0.44 vs -0.27..0.06
    assert max(destroyed) < 0


def test_tracks_learn_gc_coverage_and_predict_writes_it(planted, tmp_path):
    from lrgen.tracks.predict import PredictOptions, predict

    out = tmp_path / "gc"
    finetune_user(UserFinetuneOptions(task="tracks", genome=str(planted["fasta"]), output=str(out),
                                      targets=[str(planted["coverage"])],
                                      **{**TRAIN, "context": 1024, "head_lr": 1e-2}))  # a regression head from zero
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["pearson"] >= 0.8 and list(results["labels"]) == ["gc"]  # 0.977 when written

    bed = tmp_path / "chr4.bed"
    bed.write_text(f"chr4\t0\t{LENGTH}\n")
    track = predict(PredictOptions(regions=bed, genome=planted["fasta"], model=str(out), output=tmp_path / "p.bw",
                                   progress=False)).outputs[0]
    with pyBigWig.open(str(track)) as bw, pyBigWig.open(str(planted["coverage"])) as target:
        got = np.array(bw.values("chr4", 0, LENGTH))
        want = np.log1p(np.array(target.values("chr4", 0, LENGTH)))
    bins = LENGTH // 128
    got, want = got[: bins * 128].reshape(bins, 128).mean(1), want[: bins * 128].reshape(bins, 128).mean(1)
    assert pearson(want, got) >= 0.8  # 0.969 when written


def test_tables_of_variants_and_regions_train_and_score(planted, tmp_path):
    from lrgen.models.finetuned import load_finetuned
    from lrgen.variants import ScoreVcfOptions, score_vcf

    seq = planted["contigs"]
    variants = ["chrom\tpos\tref\talt\tup\tdown\n"]
    for name in ("chr1", "chr2", "chr3", "chr4"):
        for k, c in enumerate(list(SITES)[:6]):
            ref = seq[name][c + 200]
            variants.append(f"{name}\t{c + 201}\t{ref}\t{'A' if ref != 'A' else 'C'}\t{k % 2}\t{k / 5}\n")
    table = tmp_path / "v.tsv"
    table.write_text("".join(variants))
    out = tmp_path / "variants"
    summary = finetune_user(UserFinetuneOptions(task="table", genome=str(planted["fasta"]), output=str(out),
                                                table=str(table), **{**TRAIN, "max_steps": 2, "hidden": 16}))
    model, meta = load_finetuned(out)
    assert (model.spec.pooling, model.spec.pool_bp, model.spec.n_outputs, model.spec.binary) == ("variant", CONTEXT, 2,
                                                                                                 False)
    assert summary["metric"] == "pearson" and set(summary["test"]["labels"]) == {"up", "down"}
    vcf = tmp_path / "one.vcf"
    c = SITES[3]
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=chr4>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   f"chr4\t{c + 201}\t.\t{seq['chr4'][c + 200]}\tT,G\t.\t.\t.\n")
    tsv = tmp_path / "one.tsv"
    score_vcf(ScoreVcfOptions(vcf=vcf, genome=planted["fasta"], model=str(out), context=CONTEXT,
                              output=tmp_path / "one.out.vcf", tsv=tsv, scores=("head",), exact=True, progress=False))
    assert _column(tsv, "status") == ["scored", "scored"] and len(set(_column(tsv, "head"))) == 2

    regions = tmp_path / "r.tsv"
    regions.write_text("chrom\tstart\tend\tbound\n" + "".join(f"{name}\t{c - 150}\t{c + 150}\t1\n{name}\t{c + 200}\t"
                                                                f"{c + 500}\t0\n" for name in seq for c in SITES))
    finetune_user(UserFinetuneOptions(task="table", genome=str(planted["fasta"]), output=str(tmp_path / "regions"),
                                      table=str(regions), **{**TRAIN, "max_steps": 2, "hidden": 16}))
    model, _ = load_finetuned(tmp_path / "regions")
    assert (model.spec.pooling, model.spec.pool_bp, model.spec.binary) == ("centre", 300, True)


def test_cli_finetune_evaluate_resume_and_refusals(planted, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["finetune", "--task", "regions", "--model", "hawk-tiny", "--genome", str(planted["fasta"]), "--context",
            "512", "--positives", str(planted["bed"]), "--valid-chroms", "chr2", "--test-chroms", "3,chr4",
            "--negatives-per-positive", "2", "--max-steps", "2", "--eval-every", "1", "--hidden", "16",
            "--batch-size", "16", "--device", "cpu", "-o", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "fine-tuned regions for 2 steps" in r.output and "test contigs chr3,chr4: auroc" in r.output
    meta = json.loads((out / "task.json").read_text())
    assert meta["examples"]["negatives"] == 2 * meta["examples"]["positives"]
    assert meta["userdata"]["test_chroms"] == ["chr3", "chr4"]

    r = runner.invoke(app, args[:-6] + ["--max-steps", "3", "--batch-size", "16", "--device", "cpu", "-o", str(out),
                                        "--resume"])
    assert r.exit_code == 0, r.output
    assert "for 3 steps" in r.output

    r = runner.invoke(app, ["evaluate", "--model", str(out), "--device", "cpu", "-o", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("regions on test contigs") and "  peaks: auroc" in r.output
    assert json.loads((tmp_path / "ev/results.json").read_text())["contigs"] == ["chr3", "chr4"]

    for argv, message in (
        (["finetune", "--task", "promoter", "--model", "hawk-tiny", "--genome", "g.fa", "--context", "1kb", "-o",
          str(tmp_path / "x"), "--positives", "p.bed"], "--positives is for your own data"),
        (["finetune", "--task", "tracks", "--model", "hawk-tiny", "--genome", str(planted["fasta"]), "--context", "1kb",
          "-o", str(tmp_path / "x"), "--positives", str(planted["bed"])], "--task tracks needs --targets"),
        (["evaluate", "--model", "hawk-tiny"], "hawk-tiny is not a fine-tuned folder"),
        (["evaluate", "--model", str(out), "--context", "1kb"], "drop --context"),
    ):
        r = runner.invoke(app, argv)
        assert r.exit_code != 0 and message in str(r.exception), (argv, r.output, r.exception)
