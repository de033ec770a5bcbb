"""``lrgen predict``: stitching, contig ends, merged/unsorted BED, aliasing, bigWig read-back."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pysam
import pytest
import torch

from lrgen.errors import LrgenError
from lrgen.tracks.predict import predict

MODEL = "caduceus-ps-tiny"


@pytest.fixture()
def genome(tmp_path):
    rng = np.random.default_rng(0)
    seqs = {"20": "".join(rng.choice(list("ACGT"), 3000)), "21": "NN" + "".join(rng.choice(list("ACGT"), 700))}
    path = tmp_path / "g.fa"
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in seqs.items()))
    pysam.faidx(str(path))
    return path, seqs


def _single_pass(seq: str, start: int, end: int, context_start: int, context_end: int) -> np.ndarray:
    """logprob track of [start, end) from one model pass over [context_start, context_end) of ``seq``."""
    import lrgen
    from lrgen.tokenizer import encode
    from lrgen.tracks.lm_tracks import lm_tracks

    model = lrgen.load_model(MODEL).eval()
    padded = "N" * max(0, -context_start) + seq[max(context_start, 0) : context_end]
    padded += "N" * (context_end - context_start - len(padded))
    ids = encode(padded)[None]
    with torch.no_grad():
        track = lm_tracks(model(ids), ids, ("logprob",))["logprob"][0].numpy()
    return track[start - context_start : end - context_start]


def test_one_window_equals_a_single_pass(genome, tmp_path):
    path, seqs = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t100\t400\n")
    out = tmp_path / "out.bw"
    predict(bed, path, MODEL, output=out, context=512, flank=100, chunk_size=64, progress=False)
    bw = pyBigWig.open(str(out))
    got = np.array(bw.values("20", 100, 400))
    assert bw.chroms() == {"20": 3000, "21": 702}
    np.testing.assert_allclose(got, _single_pass(seqs["20"], 100, 400, 0, 512), atol=1e-4)


def test_stitched_windows_equal_their_own_passes(genome, tmp_path):
    path, seqs = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t0\t1000\n")  # starts at the contig start: the first window is N-padded on the left
    out = tmp_path / "out.bw"
    predict(bed, path, MODEL, output=out, context=256, flank=64, progress=False)
    got = np.array(pyBigWig.open(str(out)).values("20", 0, 1000))
    interior = 128
    for k, pos in enumerate(range(0, 1000, interior)):
        end = min(pos + interior, 1000)
        expected = _single_pass(seqs["20"], pos, end, pos - 64, pos - 64 + 256)
        np.testing.assert_allclose(got[pos:end], expected, atol=1e-4, err_msg=f"window {k}")


def test_contig_end_unsorted_overlapping_bed_and_alias(genome, tmp_path):
    path, seqs = genome
    bed = tmp_path / "r.bed"
    bed.write_text("track name=x\nchr21\t600\t702\nchr20\t50\t80\nchr20\t70\t120\n")
    out = tmp_path / "out.bedGraph"
    predict(bed, path, MODEL, output=out, context=128, flank=16, fmt="bedgraph", progress=False)
    lines = [line.split("\t") for line in out.read_text().splitlines()]
    chroms = [line[0] for line in lines]
    assert chroms == sorted(chroms)  # chr20 before chr21, names as in the BED
    assert set(chroms) == {"chr20", "chr21"}
    covered = {(c, p) for c, s, e, _ in lines for p in range(int(s), int(e))}
    assert {p for c, p in covered if c == "chr20"} == set(range(50, 120))
    assert max(p for c, p in covered if c == "chr21") == 701  # clipped at the contig end


def test_binned_bigwig_and_several_tracks(genome, tmp_path):
    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t0\t1005\n")
    outs = predict(bed, path, MODEL, output=tmp_path / "t.bw", tracks=["logprob", "entropy"], context=256,
                   bin_size=10, batch_size=8, progress=False).outputs
    assert sorted(p.name for p in outs) == ["t.entropy.bw", "t.logprob.bw"]
    fine = tmp_path / "fine.bw"
    predict(bed, path, MODEL, output=fine, context=256, batch_size=8, progress=False)
    per_base = np.array(pyBigWig.open(str(fine)).values("20", 0, 1005))
    bw = pyBigWig.open(str(tmp_path / "t.logprob.bw"))
    intervals = bw.intervals("20")
    assert len(intervals) == 101 and intervals[-1][:2] == (1000, 1005)
    assert intervals[3][2] == pytest.approx(per_base[30:40].mean(), abs=1e-4)
    entropy = np.array([v for *_, v in pyBigWig.open(str(tmp_path / "t.entropy.bw")).intervals("20")])
    assert np.all((entropy >= 0) & (entropy <= np.log(4) + 1e-5))


def test_resume_after_interruption_gives_the_same_file(genome, tmp_path, monkeypatch):
    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("20\t0\t2000\n")
    ref = tmp_path / "ref.bw"
    predict(bed, path, MODEL, output=ref, context=256, batch_size=8, progress=False)

    import lrgen.tracks.predict as job

    calls = {"n": 0}
    real_save = job._Partial.save

    def failing_save(self):
        real_save(self)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    out = tmp_path / "out.bw"
    monkeypatch.setattr(job._Partial, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        predict(bed, path, MODEL, output=out, context=256, batch_size=8, progress=False)
    assert not out.exists()
    monkeypatch.setattr(job._Partial, "save", real_save)
    predict(bed, path, MODEL, output=out, context=256, batch_size=8, resume=True, progress=False)
    a = np.array(pyBigWig.open(str(ref)).values("20", 0, 2000))
    b = np.array(pyBigWig.open(str(out)).values("20", 0, 2000))
    np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "out.bw.lrgen-partial").exists()


def test_bad_inputs(genome, tmp_path):
    path, _ = genome
    bed = tmp_path / "r.bed"
    bed.write_text("chrX\t0\t10\n")
    with pytest.raises(LrgenError, match="chrX"):
        predict(bed, path, MODEL, output=tmp_path / "o.bw", context=128, progress=False)
    bed.write_text("20\t0\t10\n")
    with pytest.raises(LrgenError, match="unknown track"):
        predict(bed, path, MODEL, output=tmp_path / "o.bw", tracks=["nope"], progress=False)
    with pytest.raises(LrgenError, match="cannot stream|per-base"):
        predict(bed, path, "ntv2-tiny", output=tmp_path / "o.bw", context=128, progress=False)
    assert not list(tmp_path.glob("o.bw*"))
