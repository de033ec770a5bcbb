"""score-vcf end to end on CPU: the bundled real chr20 slice, hand-made bad VCFs, exactness, resume, CLI."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pysam
import pytest
import torch

import lrgen
from lrgen.errors import LrgenError
from lrgen.models import save_model
from lrgen.variants import ScoreVcfOptions, score_vcf

from helpers import write_fasta

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_VCF = REPO / "examples" / "data" / "example.vcf.gz"
EXAMPLE_FASTA = REPO / "examples" / "data" / "chr20_1-1.2Mb.fa.gz"
HEADER = "##fileformat=VCFv4.2\n##contig=<ID={contig}>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
ALL = ("llr", "wt-marginal", "embedding")
FAST = dict(context=512, recompute_span=256, embedding_span=64, progress=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny models saved once, so that every run (and a resumed run) uses the same weights."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    out = {}
    for preset in ("hawk-tiny", "caduceus-ps-tiny", "caduceus-ph-tiny"):
        out[preset] = save_model(lrgen.load_model(preset), root / preset)
    return out


@pytest.fixture(scope="module")
def slice_vcf(tmp_path_factory) -> Path:
    """Real records of the bundled example: the first 24 and every indel or multi-allelic one, in order."""
    path = tmp_path_factory.mktemp("vcf") / "slice.vcf"
    with gzip.open(EXAMPLE_VCF, "rt") as src, open(path, "w") as dst:
        data = 0
        for line in src:
            if line.startswith("#"):
                dst.write(line)
                continue
            ref, alt = line.split("\t")[3:5]
            if data < 24 or "," in alt or len(alt) != len(ref):
                dst.write(line)
            data += 1
    return path


@pytest.fixture(scope="module")
def small_genome(tmp_path_factory) -> Path:
    """A 3 kbp random contig named ``20`` (plain FASTA, indexed on first use)."""
    gen = torch.Generator().manual_seed(1)
    bases = "".join("ACGT"[i] for i in torch.randint(0, 4, (3000,), generator=gen).tolist())
    return write_fasta(tmp_path_factory.mktemp("genome") / "small.fa", {"20": bases}, width=60)


def _base(genome: Path, pos: int) -> str:
    seq = "".join(genome.read_text().split("\n")[1:])
    return seq[pos - 1]


def _write_vcf(path: Path, lines: list[str], contig: str = "20") -> Path:
    path.write_text(HEADER.format(contig=contig) + "".join("\t".join(map(str, f)) + "\n" for f in lines))
    return path


def _tsv(path: Path) -> list[dict]:
    rows = path.read_text().splitlines()
    names = rows[0].split("\t")
    return [dict(zip(names, row.split("\t"))) for row in rows[1:]]


def _alts_in(vcf: Path) -> int:
    with pysam.VariantFile(str(vcf)) as fh:
        return sum(len(rec.alts or (None,)) for rec in fh)


def test_real_slice_every_alt_scored_or_skipped(tmp_path, slice_vcf, models):
    out, tsv = tmp_path / "scored.vcf.gz", tmp_path / "scored.tsv"
    summary = score_vcf(ScoreVcfOptions(vcf=slice_vcf, genome=EXAMPLE_FASTA, model=str(models["caduceus-ps-tiny"]), output=out, tsv=tsv, scores=ALL, **FAST))
    rows = _tsv(tsv)
    assert len(rows) == _alts_in(slice_vcf) == summary.alleles
    assert all(r["status"] == "scored" for r in rows)  # REF matches the FASTA everywhere in the real slice
    kinds = {(r["ref"], r["alt"]): r for r in rows}
    indels = [r for r in rows if len(r["ref"]) != len(r["alt"])]
    assert indels and all(r["llr"] == "." and r["emb_cos"] != "." for r in indels)
    assert all(r["llr"] != "." and r["wt_marginal"] != "." for r in rows if len(r["ref"]) == len(r["alt"]))
    assert len(kinds) > 1
    assert Path(f"{out}.tbi").exists() and not (tmp_path / "scored.vcf.gz.lrgen-partial").exists()
    with pysam.VariantFile(str(out)) as fh:
        header = str(fh.header)
        assert "##lrgen_model=" in header and "##lrgen_command=" in header
        for key in ("LRGEN_LLR", "LRGEN_WTM", "LRGEN_EMB_COS", "LRGEN_EMB_L2", "LRGEN_STATUS"):
            assert fh.header.info[key].number == "A"
        records = list(fh)
        assert len(list(fh.fetch("20", 1_000_000, 1_001_000))) > 0  # the tabix index works
    multi = [rec for rec in records if len(rec.alts) > 1]
    assert multi, "the slice has a multi-allelic record"
    for rec in records:
        assert len(rec.info["LRGEN_STATUS"]) == len(rec.alts)
        assert len(rec.info["LRGEN_EMB_L2"]) == len(rec.alts)
    if shutil.which("bcftools"):
        subprocess.run(["bcftools", "view", "-H", str(out)], check=True, capture_output=True)


def test_local_with_covering_span_equals_exact(tmp_path, slice_vcf, models):
    model = str(models["caduceus-ph-tiny"])  # not RC-equivariant: both strands restart from recorded states
    runs = {}
    for name, options in {"exact": dict(exact=True), "local": dict(recompute_span=2048)}.items():
        tsv = tmp_path / f"{name}.tsv"
        score_vcf(ScoreVcfOptions(vcf=slice_vcf, genome=EXAMPLE_FASTA, model=model, context=512, output=tmp_path / f"{name}.vcf", tsv=tsv, scores=ALL, embedding_span=64, progress=False, **options))
        runs[name] = _tsv(tsv)
    for exact, local in zip(runs["exact"], runs["local"]):
        for column in ("llr", "wt_marginal", "emb_cos", "emb_l2"):
            if exact[column] == ".":
                assert local[column] == "."
            else:
                assert float(local[column]) == pytest.approx(float(exact[column]), rel=1e-3, abs=1e-5)


def test_hand_made_alleles_are_skipped_with_reasons(tmp_path, small_genome, models):
    ref100 = _base(small_genome, 100)
    alt100 = "A" if ref100 != "A" else "C"
    wrong = "ACGT"[("ACGT".index(ref100) + 1) % 4]
    lines = [
        ("20", 100, "snv", ref100, alt100, ".", ".", "."),
        ("20", 200, "sym", _base(small_genome, 200), "<DEL>", ".", ".", "SVTYPE=DEL"),
        ("20", 300, "bnd", _base(small_genome, 300), f"{_base(small_genome, 300)}[20:900[", ".", ".", "."),
        ("20", 400, "star", _base(small_genome, 400), f"*,{alt100 if _base(small_genome, 400) != alt100 else 'G'}",
         ".", ".", "."),
        ("20", 500, "mismatch", wrong, ref100 if ref100 != wrong else "T", ".", ".", "."),
        ("7", 100, "unknown", "A", "G", ".", ".", "."),
        ("20", 2998, "end", _base(small_genome, 2998), "A" if _base(small_genome, 2998) != "A" else "C", ".", ".", "."),
        ("20", 7000, "past", "N", "A", ".", ".", "."),  # all-N padding matches REF N: skipped, not scored
        ("20", 3000, "across", _base(small_genome, 3000) + "N", "A", ".", ".", "."),
    ]
    vcf = _write_vcf(tmp_path / "bad.vcf", lines)
    tsv = tmp_path / "out.tsv"
    summary = score_vcf(ScoreVcfOptions(vcf=vcf, genome=small_genome, model=str(models["hawk-tiny"]), output=tmp_path / "out.vcf", tsv=tsv, scores=("llr",), **FAST))
    status = {(r["id"], r["alt"]): r["status"] for r in _tsv(tsv)}
    assert status[("snv", alt100)] == "scored"
    assert status[("sym", "<DEL>")] == "symbolic"
    assert [s for (i, _), s in status.items() if i == "bnd"] == ["breakend"]
    assert status[("star", "*")] == "star"
    assert status[("mismatch", ref100 if ref100 != wrong else "T")] == "ref_mismatch"
    assert status[("unknown", "G")] == "unknown_contig"
    assert [s for (i, _), s in status.items() if i == "end"] == ["scored"]  # 2 bp from the contig end: N padding
    assert status[("past", "A")] == status[("across", "A")] == "past_contig_end"
    assert summary.alleles == len(status) == 10
    assert summary.unknown_contigs == {"7": 1}
    assert summary.outcomes["ref_mismatch"] == 1


def test_ref_mismatch_modes(tmp_path, small_genome, models):
    wrong = "ACGT"[("ACGT".index(_base(small_genome, 500)) + 1) % 4]
    alt = "ACGT"[("ACGT".index(wrong) + 1) % 4]
    vcf = _write_vcf(tmp_path / "mismatch.vcf", [("20", 500, "m1", wrong, alt, ".", ".", ".")])
    out = tmp_path / "out.vcf"
    with pytest.raises(LrgenError, match=r"record 1 .*REF .* does not match the genome"):
        score_vcf(ScoreVcfOptions(vcf=vcf, genome=small_genome, model=str(models["hawk-tiny"]), output=out, on_ref_mismatch="error", **FAST))
    assert not out.exists() and not (tmp_path / "out.vcf.lrgen-partial").exists()
    tsv = tmp_path / "out.tsv"
    score_vcf(ScoreVcfOptions(vcf=vcf, genome=small_genome, model=str(models["hawk-tiny"]), output=out, tsv=tsv, on_ref_mismatch="score", **FAST))
    assert _tsv(tsv)[0]["status"] == "scored" and _tsv(tsv)[0]["llr"] != "."


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "not a readable VCF"),
        (HEADER.format(contig="20") + "20\tnot_a_number\t.\tA\tG\t.\t.\t.\n", "cannot be parsed"),
        ("chrom pos ref alt\n20 100 A G\n", "not a readable VCF"),
        (HEADER.format(contig="20") + "20\t100\t.\tA\tG\t.\t.\t.\n20\t200\n", "record 2 .* cannot be parsed"),
    ],
    ids=["empty", "bad-pos", "no-header", "truncated-line"],
)
def test_malformed_input_fails_cleanly(tmp_path, small_genome, models, content, message):
    vcf = tmp_path / "bad.vcf"
    vcf.write_text(content)
    out = tmp_path / "out.vcf.gz"
    with pytest.raises(LrgenError, match=message) as info:
        score_vcf(ScoreVcfOptions(vcf=vcf, genome=small_genome, model=str(models["hawk-tiny"]), output=out, tsv=tmp_path / "out.tsv", **FAST))
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.vcf"]


def test_chr_prefixed_vcf_against_unprefixed_fasta(tmp_path, small_genome, models):
    ref = _base(small_genome, 1500)
    alt = "G" if ref != "G" else "T"
    vcf = _write_vcf(tmp_path / "chr.vcf", [("chr20", 1500, "x", ref, alt, ".", ".", ".")], contig="chr20")
    tsv = tmp_path / "out.tsv"
    score_vcf(ScoreVcfOptions(vcf=vcf, genome=small_genome, model=str(models["hawk-tiny"]), output=tmp_path / "out.vcf", tsv=tsv, **FAST))
    row = _tsv(tsv)[0]
    assert row["chrom"] == "chr20" and row["status"] == "scored" and row["llr"] != "."


def test_regions_restrict_the_output(tmp_path, slice_vcf, models):
    bed = tmp_path / "r.bed"
    bed.write_text("chr20\t1000000\t1001000\n")
    tsv = tmp_path / "out.tsv"
    summary = score_vcf(ScoreVcfOptions(vcf=slice_vcf, genome=EXAMPLE_FASTA, model=str(models["hawk-tiny"]), output=tmp_path / "out.vcf", tsv=tsv, regions=bed, **FAST))
    rows = _tsv(tsv)
    assert rows and all(1_000_000 < int(r["pos"]) <= 1_001_000 for r in rows)
    assert summary.outside_regions > 0
    assert summary.records == len({r["pos"] for r in rows})  # the headline counts what lies inside the regions


def test_resume_after_interrupt_gives_the_same_output(tmp_path, slice_vcf, models, monkeypatch):
    model = str(models["hawk-tiny"])
    whole = tmp_path / "whole.vcf.gz"
    score_vcf(ScoreVcfOptions(vcf=slice_vcf, genome=EXAMPLE_FASTA, model=model, output=whole, tsv=tmp_path / "whole.tsv", scores=ALL, **FAST))

    from lrgen.variants.resume import Bodies as PartialRun

    real, calls = PartialRun.commit, []

    def interrupt_after_three(self, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(self, *args, **kwargs)

    out, tsv = tmp_path / "resumed.vcf.gz", tmp_path / "resumed.tsv"
    monkeypatch.setattr(PartialRun, "commit", interrupt_after_three)
    with pytest.raises(KeyboardInterrupt):
        score_vcf(ScoreVcfOptions(vcf=slice_vcf, genome=EXAMPLE_FASTA, model=model, output=out, tsv=tsv, scores=ALL, **FAST))
    monkeypatch.setattr(PartialRun, "commit", real)
    partial = tmp_path / "resumed.vcf.gz.lrgen-partial"
    assert not out.exists() and not tsv.exists() and (partial / "rank0" / "progress.json").exists()
    with pytest.raises(LrgenError, match="context changed"):
        score_vcf(ScoreVcfOptions(vcf=slice_vcf, genome=EXAMPLE_FASTA, model=model, output=out, tsv=tsv, scores=ALL, resume=True, **{**FAST, "context": 1024}))
    assert (partial / "rank0" / "progress.json").exists()  # a refused resume keeps the progress
    summary = score_vcf(ScoreVcfOptions(vcf=slice_vcf, genome=EXAMPLE_FASTA, model=model, output=out, tsv=tsv, scores=ALL, resume=True, **FAST))
    assert summary.resumed and summary.windows > 3
    assert tsv.read_text() == (tmp_path / "whole.tsv").read_text()
    body = lambda p: [line for line in gzip.open(p, "rt") if not line.startswith("##")]  # noqa: E731
    assert body(out) == body(whole)
    assert not partial.exists()


def test_ntv2_is_refused_with_a_reason(tmp_path, small_genome):
    vcf = _write_vcf(tmp_path / "one.vcf", [("20", 100, ".", _base(small_genome, 100), "N", ".", ".", ".")])
    with pytest.raises(LrgenError, match="6-mer"):
        score_vcf(ScoreVcfOptions(vcf=vcf, genome=small_genome, model="ntv2-tiny", output=tmp_path / "o.vcf", **FAST))


def test_cli_scores_and_reports_errors_on_one_line(tmp_path, slice_vcf, models):
    out = tmp_path / "cli.vcf"
    args = [sys.executable, "-m", "lrgen", "score-vcf", str(slice_vcf), "--genome", str(EXAMPLE_FASTA), "--model",
            str(models["hawk-tiny"]), "--context", "512", "--recompute-span", "256", "-o", str(out), "--score",
            "wt-marginal"]
    proc = subprocess.run(args, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    assert "scored" in proc.stderr and out.exists()
    bad = subprocess.run(args[:-1] + ["pathogenicity"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("lrgen: error: unknown --score 'pathogenicity'")


def test_head_score_matches_the_fine_tuned_pipeline(tmp_path, small_genome):
    """A lone SNV sits at the window centre, as in GLRB: the head score equals the fine-tuned model's own
    probability."""
    from lrgen.models.finetuned import FinetunedModel, load_finetuned, make_spec, save_finetuned
    from lrgen.tokenizer import encode

    backbone = lrgen.load_model("caduceus-ps-tiny")
    spec = make_spec(backbone, task="variant_effect_pathogenic_clinvar", context=2048, n_outputs=1,
                     pooling="variant", binary=True, pool_bp=1536, hidden=16)
    folder = save_finetuned(FinetunedModel(backbone, spec), tmp_path / "vep")
    pos, ref = 1500, _base(small_genome, 1500)
    alt = "A" if ref != "A" else "G"
    vcf = _write_vcf(tmp_path / "one.vcf", [("20", pos, "v", ref, alt, ".", ".", ".")])
    tsv = tmp_path / "out.tsv"
    score_vcf(ScoreVcfOptions(vcf=vcf, genome=small_genome, model=str(folder), context=2048, output=tmp_path / "out.vcf", tsv=tsv, scores=("head", "llr"), exact=True, progress=False))
    got = float(_tsv(tsv)[0]["head"])

    model, _ = load_finetuned(folder)
    seq = "".join(small_genome.read_text().split("\n")[1:])
    window = seq[pos - 1 - 1024 : pos - 1 + 1024]
    ids = encode(window)[None]
    alt_ids = ids.clone()
    alt_ids[0, 1024] = encode(alt)[0]
    positions = torch.arange(2048)[None].expand(2, -1)
    with torch.no_grad():
        features = model.pool(model.hidden(torch.cat([ids, alt_ids])), positions, 2048)
        expected = float(model.scores(features)[0, 0])
    assert 0 < got < 1
    assert got == pytest.approx(expected, abs=1e-5)


def test_head_score_needs_a_fine_tuned_model(tmp_path, slice_vcf, models):
    with pytest.raises(LrgenError, match="has a fine-tuned head"):
        score_vcf(ScoreVcfOptions(vcf=slice_vcf, genome=EXAMPLE_FASTA, model=str(models["hawk-tiny"]), output=tmp_path / "o.vcf", scores=("head",), **FAST))


def test_torchrun_shards_merge_into_the_single_process_output(tmp_path, slice_vcf, models):
    model = str(models["hawk-tiny"])
    score_vcf(ScoreVcfOptions(vcf=slice_vcf, genome=EXAMPLE_FASTA, model=model, output=tmp_path / "one.vcf.gz", tsv=tmp_path / "one.tsv", scores=("llr", "embedding"), **FAST))
    args = [str(slice_vcf), "--genome", str(EXAMPLE_FASTA), "--model", model, "--context", "512", "--recompute-span",
            "256", "--embedding-span", "64", "--score", "llr", "--score", "embedding"]
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                              "-m", "lrgen", "score-vcf", *args, "-o", str(tmp_path / "two.vcf.gz"), "--tsv",
                              str(tmp_path / "two.tsv")], capture_output=True, text=True,
                             env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert sharded.returncode == 0, sharded.stderr
    assert (tmp_path / "two.tsv").read_text() == (tmp_path / "one.tsv").read_text()
    body = lambda p: [line for line in gzip.open(p, "rt") if not line.startswith("##")]  # noqa: E731
    assert body(tmp_path / "two.vcf.gz") == body(tmp_path / "one.vcf.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.tsv", "one.vcf.gz", "one.vcf.gz.tbi", "two.tsv",
                                                         "two.vcf.gz", "two.vcf.gz.tbi"]


def test_header_describes_this_run(tmp_path, small_genome, models):
    ref = _base(small_genome, 1500)
    vcf = _write_vcf(tmp_path / "one.vcf", [("20", 1500, "x", ref, "G" if ref != "G" else "T", ".", ".", ".")])

    def header(model: str, scores: tuple[str, ...]) -> list[str]:
        out = tmp_path / f"{Path(model).name}.{'.'.join(scores)}.vcf"
        score_vcf(ScoreVcfOptions(vcf=vcf, genome=small_genome, model=model, output=out, scores=scores, **FAST))
        return [line for line in out.read_text().splitlines() if line.startswith("##")]

    hawk = header(str(models["hawk-tiny"]), ("wt-marginal",))  # reads the reference pass: nothing recomputed
    assert not [line for line in hawk if line.startswith("##lrgen_recompute")]
    assert "(SNV/MNP), strands averaged" in next(line for line in hawk if "LRGEN_WTM" in line)
    ps = header(str(models["caduceus-ps-tiny"]), ("llr",))
    assert "##lrgen_recompute=local, recompute span 256bp" in ps
    llr = next(line for line in ps if "LRGEN_LLR" in line)
    assert "(SNV/MNP), one pass of an RC-equivariant model" in llr and "strands averaged" not in llr
    assert "past_contig_end" in next(line for line in ps if "LRGEN_STATUS" in line)


def test_a_preset_warns_on_stderr_and_in_the_header(tmp_path, small_genome, models, capsys):
    ref = _base(small_genome, 1500)
    vcf = _write_vcf(tmp_path / "one.vcf", [("20", 1500, "x", ref, "G" if ref != "G" else "T", ".", ".", ".")])
    score_vcf(ScoreVcfOptions(vcf=vcf, genome=small_genome, model="hawk-tiny", output=tmp_path / "p.vcf", **FAST))
    assert ("lrgen: warning: model 'hawk-tiny' is a preset: the architecture only, with random weights"
            in capsys.readouterr().err)
    assert "##lrgen_model=hawk-tiny (family hawk, strands conjoined post hoc, architecture only: random weights)" in (
        tmp_path / "p.vcf").read_text()
    score_vcf(ScoreVcfOptions(vcf=vcf, genome=small_genome, model=str(models["hawk-tiny"]), output=tmp_path / "t.vcf",
                              **FAST))
    assert "warning" not in capsys.readouterr().err  # a saved model is trained as far as lrgen can tell


def test_summary_headline(tmp_path):
    from collections import Counter
    from io import StringIO

    from rich.console import Console

    from lrgen.variants.score_vcf import Summary, print_summary

    def printed(summary: Summary) -> str:
        console = Console(file=StringIO(), width=300)
        print_summary(summary, console)
        return console.file.getvalue()

    regions = Summary(Path("o.vcf"), records=10, alleles=12, outcomes=Counter(scored=12), outside_regions=468,
                      windows=3, seconds=2.0, scored_now=12)
    text = printed(regions)
    assert "o.vcf: 10 records in --regions, 12 ALT alleles, 12 scored in 3 windows (6.0 variants/s over 2.0 s)" in text
    assert "468 records outside --regions (not written)" in text
    done = Summary(Path("o.vcf"), records=10, alleles=12, outcomes=Counter(scored=12), windows=3, seconds=705.2,
                   resumed=True)
    assert "12 scored in 3 windows (resumed: nothing left to score)" in printed(done)
    one = Summary(Path("o.vcf"), records=1, alleles=1, outcomes=Counter(scored=1), windows=1, seconds=1.0, scored_now=1)
    assert "1 scored in 1 window (1.0 variants/s over 1.0 s)" in printed(one)
