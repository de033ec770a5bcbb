"""``lrgen predict``: stitching, contig ends, merged/unsorted BED, aliasing, bigWig read-back, fine-tuned CAGE
tracks, resume, torchrun sharding and errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyBigWig
import pysam
import pytest
import torch

import lrgen
from lrgen.errors import LrgenError
from lrgen.tracks.predict import PredictOptions, predict

from helpers import random_bases, write_fasta

MODEL = "caduceus-ps-tiny"


@pytest.fixture(scope="module")
def lm():
    return lrgen.load_model(MODEL).eval()


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    rng = np.random.default_rng(0)
    seqs = {"20": random_bases(3000, rng), "21": "NN" + random_bases(700, rng)}
    path = write_fasta(tmp_path_factory.mktemp("genome") / "g.fa", seqs)
    pysam.faidx(str(path))
    return path, seqs


def _single_pass(lm, seq: str, start: int, end: int, context_start: int, context_end: int) -> np.ndarray:
    """logprob track of [start, end) from one model pass over [context_start, context_end) of ``seq``."""
    from lrgen.tokenizer import encode
    from lrgen.tracks.lm_tracks import lm_tracks

    padded = "N" * max(0, -context_start) + seq[max(context_start, 0) : context_end]
    padded += "N" * (context_end - context_start - len(padded))
    ids = encode(padded)[None]
    with torch.no_grad():
        track = lm_tracks(lm(ids), ids, lm.tokenizer.nucleotide_ids, ("logprob",))["logprob"][0].numpy()
    return track[start - context_start : end - context_start]


def _values(path, chrom, start, end) -> np.ndarray:
    return np.array(pyBigWig.open(str(path)).values(chrom, start, end))


def test_one_window_equals_a_single_pass(genome, lm, tmp_path):
    path, seqs = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t100\t400\n")
    out = tmp_path / "out.bw"
    summary = predict(PredictOptions(regions=bed, genome=path, model=lm, output=out, context=512, flank=100, chunk_size=64, progress=False))
    assert summary.windows == 1 and summary.bases == 300 and "1 windows" in summary.line()
    assert pyBigWig.open(str(out)).chroms() == {"20": 3000, "21": 702}
    np.testing.assert_allclose(_values(out, "20", 100, 400), _single_pass(lm, seqs["20"], 100, 400, 0, 512), atol=1e-4)


def test_stitched_windows_equal_their_own_passes(genome, lm, tmp_path):
    path, seqs = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t0\t1000\n")  # starts at the contig start: the first window is N-padded on the left
    out = tmp_path / "out.bw"
    predict(PredictOptions(regions=bed, genome=path, model=lm, output=out, context=256, flank=64, progress=False))
    got = _values(out, "20", 0, 1000)
    for k, pos in enumerate(range(0, 1000, 128)):
        end = min(pos + 128, 1000)
        expected = _single_pass(lm, seqs["20"], pos, end, pos - 64, pos - 64 + 256)
        np.testing.assert_allclose(got[pos:end], expected, atol=1e-4, err_msg=f"window {k}")


def test_contig_end_unsorted_overlapping_bed_and_alias(genome, lm, tmp_path):
    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("track name=x\nchr21\t600\t702\nchr20\t50\t80\nchr20\t70\t120\n")
    out = tmp_path / "out.bedGraph"
    predict(PredictOptions(regions=bed, genome=path, model=lm, output=out, context=128, flank=16, format="bedgraph", progress=False))
    lines = [line.split("\t") for line in out.read_text().splitlines()]
    chroms = [line[0] for line in lines]
    assert chroms == sorted(chroms)  # chr20 before chr21, names as in the BED
    assert set(chroms) == {"chr20", "chr21"}
    covered = {(c, p) for c, s, e, _ in lines for p in range(int(s), int(e))}
    assert {p for c, p in covered if c == "chr20"} == set(range(50, 120))
    assert max(p for c, p in covered if c == "chr21") == 701  # clipped at the contig end


def test_regions_all_covers_every_contig(genome, lm, tmp_path):
    path, seqs = genome
    out = tmp_path / "all.bw"
    summary = predict(PredictOptions(regions=None, genome=path, model=lm, output=out, regions_all=True, context=512, batch_size=4, progress=False))
    assert summary.regions == 2 and summary.bases == 3702
    bw = pyBigWig.open(str(out))
    on20, on21 = bw.intervals("20"), bw.intervals("21")
    assert on20[0][0] == 0 and on20[-1][1] == 3000 and len(on20) == 3000
    assert on21[0][0] == 2 and on21[-1][1] == 702 and len(on21) == 700  # the two N of contig 21 have no value
    with pytest.raises(LrgenError, match="not both"):
        predict(PredictOptions(regions=tmp_path / "r.bed", genome=path, model=lm, output=out, regions_all=True, progress=False))


def test_binned_bigwig_and_several_tracks(genome, lm, tmp_path):
    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t0\t1005\n")
    outs = predict(PredictOptions(regions=bed, genome=path, model=lm, output=tmp_path / "t.bw", tracks=["logprob", "1"], context=256, bin_size=10, batch_size=8, progress=False)).outputs
    assert sorted(p.name for p in outs) == ["t.entropy.bw", "t.logprob.bw"]
    fine = tmp_path / "fine.bw"
    predict(PredictOptions(regions=bed, genome=path, model=lm, output=fine, context=256, batch_size=8, progress=False))
    per_base = _values(fine, "20", 0, 1005)
    intervals = pyBigWig.open(str(tmp_path / "t.logprob.bw")).intervals("20")
    assert len(intervals) == 101 and intervals[-1][:2] == (1000, 1005)
    assert intervals[3][2] == pytest.approx(per_base[30:40].mean(), abs=1e-4)
    entropy = np.array([v for *_, v in pyBigWig.open(str(tmp_path / "t.entropy.bw")).intervals("20")])
    assert np.all((entropy >= 0) & (entropy <= np.log(4) + 1e-5))


def test_resume_after_interruption_gives_the_same_file(genome, lm, tmp_path, monkeypatch):
    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t0\t2000\n")
    ref = tmp_path / "ref.bw"
    predict(PredictOptions(regions=bed, genome=path, model=lm, output=ref, context=256, batch_size=4, progress=False))

    from lrgen.tracks.partial import TrackValues as Partial

    calls = {"n": 0}
    real_save = Partial.save

    def failing_save(self):
        real_save(self)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    out = tmp_path / "out.bw"
    monkeypatch.setattr(Partial, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        predict(PredictOptions(regions=bed, genome=path, model=lm, output=out, context=256, batch_size=4, progress=False))
    assert not out.exists() and (tmp_path / "out.bw.lrgen-partial").is_dir()
    monkeypatch.setattr(Partial, "save", real_save)
    with pytest.raises(LrgenError, match="other settings"):
        predict(PredictOptions(regions=bed, genome=path, model=lm, output=out, context=512, batch_size=4, resume=True, progress=False))
    summary = predict(PredictOptions(regions=bed, genome=path, model=lm, output=out, context=256, batch_size=4, resume=True, progress=False))
    assert summary.windows_resumed == 8 and summary.windows == 11
    np.testing.assert_array_equal(_values(ref, "20", 0, 2000), _values(out, "20", 0, 2000))
    assert not (tmp_path / "out.bw.lrgen-partial").exists()


def test_bad_inputs_leave_no_output(genome, lm, tmp_path, capsys):
    from lrgen.cli import main

    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t0\t10\n")
    with pytest.raises(LrgenError, match="unknown track 'nope'"):
        predict(PredictOptions(regions=bed, genome=path, model=lm, output=tmp_path / "o.bw", tracks=["nope"], progress=False))
    with pytest.raises(LrgenError, match="needs a model that reads one token per base"):
        predict(PredictOptions(regions=bed, genome=path, model="ntv2-tiny", output=tmp_path / "o.bw", context=128, progress=False))
    with pytest.raises(LrgenError, match="extension says bigwig, --format says bedgraph"):
        predict(PredictOptions(regions=bed, genome=path, model=lm, output=tmp_path / "o.bw", format="bedgraph",
                               progress=False))
    with pytest.raises(LrgenError, match="does not exist"):
        predict(PredictOptions(regions=bed, genome=path, model=lm, output=tmp_path / "missing" / "o.bw", context=128, progress=False))
    with pytest.raises(LrgenError, match="-o -: predict writes files"):  # not a file named '-'
        predict(PredictOptions(regions=bed, genome=path, model=lm, output="-", context=128, progress=False))
    with pytest.raises(LrgenError, match="both '20' and 'chr20'"):
        bed.write_text("20\t0\t10\nchr20\t50\t60\n")
        predict(PredictOptions(regions=bed, genome=path, model=lm, output=tmp_path / "o.bw", context=128, progress=False))
    bed.write_text("20\t0\t10\n")
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(bed), "-g", str(path), "-m", MODEL, "-o", str(tmp_path / "o.bw"), "-t", "x"])
    err = capsys.readouterr().err
    assert stop.value.code == 1 and err.startswith("lrgen: error: ") and err.count("\n") == 1, err
    assert not list(tmp_path.glob("o.bw*"))


# ------------------------------------------------------------------------------------- fine-tuned CAGE tracks

CAGE_CONTEXT = 1024


@pytest.fixture(scope="module")
def cage(tmp_path_factory, glrb_bench):
    """A Caduceus-PS-tiny backbone fine-tuned for three steps on the fixture's CAGE task."""
    from lrgen.glrb.finetune import FinetuneOptions, finetune

    data, genome = glrb_bench(n_train=4, n_test=4)
    out = tmp_path_factory.mktemp("cage") / "model"
    finetune(FinetuneOptions(task="cage", model=MODEL, data_dir=data, genome=genome,
                             context=CAGE_CONTEXT, output=str(out), device="cpu", batch_size=4, max_steps=3,
                             warmup_steps=1, hidden=0, freeze_backbone=True))
    return out, genome


