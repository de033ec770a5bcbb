"""Caduceus: RC equivariance of PS, conjoining, the chunk-state contract, and official checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import lrgen
from lrgen.models import conjoin
from lrgen.models.caduceus import PRESETS, Caduceus, CaduceusConfig, default_complement_map
from lrgen.models.registry import build_model
from lrgen.tokenizer import COMPLEMENT_IDS, MASK_ID, VOCAB_SIZE, reverse_complement_ids

from helpers import random_ids

TOL = dict(rtol=1e-5, atol=1e-5)
COMP = list(COMPLEMENT_IDS)


def tiny(rcps: bool, **changes) -> Caduceus:
    base = PRESETS["caduceus-ps-tiny" if rcps else "caduceus-ph-tiny"]
    config = CaduceusConfig.from_dict({**base.to_dict(), **changes})
    torch.manual_seed(0)
    model = Caduceus(config).eval()
    with torch.no_grad():  # break the symmetric init (ones) of norms and D so that flips and swaps show
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "norm_f.weight", ".D")):
                p.add_(0.3 * torch.randn_like(p))
    return model


def ids(batch=2, length=29, seed=0):
    x = random_ids(batch, length, seed)
    x[0, 3] = MASK_ID
    return x


@torch.no_grad()
@pytest.mark.parametrize("fused", [True, False])
def test_ps_is_rc_equivariant(fused):
    model = tiny(True, fused_add_norm=fused)
    x = ids()
    logits, logits_rc = model(x), model(reverse_complement_ids(x))
    assert logits.shape == (2, 29, VOCAB_SIZE)
    torch.testing.assert_close(logits_rc, logits.flip(1)[..., COMP], **TOL)
    h, h_rc = model.embed(x), model.embed(reverse_complement_ids(x))
    assert h.shape == (2, 29, 64) and model.hidden_size == 64
    torch.testing.assert_close(h_rc, h.flip(1, 2), **TOL)


@torch.no_grad()
def test_ph_is_not_rc_equivariant_but_conjoined_is():
    model = tiny(False)
    x = ids()
    logits = model(x)
    assert not torch.allclose(model(reverse_complement_ids(x)), logits.flip(1)[..., COMP], atol=1e-3)
    joined = conjoin(model, x)
    joined_rc = conjoin(model, reverse_complement_ids(x))
    torch.testing.assert_close(joined_rc, joined.flip(1)[..., COMP], **TOL)
    expected = (logits + model(reverse_complement_ids(x)).flip(1)[..., COMP]) / 2
    torch.testing.assert_close(joined, expected, **TOL)
    hidden = conjoin(model, x, output="hidden")
    torch.testing.assert_close(conjoin(model, reverse_complement_ids(x), output="hidden"), hidden.flip(1), **TOL)


@torch.no_grad()
def test_conjoining_ps_changes_nothing_in_logits():
    model = tiny(True)
    x = ids()
    torch.testing.assert_close(conjoin(model, x), model(x), **TOL)
    h = model.embed(x)
    torch.testing.assert_close(conjoin(model, x, output="hidden"), (h + h.flip(-1)) / 2, **TOL)


def chunked_runner(chunk: int, keys: list[str]):
    """A runner that cuts each direction into chunks of ``chunk`` positions and carries the state."""

    def run(fn, x, *, reverse, key, out=None):
        keys.append(key)
        xs = x.flip(1) if reverse else x
        state, outs = None, []
        for start in range(0, xs.shape[1], chunk):
            y, state = fn(xs[:, start : start + chunk], state)
            outs.append(y)
        y = torch.cat(outs, 1)
        y = y.flip(1) if reverse else y
        return y if out is None else out.add_(y)

    return run


@torch.no_grad()
@pytest.mark.parametrize("rcps", [True, False])
def test_chunked_runner_equals_whole_sequence(rcps):
    model = tiny(rcps)
    x = ids(length=33)
    keys: list[str] = []
    torch.testing.assert_close(model(x, runner=chunked_runner(7, keys)), model(x), **TOL)
    assert len(keys) == len(set(keys)) == model.config.n_layer * (4 if rcps else 2)
    assert all(k.startswith("layers.") for k in keys)
    torch.testing.assert_close(model.embed(x, runner=chunked_runner(2, [])), model.embed(x), **TOL)


def test_gradients_flow():
    model = tiny(True).train()
    loss = F.cross_entropy(model(ids()).reshape(-1, VOCAB_SIZE), ids().reshape(-1))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_presets_are_deterministic_and_tied():
    a, b = build_model(PRESETS["caduceus-ps-tiny"]), build_model(PRESETS["caduceus-ps-tiny"])
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    mixer = a.backbone.layers[0].mixer.submodule
    assert mixer.mamba_rev.in_proj.weight is mixer.mamba_fwd.in_proj.weight
    assert a.lm_head.lm_head.weight is a.backbone.embeddings["word_embeddings"].embedding.weight


# ---- official checkpoint layout --------------------------------------------------------------------------------
# The reference below is written from the equations of kuleshov-group/caduceus (modeling_caduceus.py,
# modeling_rcps.py) and mamba-ssm's Mamba (simple path), with naive per-timestep loops and nothing from lrgen.

D_MODEL, N_LAYER, D_STATE, D_CONV, EXPAND, VOCAB = 8, 2, 4, 4, 2, 16
D_INNER, DT_RANK = EXPAND * D_MODEL, 1  # dt_rank "auto" = ceil(8 / 16)


def official_tensors(rcps: bool, seed: int, fused: bool = True) -> dict[str, torch.Tensor]:
    """Random weights under the official key names, tied copies omitted as Hugging Face saves them."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=0.3: scale * torch.randn(*s, generator=g)  # noqa: E731
    emb = "caduceus.backbone.embeddings.word_embeddings." + ("embedding.weight" if rcps else "weight")
    t = {emb: r(VOCAB, D_MODEL, scale=1.0)}
    if rcps:
        t["caduceus.backbone.embeddings.word_embeddings.complement_map"] = torch.tensor(COMP + [12, 13, 14, 15])
        t["lm_head.complement_map"] = torch.tensor(COMP + [12, 13, 14, 15])
    mixer = "mixer.submodule." if rcps else "mixer."
    wrapped = ".submodule" if rcps and not fused else ""  # RCPSAddNormWrapper
    for i in range(N_LAYER):
        for direction in ("mamba_fwd", "mamba_rev"):
            p = f"caduceus.backbone.layers.{i}.{mixer}{direction}."
            if direction == "mamba_fwd":
                t[p + "in_proj.weight"] = r(2 * D_INNER, D_MODEL)
                t[p + "out_proj.weight"] = r(D_MODEL, D_INNER)
            t[p + "conv1d.weight"] = r(D_INNER, 1, D_CONV)
            t[p + "conv1d.bias"] = r(D_INNER)
            t[p + "x_proj.weight"] = r(DT_RANK + 2 * D_STATE, D_INNER)
            t[p + "dt_proj.weight"] = r(D_INNER, DT_RANK)
            t[p + "dt_proj.bias"] = r(D_INNER) - 3.0
            t[p + "A_log"] = torch.log(torch.rand(D_INNER, D_STATE, generator=g) * 4 + 0.5)
            t[p + "D"] = r(D_INNER, scale=1.0)
        t[f"caduceus.backbone.layers.{i}.norm{wrapped}.weight"] = 1 + r(D_MODEL)
    t[f"caduceus.backbone.norm_f{wrapped}.weight"] = 1 + r(D_MODEL)
    return t


