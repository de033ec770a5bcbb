"""Fine-tuned heads outside fine-tuning: predict writes a centre head's per-window probabilities, score-vcf gives
centre and bins heads' ALT − REF delta; both equal the fine-tuned model's own outputs."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pytest
import torch

import lrgen
from lrgen.models.finetuned import FinetunedModel, make_spec, save_finetuned
from lrgen.tokenizer import encode

LENGTH = 3000


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    seq = "".join(np.random.default_rng(0).choice(list("ACGT"), LENGTH))
    path = tmp_path_factory.mktemp("heads") / "g.fa"
    path.write_text(f">chr1\n{seq}\n")
    return path, seq


def _model(pooling: str, context: int, **shape) -> FinetunedModel:
    backbone = lrgen.load_model("hawk-tiny")
    spec = make_spec(backbone, task="regions", context=context, n_outputs=2, pooling=pooling, binary=True, hidden=8,
                     label_names=["a", "b"], **shape)
    return FinetunedModel(backbone, spec).eval()


@torch.no_grad()
def _scores(model: FinetunedModel, window: str) -> np.ndarray:
    context = len(window)
    features = model.pool(model.hidden(encode(window)[None]), torch.arange(context)[None], context)
    return model.scores(features)[0].numpy()


def test_predict_writes_a_centre_heads_probability_over_each_windows_pooled_centre(genome, tmp_path):
    from lrgen.tracks.predict import PredictOptions, predict

    path, seq = genome
    model = _model("centre", 256, pool_bp=100)
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t500\t1500\n")
    summary = predict(PredictOptions(regions=bed, genome=path, model=model, output=str(tmp_path / "out") + "/",
                                     progress=False))
    assert [p.name for p in summary.outputs] == ["a.bw", "b.bw"] and summary.windows == 10
    with pyBigWig.open(str(summary.outputs[1])) as bw:
        values = np.array(bw.values("chr1", 500, 1500))
    for k in (0, 4, 9):  # window k: [422 + 100k, 678 + 100k), keeps its pooled centre [500 + 100k, 600 + 100k)
        kept = values[100 * k : 100 * k + 100]
        start = 500 + 100 * k - 78
        assert np.allclose(kept, _scores(model, seq[start : start + 256])[1], atol=1e-5)


@pytest.mark.parametrize("pooling, shape", [("centre", {"pool_bp": 100}), ("bins", {"bin_bp": 32, "max_bins": 16})])
def test_score_vcf_head_is_the_heads_alt_minus_ref(genome, tmp_path, pooling, shape):
    from lrgen.variants import ScoreVcfOptions, score_vcf

    path, seq = genome
    model = _model(pooling, 512, **shape)
    folder = save_finetuned(model, tmp_path / pooling)
    pos = 1500
    alt = "A" if seq[pos - 1] != "A" else "G"
    vcf = tmp_path / "one.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   f"chr1\t{pos}\t.\t{seq[pos - 1]}\t{alt}\t.\t.\t.\n")
    tsv = tmp_path / "out.tsv"
    score_vcf(ScoreVcfOptions(vcf=vcf, genome=path, model=str(folder), context=512, output=tmp_path / "out.vcf",
                              tsv=tsv, scores=("head",), exact=True, progress=False))
    header, row = (line.split("\t") for line in tsv.read_text().splitlines())
    got = float(row[header.index("head")])

    window = seq[pos - 1 - 256 : pos - 1 + 256]  # a lone variant sits at the window centre
    edited = window[:256] + alt + window[257:]
    if pooling == "centre":
        expected = _scores(model, edited) - _scores(model, window)
    else:  # one bin centred on the allele
        with torch.no_grad():
            alt_bin, ref_bin = (model.hidden(encode(w)[None])[:, 240:272].mean(1) for w in (edited, window))
            expected = (model.scores(alt_bin) - model.scores(ref_bin))[0].numpy()
    assert got == pytest.approx(float(expected.mean()), abs=1e-5) and got != 0