def _cage_window(model, genome_path, chrom: str, start: int) -> np.ndarray:
    """``(bins, tracks)`` outputs of the fine-tuned model on the window at ``start``, as in evaluation."""
    from lrgen.io.genome import Genome
    from lrgen.tokenizer import encode

    seq = Genome(genome_path).fetch(chrom, start, start + CAGE_CONTEXT)
    with torch.no_grad():
        return model(encode(seq)[None], torch.arange(CAGE_CONTEXT)[None], CAGE_CONTEXT)[0].numpy()


def test_cage_tracks_are_the_models_bins_stitched(cage, tmp_path):
    from lrgen.models.finetuned import load_finetuned

    model_dir, fasta = cage
    model, _ = load_finetuned(model_dir)
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t10000\t12000\n")
    summary = predict(PredictOptions(regions=bed, genome=fasta, model=str(model_dir), output=str(tmp_path / "out") + "/", tracks=["track3", "0"], chunk_size=256, batch_size=2, progress=False))
    assert [p.name for p in summary.outputs] == ["track3.bw", "track0.bw"] and summary.windows == 3
    for column, path in ((3, summary.outputs[0]), (0, summary.outputs[1])):
        intervals = pyBigWig.open(str(path)).intervals("chr1")
        assert [i[1] - i[0] for i in intervals] == [128] * 15 + [80]  # span = bin width, last bin clipped
        assert intervals[0][0] == 10000 and intervals[-1][1] == 12000
        got = np.array([v for *_, v in intervals])
        for k in range(3):  # context 1024, flank 128 (1024/8): windows at 9872 + 768k keep 6 bins each
            expected = _cage_window(model, fasta, "chr1", 9872 + 768 * k)[1:7, column]
            np.testing.assert_allclose(got[6 * k : 6 * k + 6], expected[: len(got[6 * k : 6 * k + 6])], atol=1e-4)

    binned = predict(PredictOptions(regions=bed, genome=fasta, model=model, output=tmp_path / "b.bw", tracks=["track3"], bin_size=256, progress=False))
    intervals = pyBigWig.open(str(binned.outputs[0])).intervals("chr1")
    assert [i[1] - i[0] for i in intervals] == [256] * 7 + [208]
    fine = np.array([v for *_, v in pyBigWig.open(str(summary.outputs[0])).intervals("chr1")])
    assert intervals[2][2] == pytest.approx(fine[4:6].mean(), abs=1e-5)