def official_config(rcps: bool, fused: bool = True) -> dict:
    return {
        "_name_or_path": "kuleshov-group/caduceus-tiny-test",
        "architectures": ["CaduceusForMaskedLM"],
        "auto_map": {"AutoConfig": "configuration_caduceus.CaduceusConfig"},
        "bidirectional": True,
        "bidirectional_strategy": "add",
        "bidirectional_weight_tie": True,
        "complement_map": {str(i): c for i, c in enumerate(COMP + [12, 13, 14, 15])},
        "d_model": D_MODEL,
        "fused_add_norm": fused,
        "initializer_cfg": {"initializer_range": 0.02, "n_residuals_per_layer": 1, "rescale_prenorm_residual": True},
        "model_type": "caduceus",
        "n_layer": N_LAYER,
        "norm_epsilon": 1e-05,
        "pad_vocab_size_multiple": 8,
        "rcps": rcps,
        "residual_in_fp32": False,
        "rms_norm": True,
        "ssm_cfg": {"bias": False, "conv_bias": True, "d_conv": D_CONV, "d_state": D_STATE, "dt_init": "random",
                    "dt_init_floor": 0.0001, "dt_max": 0.1, "dt_min": 0.001, "dt_rank": "auto", "dt_scale": 1.0,
                    "expand": EXPAND, "use_fast_path": True},
        "torch_dtype": "float32",
        "transformers_version": "4.38.1",
        "vocab_size": VOCAB,
    }


