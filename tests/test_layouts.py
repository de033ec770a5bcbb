"""Checkpoints from the field: NTv2 in the Hugging Face ESM layout, PlantCaduceus-like Caduceus with its own
vocabulary, .bin / sharded weights, refused pickles, and the official Caduceus hub layout written by lrgen."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import lrgen
from lrgen.errors import LrgenError
from lrgen.models import save_model
from lrgen.models.layouts import export_caduceus_hub, ntv2_config_from_esm
from lrgen.models.ntv2 import NTv2Model
from lrgen.tokenizer import CHAR_TOKENIZER, KmerTokenizer

TOL = dict(rtol=1e-5, atol=1e-5)

# ---- NTv2 (Nucleotide Transformer v2) in the Hugging Face ESM layout ---------------------------------------------

PUBLISHED_50M = {  # the config.json of InstaDeepAI/nucleotide-transformer-v2-50m-multi-species, as the issue gives it
    "model_type": "esm", "architectures": ["EsmForMaskedLM"], "hidden_size": 512, "num_hidden_layers": 12,
    "num_attention_heads": 16, "intermediate_size": 2048, "vocab_size": 4107, "position_embedding_type": "rotary",
    "max_position_embeddings": 2050, "layer_norm_eps": 1e-12, "token_dropout": False, "emb_layer_norm_before": False,
    "mask_token_id": 2, "pad_token_id": 1, "add_bias_fnn": False, "tie_word_embeddings": False,
}
HIDDEN, LAYERS, HEADS, INTER, VOCAB, MAX_POS = 16, 2, 2, 24, 4107, 40


def esm_config() -> dict:
    return {**PUBLISHED_50M, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "intermediate_size": INTER, "max_position_embeddings": MAX_POS}


def vocab_lines() -> list[str]:
    """vocab.txt of the published checkpoints: 6 specials, the 6-mers in itertools.product order over ATCG, A T C G N."""
    specials = ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>"]
    return specials + ["".join(p) for p in itertools.product("ATCG", repeat=6)] + list("ATCGN")


def esm_tensors(seed: int, legacy: bool = False, contact: bool = True) -> dict[str, torch.Tensor]:
    """Random weights under the EsmForMaskedLM names; ``legacy`` adds the unused absolute position table and the
    per-layer rotary inv_freq buffers that older hub files carry."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=0.3: scale * torch.randn(*s, generator=g)  # noqa: E731
    t = {"esm.embeddings.word_embeddings.weight": r(VOCAB, HIDDEN, scale=1.0)}
    for i in range(LAYERS):
        p = f"esm.encoder.layer.{i}."
        for name in ("attention.LayerNorm", "LayerNorm"):
            t[p + name + ".weight"], t[p + name + ".bias"] = 1 + r(HIDDEN), r(HIDDEN)
        for name in ("query", "key", "value"):
            t[p + f"attention.self.{name}.weight"], t[p + f"attention.self.{name}.bias"] = r(HIDDEN, HIDDEN), r(HIDDEN)
        t[p + "attention.output.dense.weight"], t[p + "attention.output.dense.bias"] = r(HIDDEN, HIDDEN), r(HIDDEN)
        t[p + "intermediate.dense.weight"] = r(2 * INTER, HIDDEN)
        t[p + "output.dense.weight"] = r(HIDDEN, INTER)
        if legacy:
            t[p + "attention.self.rotary_embeddings.inv_freq"] = torch.rand(HIDDEN // HEADS // 2, generator=g)
    t["esm.encoder.emb_layer_norm_after.weight"], t["esm.encoder.emb_layer_norm_after.bias"] = 1 + r(HIDDEN), r(HIDDEN)
    t["lm_head.dense.weight"], t["lm_head.dense.bias"] = r(HIDDEN, HIDDEN), r(HIDDEN)
    t["lm_head.layer_norm.weight"], t["lm_head.layer_norm.bias"] = 1 + r(HIDDEN), r(HIDDEN)
    t["lm_head.decoder.weight"], t["lm_head.bias"] = r(VOCAB, HIDDEN), r(VOCAB)
    if contact:
        t["esm.contact_head.regression.weight"], t["esm.contact_head.regression.bias"] = r(1, LAYERS * HEADS), r(1)
    if legacy:
        t["esm.embeddings.position_embeddings.weight"] = r(MAX_POS, HIDDEN)
    return t


def write_esm(folder: Path, tensors: dict[str, torch.Tensor], config: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config or esm_config()))
    (folder / "vocab.txt").write_text("\n".join(vocab_lines()) + "\n")
    return folder