def test_cage_names_and_refusals(cage, tmp_path):
    from lrgen.models.finetuned import load_finetuned
    from lrgen.glrb.heads import task_spec
    from lrgen.glrb.tasks import get_task
    from lrgen.models.finetuned import FinetunedModel

    model_dir, fasta = cage
    model, _ = load_finetuned(model_dir)
    model.spec.label_names = [f"CNhs{i:05d}" for i in range(50)]
    bed = tmp_path / "r.bed"
    bed.write_text("chr2\t399000\t400000\n")  # to the contig end
    out = predict(PredictOptions(regions=bed, genome=fasta, model=model, output=tmp_path / "c.bw", tracks=["CNhs00007", "8"], progress=False)).outputs
    assert [p.name for p in out] == ["c.CNhs00007.bw", "c.CNhs00008.bw"]
    assert pyBigWig.open(str(out[0])).intervals("chr2")[-1][1] == 400000
    for kwargs, message in (
        ({"bin_size": 100}, "multiple of the model's 128 bp"),
        ({"context": 1000}, "multiple of 256"),
        ({"flank": 100}, "multiple of the model's 128 bp bins"),
        ({"tracks": ["track50"]}, "50 tracks"),
    ):
        with pytest.raises(LrgenError, match=message):
            predict(PredictOptions(regions=bed, genome=fasta, model=model, output=tmp_path / "x.bw", progress=False, **kwargs))
    variant = FinetunedModel(model.backbone, task_spec(model.backbone, get_task("clinvar"), 2048, 1))
    with pytest.raises(LrgenError, match="head that writes tracks"):
        predict(PredictOptions(regions=bed, genome=fasta, model=variant, output=tmp_path / "x.bw", progress=False))
    assert not list(tmp_path.glob("x.bw*"))


