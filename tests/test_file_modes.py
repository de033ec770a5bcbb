"""Outputs get the mode a plain ``open`` gives under the umask (temporary files renamed into place used to keep
mkstemp's 0600): score-vcf, predict, embed and saved models."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import lrgen
from lrgen.embed import EmbedOptions, embed_regions
from lrgen.models.finetuned import FinetunedModel, make_spec, save_finetuned
from lrgen.tracks.predict import PredictOptions, predict
from lrgen.variants import ScoreVcfOptions, score_vcf

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
FASTA, VCF = EXAMPLES / "chr20_1-1.2Mb.fa.gz", EXAMPLES / "example.vcf.gz"


@pytest.fixture
def umask_027():
    """Umask 027: files are 0640, unlike both a default 0644 and mkstemp's 0600."""
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_follow_the_umask(tmp_path, umask_027):
    model = lrgen.load_model("hawk-tiny")
    bed = tmp_path / "r.bed"
    bed.write_text("20\t1000000\t1000300\tr\n")
    score_vcf(ScoreVcfOptions(vcf=VCF, genome=FASTA, model=model, context=256, output=tmp_path / "s.vcf.gz",
                              tsv=tmp_path / "s.tsv", scores=("wt-marginal",), regions=bed, progress=False))
    predict(PredictOptions(regions=bed, genome=FASTA, model=model, output=tmp_path / "p.bw", context=256,
                           progress=False))
    predict(PredictOptions(regions=bed, genome=FASTA, model=model, output=tmp_path / "p.bedGraph.gz", context=256,
                           progress=False))
    for name in ("e.npz", "e.safetensors"):
        embed_regions(EmbedOptions(regions=bed, genome=FASTA, model=model, output=tmp_path / name, progress=False))
    spec = make_spec(model, task="variant_effect_pathogenic_clinvar", context=256, n_outputs=1, pooling="variant",
                     binary=True, pool_bp=128, hidden=8)
    saved = save_finetuned(FinetunedModel(model, spec), tmp_path / "ft")
    files = ["s.vcf.gz", "s.vcf.gz.tbi", "s.tsv", "p.bw", "p.bedGraph.gz", "e.npz", "e.safetensors",
             "ft/model.safetensors", "ft/head.safetensors", "ft/config.json", "ft/task.json"]
    assert {name: oct(_mode(tmp_path / name)) for name in files} == {name: oct(umask_027) for name in files}
    assert saved == tmp_path / "ft" and not [p for p in tmp_path.rglob(".*")]  # no temporary left behind