def esm_reference(t: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """EsmForMaskedLM of NTv2 from its description, in plain torch: pre-LN layers, q/k/v with biases, query scaled
    by head_dim^-0.5, rotary (base 10000, rotate_half) on q and k, padding keys masked and padding embeddings zeroed,
    bias-free GLU silu(x1)·x2, final LayerNorm, LM head dense → erf GELU → LayerNorm → decoder + bias. eps 1e-12."""
    batch, length = ids.shape
    hd = HIDDEN // HEADS
    mask = ids != PUBLISHED_50M["pad_token_id"]
    x = t["esm.embeddings.word_embeddings.weight"][ids] * mask[..., None]
    inv_freq = 1.0 / 10000 ** (torch.arange(0, hd, 2).float() / hd)
    angles = torch.arange(length).float()[:, None] * inv_freq[None]
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()

    def rotary(z):
        z1, z2 = z.chunk(2, -1)
        return z * cos + torch.cat([-z2, z1], -1) * sin

    def ln(z, p):
        return F.layer_norm(z, (HIDDEN,), t[p + ".weight"], t[p + ".bias"], eps=1e-12)

    def linear(z, p, bias=True):
        return z @ t[p + ".weight"].T + (t[p + ".bias"] if bias else 0)

    def heads(z):
        return z.view(batch, length, HEADS, hd).transpose(1, 2)

    for i in range(LAYERS):
        p = f"esm.encoder.layer.{i}."
        h = ln(x, p + "attention.LayerNorm")
        q = rotary(heads(linear(h, p + "attention.self.query")) * hd**-0.5)
        k = rotary(heads(linear(h, p + "attention.self.key")))
        v = heads(linear(h, p + "attention.self.value"))
        scores = q @ k.transpose(-1, -2) + torch.where(mask, 0.0, torch.finfo(torch.float32).min)[:, None, None, :]
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, HIDDEN)
        x = x + linear(attended, p + "attention.output.dense")
        x1, x2 = linear(ln(x, p + "LayerNorm"), p + "intermediate.dense", bias=False).chunk(2, -1)
        x = x + linear(F.silu(x1) * x2, p + "output.dense", bias=False)
    x = ln(x, "esm.encoder.emb_layer_norm_after")
    y = linear(x, "lm_head.dense")
    y = ln(y * 0.5 * (1.0 + torch.erf(y / math.sqrt(2.0))), "lm_head.layer_norm")
    return y @ t["lm_head.decoder.weight"].T + t["lm_head.bias"]


def test_published_50m_parameter_count():
    """54,855,372 parameters (55,904,972 with the unused 2,050 × 512 absolute position table)."""
    config = ntv2_config_from_esm(PUBLISHED_50M, Path("config.json"), cls_token_id=3, contact_head=True)
    with torch.device("meta"):
        model = NTv2Model(config)
    assert model.num_parameters() == 54_855_372
    assert model.num_parameters() + 2050 * 512 == 55_904_972
    assert config.norm_eps == 1e-12 and config.lm_head == "esm" and config.pad_token_id == 1


