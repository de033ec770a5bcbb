"""`lrgen embed` and its library function on the bundled real chromosome 20 FASTA (first 1.2 Mbp)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from lrgen import load_model
from lrgen.cli.app import app
from lrgen.embed import EmbedOptions, embed_regions
from lrgen.embed.regions import region_window
from lrgen.errors import LrgenError
from lrgen.io.genome import Genome
from lrgen.tokenizer import encode

PRESET = "hawk-tiny"


@pytest.fixture(scope="module")
def genome():
    return Path(__file__).resolve().parents[1] / "examples" / "data" / "chr20_1-1.2Mb.fa.gz"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return load_model(PRESET).eval()


def write_bed(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_region_window_centres_the_region():
    assert region_window(100, 110, 30) == (90, 120)
    assert region_window(100, 111, 30) == (91, 121)  # the odd extra base goes right
    assert region_window(100, 109, 30) == (90, 120)
    assert region_window(100, 200, 30) == (100, 200)
    assert region_window(100, 200, None) == (100, 200)


def test_mean_embeddings_equal_the_whole_window_forward(tmp_path, genome, model):
    bed = write_bed(tmp_path / "r.bed", ["20\t60000\t60100\tfirst", "chr20\t0\t50\tstart", "20\t70000\t70400\tlong"])
    out = tmp_path / "emb.safetensors"
    meta = embed_regions(EmbedOptions(regions=bed, model=model, genome=genome, output=out, context=300, chunk_size=64, progress=False))
    assert list(meta["regions"]) == ["first", "start", "long"]
    assert meta["regions"]["start"]["window"] == [-125, 175]  # N-padded before the contig start
    assert meta["regions"]["long"]["window"] == [70000, 70400]  # longer than the context: the region itself
    fasta = Genome(genome)
    with safe_open(str(out), "pt") as fh:
        assert json.loads(fh.metadata()["lrgen"])["hidden_size"] == model.hidden_size
        for key, info in meta["regions"].items():
            ws, we = info["window"]
            with torch.no_grad():
                hidden = model.embed(encode(fasta.fetch(info["chrom"], ws, we))[None])[0]
            expected = hidden[info["start"] - ws : info["end"] - ws].mean(0)
            got = fh.get_tensor(key)
            assert got.shape == (model.hidden_size,)
            assert (got - expected).abs().max().item() <= 1e-4


def test_per_position_npz_and_unnamed_regions(tmp_path, genome, model):
    bed = write_bed(tmp_path / "r.bed", ["20\t61000\t61020", "20\t61020\t61050\tx"])
    out = tmp_path / "emb.npz"
    embed_regions(EmbedOptions(regions=bed, model=model, genome=genome, output=out, pool="none", batch_size=2, progress=False))
    data = np.load(out)
    meta = json.loads(str(data["__metadata__"]))
    assert meta["pool"] == "none" and meta["context"] is None
    assert data["20:61000-61020"].shape == (20, model.hidden_size)
    assert data["20:61020-61050"].shape == (30, model.hidden_size)


def test_conjoined_embeddings_are_strand_symmetric(tmp_path, genome, model):
    fasta = Genome(genome)
    bed = write_bed(tmp_path / "r.bed", ["20\t62000\t62040\tr"])
    out = tmp_path / "emb.npz"
    embed_regions(EmbedOptions(regions=bed, model=model, genome=genome, output=out, context=100, conjoin=True, progress=False))
    ids = encode(fasta.fetch("20", 61970, 62070))[None]
    with torch.no_grad():
        from lrgen.tokenizer import reverse_complement_ids

        hidden = (model.embed(ids) + model.embed(reverse_complement_ids(ids)).flip(1)) / 2
    assert np.abs(np.load(out)["r"] - hidden[0, 30:70].mean(0).numpy()).max() <= 1e-4


def test_errors_leave_no_output(tmp_path, genome, model):
    out = tmp_path / "emb.safetensors"
    with pytest.raises(LrgenError, match="line 2"):
        embed_regions(EmbedOptions(regions=write_bed(tmp_path / "a.bed", ["20\t1\t5", "20\t1\t2000000"]), model=model, genome=genome, output=out, progress=False))
    with pytest.raises(LrgenError, match="repeats line 1"):
        embed_regions(EmbedOptions(regions=write_bed(tmp_path / "b.bed", ["20\t1\t5", "20\t1\t5"]), model=model, genome=genome, output=out, progress=False))
    with pytest.raises(LrgenError, match="safetensors"):
        embed_regions(EmbedOptions(regions=write_bed(tmp_path / "c.bed", ["20\t1\t5"]), model=model, genome=genome, output=tmp_path / "e.pt", progress=False))
    with pytest.raises(LrgenError, match="the region name '__metadata__' is reserved in .npz output; rename it"):
        embed_regions(EmbedOptions(regions=write_bed(tmp_path / "d.bed", ["20\t1\t5\t__metadata__"]), model=model, genome=genome, output=tmp_path / "emb.npz", progress=False))
    assert list(tmp_path.glob("emb*")) == [] and list(tmp_path.glob(".emb*")) == []


def test_a_preset_says_random_weights_in_the_metadata(tmp_path, genome, capsys):
    bed = write_bed(tmp_path / "r.bed", ["20\t60000\t60010\ta"])
    meta = embed_regions(EmbedOptions(regions=bed, model=PRESET, genome=genome, output=tmp_path / "e.npz", progress=False))
    assert meta["weights"] == "architecture only, random weights"
    assert json.loads(str(np.load(tmp_path / "e.npz")["__metadata__"]))["weights"] == meta["weights"]
    assert f"lrgen: warning: model '{PRESET}' is a preset: the architecture only" in capsys.readouterr().err


def test_cli_end_to_end(tmp_path, genome):
    bed = write_bed(tmp_path / "r.bed", ["20\t60000\t60100\ta", "20\t65000\t65100\tb"])
    out = tmp_path / "emb.safetensors"
    args = ["embed", str(bed), "--model", PRESET, "--genome", str(genome), "-o", str(out)]
    result = CliRunner().invoke(app, args + ["--context", "0.5kb", "--chunk-size", "128", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "2 region embeddings" in result.output
    with safe_open(str(out), "pt") as fh:
        assert sorted(fh.keys()) == ["a", "b"]
        assert json.loads(fh.metadata()["lrgen"])["context"] == 500


@pytest.mark.gpu
def test_cuda_graph_replays_give_the_same_embeddings(tmp_path, genome):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    torch.manual_seed(3)
    net = load_model("caduceus-ps-tiny").cuda().eval()
    bed = write_bed(tmp_path / "r.bed", [f"20\t{60000 + 1000 * i}\t{60100 + 1000 * i}\tr{i}" for i in range(10)])
    outs = []
    for graphs in (True, False):
        out = tmp_path / f"emb{graphs}.safetensors"
        embed_regions(EmbedOptions(regions=bed, model=net, genome=genome, output=out, context=512, chunk_size=128, batch_size=2, progress=False, cuda_graphs=graphs))
        with safe_open(str(out), "pt") as fh:
            outs.append({key: fh.get_tensor(key) for key in fh.keys()})
    assert outs[0].keys() == outs[1].keys() and len(outs[0]) == 10
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])  # five batches: warm-up, capture, 3 replays