def reference_logits(t: dict[str, torch.Tensor], rcps: bool, input_ids: torch.Tensor, fused: bool = True):
    def get(key):  # tied names fall back to the stored one
        key = key.replace("mamba_rev.in_proj", "mamba_fwd.in_proj").replace("mamba_rev.out_proj", "mamba_fwd.out_proj")
        return t[key]

    def mamba(p, x):
        length = x.shape[1]
        xz = x @ get(p + "in_proj.weight").T
        xi, z = xz[..., :D_INNER], xz[..., D_INNER:]
        xc = F.conv1d(xi.transpose(1, 2), get(p + "conv1d.weight"), get(p + "conv1d.bias"), padding=D_CONV - 1,
                      groups=D_INNER)[..., :length]
        xc = F.silu(xc).transpose(1, 2)  # (B, L, d_inner)
        x_dbl = xc @ get(p + "x_proj.weight").T
        dt, Bm, Cm = x_dbl[..., :DT_RANK], x_dbl[..., DT_RANK:DT_RANK + D_STATE], x_dbl[..., DT_RANK + D_STATE:]
        dt = F.softplus(dt @ get(p + "dt_proj.weight").T + get(p + "dt_proj.bias"))
        A = -torch.exp(get(p + "A_log"))
        h = torch.zeros(x.shape[0], D_INNER, D_STATE)
        ys = []
        for s in range(length):
            h = torch.exp(dt[:, s, :, None] * A) * h + (dt[:, s] * xc[:, s])[..., None] * Bm[:, s, None, :]
            ys.append((h * Cm[:, s, None, :]).sum(-1) + get(p + "D") * xc[:, s])
        y = torch.stack(ys, 1) * F.silu(z)
        return y @ get(p + "out_proj.weight").T

    def bimamba(p, x):
        return mamba(p + "mamba_fwd.", x) + mamba(p + "mamba_rev.", x.flip(1)).flip(1)

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def rc(x):
        return x.flip(-2, -1)

    def fused_add_norm(x, w, residual):  # mamba-ssm rms_norm_fn with prenorm=True
        s = x if residual is None else x + residual
        return rms(s, w), s

    D = D_MODEL
    if rcps:
        comp = t["caduceus.backbone.embeddings.word_embeddings.complement_map"]
        E = t["caduceus.backbone.embeddings.word_embeddings.embedding.weight"]
        hidden = torch.cat([E[input_ids], rc(E[comp[input_ids.flip(-1)]])], -1)
    else:
        hidden = t["caduceus.backbone.embeddings.word_embeddings.weight"][input_ids]
    residual = None
    for i in range(N_LAYER):
        p = f"caduceus.backbone.layers.{i}."
        if rcps and not fused:  # RCPSMambaBlock without fused add-norm: RCPSAddNormWrapper, halves in order
            w = t[p + "norm.submodule.weight"]
            res_fwd = hidden[..., :D] + (0 if residual is None else residual[..., :D])
            res_rc = rc(hidden[..., D:]) + (0 if residual is None else rc(residual[..., D:]))
            hidden = torch.cat([rms(res_fwd, w), rc(rms(res_rc, w))], -1)
            residual = torch.cat([res_fwd, rc(res_rc)], -1)
            hidden = torch.cat([bimamba(p + "mixer.submodule.", hidden[..., :D]),
                                rc(bimamba(p + "mixer.submodule.", rc(hidden[..., D:])))], -1)
            continue
        w = t[p + "norm.weight"]
        if rcps:  # RCPSMambaBlock, fused branch: the forward norm reads the second half, the RC norm the first
            h_fwd, r_fwd = fused_add_norm(hidden[..., D:], w, None if residual is None else residual[..., D:])
            h_rc, r_rc = fused_add_norm(rc(hidden[..., :D]), w, None if residual is None else rc(residual[..., :D]))
            hidden, residual = torch.cat([h_fwd, rc(h_rc)], -1), torch.cat([r_fwd, rc(r_rc)], -1)
            hidden = torch.cat([bimamba(p + "mixer.submodule.", hidden[..., :D]),
                                rc(bimamba(p + "mixer.submodule.", rc(hidden[..., D:])))], -1)
        else:
            hidden, residual = fused_add_norm(hidden, w, residual)
            hidden = bimamba(p + "mixer.", hidden)
    w = t["caduceus.backbone.norm_f.weight" if fused else "caduceus.backbone.norm_f.submodule.weight"]
    if rcps:  # final norm (fused, or RCPSAddNormWrapper): halves in order
        s = hidden + residual
        hidden = torch.cat([rms(s[..., :D], w), rc(rms(rc(s[..., D:]), w))], -1)
        W = t["caduceus.backbone.embeddings.word_embeddings.embedding.weight"]
        return hidden[..., :D] @ W.T + hidden[..., D:].flip(-1) @ W[t["lm_head.complement_map"]].T
    hidden = rms(hidden + residual, w)
    return hidden @ t["caduceus.backbone.embeddings.word_embeddings.weight"].T