def test_vocab_txt_is_lrgens_kmer_vocabulary(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(vocab_lines()) + "\n")
    tokenizer = KmerTokenizer.from_vocab_txt(tmp_path / "vocab.txt")
    assert len(vocab_lines()) == 4107 and tokenizer.vocab == vocab_lines() == KmerTokenizer().vocab
    # the examples of the Nucleotide Transformer docs; 6-mer id = 6 + base-4 value over A0 T1 C2 G3,
    # single bases A T C G N = 4102..4106, <cls> = 3 first, no <eos>
    # ACGTGT = 0·4^5 + 2·4^4 + 3·4^3 + 1·4^2 + 3·4 + 1 = 733 → 739; TGCACG → 1937; CGACTA → 2858; GTCTGA → 3490
    assert tokenizer.encode("ACGTGTACNTGCACGGANCGACTAGTCTGA").tolist() == [
        3, 739, 4102, 4104, 4106, 1937, 4105, 4102, 4106, 2858, 3490]
    # ACGTGT 739; ACGTGC = 512 + 192 + 16 + 12 + 2 = 734 → 740; ACGGAC = 512 + 192 + 48 + 2 = 754 → 760;
    # GACTAG = 3072 + 128 + 16 + 3 = 3219 → 3225; TCAGCA = 1024 + 512 + 48 + 8 = 1592 → 1598
    assert tokenizer.encode("ACGTGTACGTGCACGGACGACTAGTCAGCA").tolist() == [3, 739, 740, 760, 3225, 1598]
    ids, starts, lengths = tokenizer.tokenize("ACGTGTACNTG")
    assert ids.tolist() == [739, 4102, 4104, 4106, 4103, 4105] and starts.tolist() == [0, 6, 7, 8, 9, 10]
    assert lengths.tolist() == [6, 1, 1, 1, 1, 1]
    assert tokenizer.decode(tokenizer.encode("ACGTGTAC")) == "<cls>ACGTGTAC"
    (tmp_path / "vocab.txt").write_text("\n".join(vocab_lines()[:-1] + ["X"]) + "\n")
    with pytest.raises(LrgenError, match=r"vocab.txt: line 4107 is 'X', the NTv2 6-mer vocabulary has 'N'"):
        KmerTokenizer.from_vocab_txt(tmp_path / "vocab.txt")


@torch.no_grad()
@pytest.mark.parametrize("legacy", [False, True])
def test_ntv2_esm_checkpoint_matches_the_reference(tmp_path, legacy):
    tensors = esm_tensors(seed=1, legacy=legacy)
    model = lrgen.load_model(write_esm(tmp_path / "nt", tensors))
    assert isinstance(model, NTv2Model) and model.config.lm_head == "esm" and model.config.cls_token_id == 3
    seq = "ACGTGTACGTGCNNACGGACGACTAGTCAGCAGGT"
    ids = model.tokenizer.encode(seq)[None]
    assert ids[0, 0] == 3
    expected = esm_reference(tensors, ids)
    torch.testing.assert_close(model(ids), expected, **TOL)
    # ids without <cls> (what KmerTokenizer.tokenize and lrgen's jobs give): <cls> added inside, its output dropped
    plain = torch.from_numpy(model.tokenizer.tokenize(seq)[0])[None]
    torch.testing.assert_close(model(plain), expected[:, 1:], **TOL)
    assert model.embed(plain).shape == (1, plain.shape[1], HIDDEN)


@torch.no_grad()
def test_ntv2_esm_as_sharded_bin(tmp_path):
    """pytorch_model.bin shards with their index (weights-only pickles), legacy tensors included."""
    tensors = esm_tensors(seed=8, legacy=True)
    folder = write_esm(tmp_path / "nt", tensors)
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    weight_map = {}
    for n, part in enumerate((names[::2], names[1::2])):
        torch.save({k: tensors[k] for k in part}, folder / f"pytorch_model-0000{n + 1}-of-00002.bin")
        weight_map.update(dict.fromkeys(part, f"pytorch_model-0000{n + 1}-of-00002.bin"))
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    model = lrgen.load_model(folder)
    ids = model.tokenizer.encode("ACGTGTACGTGCACGG")[None]
    torch.testing.assert_close(model(ids), esm_reference(tensors, ids), **TOL)