def test_torchrun_shards_equal_the_single_process_run(cage, tmp_path):
    model_dir, fasta = cage
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t20000\t24000\nchr2\t1000\t2000\n")
    single = predict(PredictOptions(regions=bed, genome=fasta, model=str(model_dir), output=str(tmp_path / "one") + "/", tracks=["1", "2"], progress=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "lrgen",
           "predict", str(bed), "--genome", str(fasta), "--model", str(model_dir), "--output", str(tmp_path / "two") + "/",
           "--track", "1", "--track", "2", "--device", "cpu", "--chunk-size", "512"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("on 2 processes") == 1  # only rank 0 reports
    for path in single.outputs:
        for chrom, start, end in (("chr1", 20000, 24000), ("chr2", 1000, 2000)):
            np.testing.assert_allclose(_values(tmp_path / "two" / path.name, chrom, start, end),
                                       _values(path, chrom, start, end), atol=1e-5)
    assert not list((tmp_path / "two").glob("*lrgen-partial"))


@pytest.mark.gpu
def test_gpu_tracks_match_cpu(genome, cage, tmp_path):
    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t0\t3000\n")
    for device in ("cpu", "cuda"):
        predict(PredictOptions(regions=bed, genome=path, model=MODEL, output=tmp_path / f"{device}.bw", context=1024, chunk_size=256, device=device, batch_size=2, progress=False))
    cpu, gpu = _values(tmp_path / "cpu.bw", "20", 0, 3000), _values(tmp_path / "cuda.bw", "20", 0, 3000)
    np.testing.assert_allclose(gpu, cpu, atol=0.05)  # bf16 autocast on the GPU

    model_dir, fasta = cage
    bed.write_text("chr1\t10000\t14000\n")
    for device in ("cpu", "cuda"):
        predict(PredictOptions(regions=bed, genome=fasta, model=str(model_dir), output=tmp_path / f"cage-{device}.bw", tracks=["0"], device=device, progress=False))
    cpu, gpu = (_values(tmp_path / f"cage-{d}.bw", "chr1", 10000, 14000) for d in ("cpu", "cuda"))
    np.testing.assert_allclose(gpu, cpu, atol=0.05, rtol=0.05)


def test_summary_line_says_random_weights_and_empty_runs(genome, tmp_path, capsys):
    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t100\t140\n")
    summary = predict(PredictOptions(regions=bed, genome=path, model=MODEL, output=tmp_path / "o.bw", context=128,
                                     progress=False))
    assert summary.line().endswith(f"o.bw (model '{MODEL}': architecture only, random weights)")
    assert f"lrgen: warning: model '{MODEL}' is a preset" in capsys.readouterr().err
    bed.write_text("")
    summary = predict(PredictOptions(regions=bed, genome=path, model=MODEL, output=tmp_path / "e.bw", context=128,
                                     progress=False))
    assert summary.line().startswith(f"no regions to predict: wrote 1 empty track(s): {tmp_path / 'e.bw'}")
    bw = pyBigWig.open(str(tmp_path / "e.bw"))
    assert bw.chroms() == {"20": 3000, "21": 702} and bw.header()["nBasesCovered"] == 0
