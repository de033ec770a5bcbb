"""lrgen stats and lrgen plot: a scored VCF summed up, and a track with the variants' scores drawn along it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lrgen.errors import LrgenError
from lrgen.io.bigwig import TrackWriter
from lrgen.report.plot import PlotOptions, plot
from lrgen.report.stats import StatsOptions, vcf_stats
from lrgen.report.table import stats_table

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_VCF = REPO / "examples" / "data" / "example.vcf.gz"
EXAMPLE_FASTA = REPO / "examples" / "data" / "chr20_1-1.2Mb.fa.gz"
HEADER = """##fileformat=VCFv4.2
##contig=<ID=20>
##INFO=<ID=LRGEN_WTM,Number=A,Type=Float,Description="wt-marginal">
##INFO=<ID=LRGEN_EMB_L2,Number=A,Type=Float,Description="embedding L2">
##INFO=<ID=LRGEN_STATUS,Number=A,Type=String,Description="status">
##lrgen_model=caduceus-ps-demo (family caduceus, RC-equivariant)
##lrgen_context=16kbp
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
"""
RECORDS = [  # six records, seven ALT alleles
    "20\t100\trs1\tA\tG\t.\t.\tLRGEN_WTM=-3;LRGEN_EMB_L2=0.5;LRGEN_STATUS=scored",
    "20\t200\trs2\tC\tT,G\t.\t.\tLRGEN_WTM=1,-0.5;LRGEN_EMB_L2=0.1,0.2;LRGEN_STATUS=scored,scored",
    "20\t300\t.\tAT\tA\t.\t.\tLRGEN_EMB_L2=0.9;LRGEN_STATUS=scored",
    "20\t400\t.\tA\t<DEL>\t.\t.\tLRGEN_STATUS=symbolic",
    "20\t500\t.\tG\tA\t.\t.\tLRGEN_STATUS=ref_mismatch",
    "20\t600\t.\tN\t.\t.\t.\t.",
]


@pytest.fixture
def scored(tmp_path) -> Path:
    path = tmp_path / "scored.vcf"
    path.write_text(HEADER + "\n".join(RECORDS) + "\n")
    return path


@pytest.fixture
def track(tmp_path) -> Path:
    """A bigWig with values over 20:101-1,100 (a ramp), on a 2 kb contig."""
    path = tmp_path / "t.logprob.bw"
    with TrackWriter(path, {"20": 2000}) as writer:
        writer.add("20", 100, -np.linspace(0, 2, 1000))
    return path


def test_stats_counts_quantiles_and_the_most_extreme(scored):
    stats = vcf_stats(StatsOptions(scored))
    assert (stats.records, stats.alleles) == (6, 7)
    assert stats.outcomes == {"scored": 4, "symbolic": 1, "ref_mismatch": 1, "missing": 1}
    assert stats.kinds == {"snv": 3, "deletion": 1}
    wtm = stats.scores["wt_marginal"]
    assert sorted(wtm.values) == [-3, -0.5, 1]
    assert wtm.quantiles()[[0, 4, 8]].tolist() == [-3, -0.5, 1]  # min, median, max
    assert wtm.missing == {"indel: defined for SNVs and MNPs only": 1}
    assert stats.ranked_by == "wt_marginal"  # the file's first value
    assert [(a.variant.pos, a.variant.alt) for a in stats.top] == [(100, "G"), (200, "T"), (200, "G")]  # by |value|
    by_distance = vcf_stats(StatsOptions(scored, score="LRGEN_EMB_L2", top=2))
    assert [a.values["emb_l2"] for a in by_distance.top] == pytest.approx([0.9, 0.5])  # float32 in VCF
    assert vcf_stats(StatsOptions(scored, score="emb-l2", top=0)).top == []


def test_stats_table_reads_in_a_terminal(scored):
    text = stats_table(vcf_stats(StatsOptions(scored)))
    lines = text.splitlines()
    assert lines[0] == str(scored) and "caduceus-ps-demo" in lines[1] and "16kbp" in lines[2]
    assert "6 records, 7 ALT alleles" in lines
    assert any(line.split()[:3] == ["scored", "4", "SNV"] for line in lines)
    assert any(line.split()[:2] == ["symbolic", "1"] for line in lines)
    assert "  wt_marginal: no value for 1 scored allele (indel: defined for SNVs and MNPs only)" in lines
    header = next(line for line in lines if line.startswith("score "))
    assert header.split() == ["score", "values", "min", "1%", "5%", "25%", "median", "75%", "95%", "99%", "max"]
    top = lines[lines.index("top 3 by |wt_marginal|") + 1:]
    assert top[0].split() == ["#", "chrom", "position", "id", "REF>ALT", "wt_marginal", "emb_l2"]
    assert top[1].split() == ["1", "20", "100", "rs1", "A>G", "-3", "0.5"]
    assert max(map(len, lines)) < 100


def test_stats_of_a_score_vcf_run_agree_with_its_table(tmp_path):
    from lrgen.variants import ScoreVcfOptions, score_vcf

    bed = tmp_path / "r.bed"
    bed.write_text("20\t999999\t1006000\n")
    out, tsv = tmp_path / "s.vcf.gz", tmp_path / "s.tsv"
    score_vcf(ScoreVcfOptions(vcf=EXAMPLE_VCF, genome=EXAMPLE_FASTA, model="caduceus-ps-tiny", context=512,
                              output=out, tsv=tsv, regions=bed, scores=("wt-marginal", "embedding"),
                              recompute_span=256, embedding_span=64, progress=False))
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    names, rows = rows[0], [dict(zip(rows[0], row)) for row in rows[1:]]
    stats = vcf_stats(StatsOptions(out, top=1))
    assert stats.alleles == len(rows) and stats.outcomes["scored"] == sum(r["status"] == "scored" for r in rows)
    for value in ("wt_marginal", "emb_cos", "emb_l2"):
        assert stats.scores[value].values.size == sum(r[value] != "." for r in rows), value
    extreme = max((r for r in rows if r["wt_marginal"] != "."), key=lambda r: abs(float(r["wt_marginal"])))
    assert (stats.top[0].variant.pos, stats.top[0].variant.alt) == (int(extreme["pos"]), extreme["alt"])
    assert "status" in names


def test_stats_command_reads_standard_input(scored):
    proc = subprocess.run([sys.executable, "-m", "lrgen", "stats", "-", "--top", "1"], input=scored.read_bytes(),
                          capture_output=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert out.startswith("<stdin>\n") and "top 1 by |wt_marginal|" in out and proc.stderr == b""


def test_stats_refuses_what_it_cannot_read(scored):
    with pytest.raises(LrgenError, match="no LRGEN_STATUS field in the header, so it was not written by lrgen score"):
        vcf_stats(StatsOptions(EXAMPLE_VCF))
    with pytest.raises(LrgenError, match="has no 'llr' values; it has wt_marginal, emb_l2"):
        vcf_stats(StatsOptions(scored, score="llr"))
    with pytest.raises(LrgenError, match="--top must be 0 or more"):
        vcf_stats(StatsOptions(scored, top=-1))


def test_plot_draws_the_track_and_the_variants(tmp_path, scored, track):
    out = tmp_path / "fig.png"
    summary = plot(PlotOptions(out, bigwig=track, vcf=scored))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [(r.chrom, r.start, r.end) for r in summary.regions] == [("20", 100, 1100)]  # where the track has values
    assert (summary.value, summary.with_value, summary.without_value) == ("wt_marginal", 2, 4)  # 20:100 lies before the track
    assert summary.line() == ("wrote " + str(out) + ": 1 region (20:101-1,100); 2 variants with wt_marginal "
                              "(4 without)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "scored.vcf", "t.logprob.bw"]  # no temporary


@pytest.mark.parametrize("options, regions", [
    (dict(region=("chr20:151-350",), score="emb_l2"), [("chr20", 150, 350)]),  # aliased to the files' "20"
    (dict(region=("20",)), [("20", 0, 2000)]),  # a whole contig, sized by the bigWig
    (dict(bigwig=None), [("20", 49, 650)]),  # the VCF's records (20:100-600), with a margin
])
def test_plot_regions(tmp_path, scored, track, options, regions):
    summary = plot(PlotOptions(**{"output": tmp_path / "f.svg", "bigwig": track, "vcf": scored, **options}))
    assert [(r.chrom, r.start, r.end) for r in summary.regions] == regions
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")


def test_an_indexed_scored_vcf_is_read_only_in_the_regions(tmp_path, scored, track, monkeypatch):
    import pysam

    from lrgen.io.bed import Region
    from lrgen.io.scored_vcf import ScoredVcf
    from lrgen.io.vcf import VcfReader

    indexed = Path(pysam.tabix_index(str(scored), preset="vcf", keep_original=True, force=True))
    regions = [Region("chr20", 150, 300), Region("chr20", 300, 450)]  # 20:300 AT>A overlaps both
    with ScoredVcf(scored) as plain, ScoredVcf(indexed) as fetched:
        whole = [(a.variant.pos, a.variant.alt) for a in plain.alleles(regions)]
        monkeypatch.setattr(VcfReader, "__iter__", lambda self: iter(()))  # the index must be used, not a scan
        assert [(a.variant.pos, a.variant.alt) for a in fetched.alleles(regions)] == [
            (200, "T"), (200, "G"), (300, "A"), (400, "<DEL>")]
    assert len(whole) == 7  # without an index everything is read; the caller filters
    out = tmp_path / "f.png"
    summary = plot(PlotOptions(out, bigwig=track, vcf=indexed, region=("20:151-450",)))
    assert (summary.with_value, summary.without_value) == (2, 2)


@pytest.mark.parametrize("options, message", [
    (dict(bigwig=None), "nothing to plot: give --bigwig"),
    (dict(output="f.jpg"), r"name a \.png, \.pdf, \.svg file"),
    (dict(region=("7:1-100",)), r"has no values on 7:1-100 \(its contigs: 20\)"),
    (dict(region=tuple(f"20:{i * 100 + 1}-{i * 100 + 50}" for i in range(7))), "7 regions to plot: choose at most 6"),
    (dict(vcf=EXAMPLE_VCF), "not written by lrgen score-vcf"),
    (dict(bigwig=EXAMPLE_VCF), "not a bigWig file"),
    (dict(output="folder.png"), r"folder\.png is a folder: name a file in it"),
    (dict(vcf="-", regions="-"), r"standard input \('-'\) can be read once"),
])
def test_plot_errors_are_one_line(tmp_path, scored, track, options, message):
    (tmp_path / "folder.png").mkdir()
    settings = {"output": tmp_path / "f.png", "bigwig": track, **options}
    settings["output"] = tmp_path / settings["output"]
    with pytest.raises(LrgenError, match=message) as err:
        plot(PlotOptions(**settings))
    assert "\n" not in str(err.value) and not (tmp_path / "f.png").exists()


def test_plot_without_matplotlib_names_the_extra(tmp_path, track):
    code = ("import sys; sys.modules['matplotlib'] = None; from lrgen.cli import main; "
            f"main(['plot', '--bigwig', {str(track)!r}, '-o', {str(tmp_path / 'f.png')!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1
    assert proc.stderr == "lrgen: error: lrgen plot needs matplotlib, which is not installed: pip install 'lrgen[plot]'\n"