@torch.no_grad()
@pytest.mark.parametrize("marker", ["model_type", "architectures", "auto_map"])
def test_ntv2_esm_config_is_recognised_by_any_of_its_markers(tmp_path, marker):
    """The hub config may name the layout by model_type, architectures or only its auto_map (remote code)."""
    config = {k: v for k, v in esm_config().items() if k not in ("model_type", "architectures")}
    config[marker] = {"model_type": "esm", "architectures": ["EsmForMaskedLM"],
                      "auto_map": {"AutoConfig": "esm_config.EsmConfig",
                                   "AutoModelForMaskedLM": "modeling_esm.EsmForMaskedLM"}}[marker]
    tensors = esm_tensors(seed=7)
    model = lrgen.load_model(write_esm(tmp_path / "nt", tensors, config))
    ids = model.tokenizer.encode("ACGTGTACGTGCAC")[None]
    torch.testing.assert_close(model(ids), esm_reference(tensors, ids), **TOL)


@torch.no_grad()
def test_ntv2_esm_padded_batch_matches_the_reference(tmp_path):
    tensors = esm_tensors(seed=2)
    model = lrgen.load_model(write_esm(tmp_path / "nt", tensors))
    rows = [model.tokenizer.encode(s) for s in ("ACGTGTACGTGCAC", "TTGACCAGTN")]
    ids = torch.full((2, max(len(r) for r in rows)), model.tokenizer.pad_id)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    expected, out = esm_reference(tensors, ids), model(ids)
    for i, r in enumerate(rows):
        torch.testing.assert_close(out[i, : len(r)], expected[i, : len(r)], **TOL)
    with pytest.raises(LrgenError, match="some rows hold <cls> and some do not"):
        model(torch.stack([rows[0][:4], rows[0][1:5]]))


@torch.no_grad()
def test_ntv2_esm_without_contact_head_and_saved_in_lrgens_layout(tmp_path):
    tensors = esm_tensors(seed=3, contact=False)
    model = lrgen.load_model(write_esm(tmp_path / "nt", tensors))
    assert not hasattr(model, "contact_head")
    save_model(model, tmp_path / "ck")
    again = lrgen.load_model(tmp_path / "ck")
    ids = model.tokenizer.encode("ACGTGTACGTGCAC")[None]
    assert torch.equal(again(ids), model(ids)) and again.tokenizer == model.tokenizer
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["model_type"] == "ntv2"


def test_ntv2_esm_refuses_what_is_missing_or_foreign(tmp_path):
    tensors = esm_tensors(seed=4)
    del tensors["esm.encoder.layer.1.attention.self.key.bias"]
    with pytest.raises(LrgenError, match=r"model.safetensors: not the NTv2 ESM layout of config.json: missing "
                                         r"\['esm.encoder.layer.1.attention.self.key.bias'\]"):
        lrgen.load_model(write_esm(tmp_path / "a", tensors))
    tensors = {**esm_tensors(seed=4), "esm.encoder.layer.2.LayerNorm.weight": torch.ones(HIDDEN)}
    with pytest.raises(LrgenError, match=r"unexpected \['esm.encoder.layer.2.LayerNorm.weight'\]"):
        lrgen.load_model(write_esm(tmp_path / "b", tensors))
    for key, value, why in (("add_bias_fnn", True, "bias-free GLU"), ("position_embedding_type", "absolute", "rotary"),
                            ("token_dropout", True, "token dropout")):
        folder = write_esm(tmp_path / key, esm_tensors(seed=4), {**esm_config(), key: value})
        with pytest.raises(LrgenError, match=f"config.json: {key} is {value!r}.*{why}"):
            lrgen.load_model(folder)
    protein = {k: v for k, v in esm_config().items() if k != "add_bias_fnn"}
    with pytest.raises(LrgenError, match="add_bias_fnn is absent"):
        lrgen.load_model(write_esm(tmp_path / "protein", esm_tensors(seed=4), protein))


# ---- PlantCaduceus: official Caduceus code, its own vocabulary ---------------------------------------------------

PLANT_TOKENIZER = {  # the character tokenizer.json of the PlantCaduceus hub repos (GPN's tokenizer-dna-mlm)
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True} for i, c in enumerate(["[PAD]", "[MASK]", "[UNK]"])],
    "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
    "decoder": None,
    "model": {"type": "BPE", "dropout": None, "unk_token": "[UNK]", "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False,
              "vocab": {"[PAD]": 0, "[MASK]": 1, "[UNK]": 2, "a": 3, "c": 4, "g": 5, "t": 6}, "merges": []},
}
PLANT_COMPLEMENT = [0, 1, 2, 6, 5, 4, 3, 7]
D_MODEL, N_LAYER, D_STATE, D_INNER, DT_RANK = 8, 2, 4, 16, 1