@torch.no_grad()
@pytest.mark.parametrize("rcps,fused", [(True, True), (False, True), (True, False)])
def test_official_checkpoint_loads_and_reproduces_logits(tmp_path, rcps, fused):
    tensors = official_tensors(rcps, seed=3, fused=fused)
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "config.json").write_text(json.dumps(official_config(rcps, fused), indent=2))
    model = lrgen.load_model(tmp_path)
    assert isinstance(model, Caduceus) and model.config.rcps is rcps
    x = ids(length=19, seed=5)
    expected = reference_logits(tensors, rcps, x, fused)[..., :VOCAB_SIZE]
    torch.testing.assert_close(model(x), expected, **TOL)
    keys: list[str] = []
    torch.testing.assert_close(model(x, runner=chunked_runner(4, keys)), expected, **TOL)
    if rcps:
        torch.testing.assert_close(model(reverse_complement_ids(x)), expected.flip(1)[..., COMP], **TOL)


def test_lrgen_checkpoint_is_in_official_layout(tmp_path):
    model = tiny(True)
    lrgen.models.save_model(model, tmp_path / "ck")
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "ck" / "model.safetensors"))
    assert set(stored) == set(official_tensors(True, seed=0))
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["model_type"] == "caduceus" and config["rcps"] is True
    assert config["complement_map"] == default_complement_map()


def test_conjoin_rejects_kmer_models_and_bad_output():
    from lrgen.errors import LrgenError

    with pytest.raises(LrgenError, match="conjoin needs per-nucleotide tokens"):
        conjoin(lrgen.load_model("ntv2-tiny"), ids())
    with pytest.raises(LrgenError, match="conjoin output must be 'logits' or 'hidden'"):
        conjoin(tiny(False), ids(), output="probs")


@pytest.mark.gpu
@torch.no_grad()
@pytest.mark.parametrize("preset", ["caduceus-ps-131k", "caduceus-ph-tiny"])
def test_gpu_backend_matches_reference(monkeypatch, preset):
    """The default GPU kernels against the PyTorch reference on the same GPU, official init (A = -1..-16)."""
    model = lrgen.load_model(preset, device="cuda")
    x = torch.randint(7, 11, (2, 3000), device="cuda")
    monkeypatch.setenv("LRGEN_BACKEND", "reference")
    expected = model(x)
    monkeypatch.delenv("LRGEN_BACKEND")
    got = model(x)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