def plant_config() -> dict:
    return {
        "architectures": ["CaduceusForMaskedLM"], "model_type": "caduceus", "d_model": D_MODEL, "n_layer": N_LAYER,
        "vocab_size": 8, "complement_map": {str(i): c for i, c in enumerate(PLANT_COMPLEMENT)},
        "residual_in_fp32": True, "pad_token_id": -100, "rcps": True, "fused_add_norm": True, "rms_norm": True,
        "bidirectional": True, "bidirectional_strategy": "add", "bidirectional_weight_tie": True,
        "pad_vocab_size_multiple": 8, "norm_epsilon": 1e-5,
        "ssm_cfg": {"d_state": D_STATE, "d_conv": 4, "expand": 2, "dt_rank": "auto", "bias": False, "conv_bias": True},
    }


def plant_state(seed: int) -> dict[str, torch.Tensor]:
    """Every state-dict name of the official RCPS CaduceusForMaskedLM, tied names sharing one tensor, as
    ``torch.save(model.state_dict())`` writes them."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=0.3: scale * torch.randn(*s, generator=g)  # noqa: E731
    emb = r(8, D_MODEL, scale=1.0)
    comp = torch.tensor(PLANT_COMPLEMENT)
    t = {"caduceus.backbone.embeddings.word_embeddings.embedding.weight": emb,
         "caduceus.backbone.embeddings.word_embeddings.complement_map": comp,
         "lm_head.complement_map": comp, "lm_head.lm_head.weight": emb}
    for i in range(N_LAYER):
        p = f"caduceus.backbone.layers.{i}.mixer.submodule."
        in_proj, out_proj = r(2 * D_INNER, D_MODEL), r(D_MODEL, D_INNER)
        for direction in ("mamba_fwd", "mamba_rev"):
            q = p + direction + "."
            t[q + "in_proj.weight"], t[q + "out_proj.weight"] = in_proj, out_proj
            t[q + "conv1d.weight"], t[q + "conv1d.bias"] = r(D_INNER, 1, 4), r(D_INNER)
            t[q + "x_proj.weight"], t[q + "dt_proj.weight"] = r(DT_RANK + 2 * D_STATE, D_INNER), r(D_INNER, DT_RANK)
            t[q + "dt_proj.bias"] = r(D_INNER) - 3.0
            t[q + "A_log"] = torch.log(torch.rand(D_INNER, D_STATE, generator=g) * 4 + 0.5)
            t[q + "D"] = r(D_INNER, scale=1.0)
        t[f"caduceus.backbone.layers.{i}.norm.weight"] = 1 + r(D_MODEL)
    t["caduceus.backbone.norm_f.weight"] = 1 + r(D_MODEL)
    return t


def plant_reference(t: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """RCPS Caduceus (fused add-norm) from the official equations with naive scans: see test_caduceus.py for the
    derivation; here for any vocabulary and complement map."""
    D = D_MODEL
    comp = t["caduceus.backbone.embeddings.word_embeddings.complement_map"]
    E = t["caduceus.backbone.embeddings.word_embeddings.embedding.weight"]

    def rc(x):
        return x.flip(-2, -1)

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def mamba(p, x):
        length = x.shape[1]
        xi, z = (x @ t[p + "in_proj.weight"].T).chunk(2, -1)
        xc = F.conv1d(xi.transpose(1, 2), t[p + "conv1d.weight"], t[p + "conv1d.bias"], padding=3, groups=D_INNER)
        xc = F.silu(xc[..., :length]).transpose(1, 2)
        dt, Bm, Cm = (xc @ t[p + "x_proj.weight"].T).split([DT_RANK, D_STATE, D_STATE], -1)
        dt = F.softplus(dt @ t[p + "dt_proj.weight"].T + t[p + "dt_proj.bias"])
        A, h, ys = -torch.exp(t[p + "A_log"]), torch.zeros(x.shape[0], D_INNER, D_STATE), []
        for s in range(length):
            h = torch.exp(dt[:, s, :, None] * A) * h + (dt[:, s] * xc[:, s])[..., None] * Bm[:, s, None, :]
            ys.append((h * Cm[:, s, None, :]).sum(-1) + t[p + "D"] * xc[:, s])
        return (torch.stack(ys, 1) * F.silu(z)) @ t[p + "out_proj.weight"].T

    def bimamba(p, x):
        return mamba(p + "mamba_fwd.", x) + mamba(p + "mamba_rev.", x.flip(1)).flip(1)

    hidden, residual = torch.cat([E[ids], rc(E[comp[ids.flip(-1)]])], -1), None
    for i in range(N_LAYER):
        p, w = f"caduceus.backbone.layers.{i}.", t[f"caduceus.backbone.layers.{i}.norm.weight"]
        r_fwd = hidden[..., D:] + (0 if residual is None else residual[..., D:])  # the fused path swaps halves
        r_rc = rc(hidden[..., :D]) + (0 if residual is None else rc(residual[..., :D]))
        residual = torch.cat([r_fwd, rc(r_rc)], -1)
        hidden = torch.cat([bimamba(p + "mixer.submodule.", rms(r_fwd, w)),
                            rc(bimamba(p + "mixer.submodule.", rms(r_rc, w)))], -1)
    s, w = hidden + residual, t["caduceus.backbone.norm_f.weight"]
    hidden = torch.cat([rms(s[..., :D], w), rc(rms(rc(s[..., D:]), w))], -1)
    return hidden[..., :D] @ E.T + hidden[..., D:].flip(-1) @ E[t["lm_head.complement_map"]].T


def write_plant(folder: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    folder.mkdir(parents=True, exist_ok=True)
    state = plant_state(seed)
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(plant_config()))
    (folder / "tokenizer.json").write_text(json.dumps(PLANT_TOKENIZER))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"mask_token": "[MASK]", "pad_token": "[PAD]", "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]"}))
    return state


def test_plant_tokenizer_ids(tmp_path):
    write_plant(tmp_path / "plant")
    tokenizer = lrgen.load_model(tmp_path / "plant").tokenizer
    assert tokenizer.encode("ACGTN").tolist() == [3, 4, 5, 6, 2]  # lowercased; n is not in the vocabulary: [UNK]
    assert tokenizer.encode("acgtRx").tolist() == [3, 4, 5, 6, 2, 2]
    assert (tokenizer.nucleotide_ids, tokenizer.n_id, tokenizer.unk_id, tokenizer.mask_id, tokenizer.pad_id) == (
        (3, 4, 5, 6), 2, 2, 1, 0)
    assert tokenizer.per_base and tokenizer.vocab_size == 7 and tokenizer.complement == (0, 1, 2, 6, 5, 4, 3)
    assert tokenizer.reverse_complement_ids(tokenizer.encode("AACGN")).tolist() == [2, 4, 5, 6, 6]
    assert tokenizer.decode([3, 1, 6]) == "a[MASK]t"
    ids, starts, lengths = tokenizer.tokenize("ACG")
    assert ids.tolist() == [3, 4, 5] and starts.tolist() == [0, 1, 2] and lengths.tolist() == [1, 1, 1]


@torch.no_grad()
def test_plant_caduceus_bin_loads_and_matches_the_reference(tmp_path):
    state = write_plant(tmp_path / "plant", seed=5)
    model = lrgen.load_model(tmp_path / "plant")
    assert model.config.vocab_size == 8 and model.config.residual_in_fp32 and model.rc_equivariant
    ids = torch.stack([model.tokenizer.encode("ACGTTGCANNACGTAGGCT"), model.tokenizer.encode("TTTTACGGGCAAGTCGATC")])
    ids[0, 4] = model.tokenizer.mask_id
    expected = plant_reference(state, ids)[..., :7]
    logits = model(ids)
    assert logits.shape == (2, 19, 7)
    torch.testing.assert_close(logits, expected, **TOL)
    rc = model(model.tokenizer.reverse_complement_ids(ids))
    torch.testing.assert_close(rc, logits.flip(1)[..., list(model.tokenizer.complement)], **TOL)


def test_plant_caduceus_without_its_tokenizer_is_refused(tmp_path):
    write_plant(tmp_path / "plant")
    (tmp_path / "plant" / "tokenizer.json").unlink()
    with pytest.raises(LrgenError, match=r"config.json: vocab_size or complement_map is not that of lrgen's "
                                         r"character vocabulary, and there is no tokenizer.json"):
        lrgen.load_model(tmp_path / "plant")


@torch.no_grad()
def test_plant_caduceus_saved_and_exported_keeps_its_tokenizer(tmp_path):
    write_plant(tmp_path / "plant", seed=6)
    model = lrgen.load_model(tmp_path / "plant")
    ids = model.tokenizer.encode("ACGTTGCANNACG")[None]
    for folder in (save_model(model, tmp_path / "lrgen"), export_caduceus_hub(model, tmp_path / "hub")):
        again = lrgen.load_model(folder)
        assert again.tokenizer == model.tokenizer and torch.equal(again(ids), model(ids))
        assert json.loads((folder / "tokenizer.json").read_text()) == PLANT_TOKENIZER
    assert json.loads((tmp_path / "hub" / "tokenizer_config.json").read_text())["tokenizer_class"] == (
        "PreTrainedTokenizerFast")


# ---- the official Caduceus hub layout, written by lrgen ----------------------------------------------------------

# the arguments of kuleshov-group/caduceus configuration_caduceus.py CaduceusConfig.__init__
OFFICIAL_CONFIG_KEYS = {"d_model", "n_layer", "vocab_size", "ssm_cfg", "rms_norm", "residual_in_fp32", "fused_add_norm",
                        "pad_vocab_size_multiple", "norm_epsilon", "initializer_cfg", "bidirectional",
                        "bidirectional_strategy", "bidirectional_weight_tie", "rcps", "complement_map"}


@torch.no_grad()
@pytest.mark.parametrize("preset", ["caduceus-ps-tiny", "caduceus-ph-tiny"])
def test_export_caduceus_hub_reads_back_identically(tmp_path, preset):
    model = lrgen.load_model(preset)
    for p in model.parameters():
        p.add_(0.01 * torch.randn_like(p))
    export_caduceus_hub(model, tmp_path / "hub")
    files = sorted(p.name for p in (tmp_path / "hub").iterdir())
    assert files == ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer_config.json"]
    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    assert set(config) == OFFICIAL_CONFIG_KEYS | {"model_type", "architectures", "auto_map", "torch_dtype"}
    assert config["model_type"] == "caduceus" and config["architectures"] == ["CaduceusForMaskedLM"]
    assert config["torch_dtype"] == "float32"
    tokenizer_config = json.loads((tmp_path / "hub" / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "CaduceusTokenizer"
    assert tokenizer_config["characters"] == ["A", "C", "G", "T", "N"] and tokenizer_config["mask_token"] == "[MASK]"
    assert "lm_head.weight" not in load_file(str(tmp_path / "hub" / "model.safetensors"))  # tied: stored once
    loaded = lrgen.load_model(tmp_path / "hub")
    assert loaded.tokenizer == CHAR_TOKENIZER
    assert {k: v for k, v in loaded.config.to_dict().items() if k in OFFICIAL_CONFIG_KEYS} == {
        k: v for k, v in model.config.to_dict().items() if k in OFFICIAL_CONFIG_KEYS}
    ids = torch.tensor([[7, 8, 9, 10, 11, 3, 7, 7, 10, 9, 8, 7, 10]])
    assert torch.equal(loaded(ids), model(ids)) and torch.equal(loaded.embed(ids), model.embed(ids))
    export_caduceus_hub(loaded, tmp_path / "hub")  # again, over the old one, from the exported model
    assert json.loads((tmp_path / "hub" / "config.json").read_text()) == config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]


def test_export_refuses_other_families(tmp_path):
    with pytest.raises(LrgenError, match="writes Caduceus models; this is a hawk model"):
        export_caduceus_hub(lrgen.load_model("hawk-tiny"), tmp_path / "hub")
