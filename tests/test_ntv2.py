"""NTv2 baseline: shapes, padding mask, rotary relative positions, refusal to stream, presets."""

from __future__ import annotations

import pytest
import torch

from lrgen.errors import LrgenError
from lrgen.models import ntv2
from lrgen.models.ntv2 import NTv2Config, NTv2Model, rotate
from lrgen.tokenizer import KmerTokenizer

TOL = 1e-5


def _tiny() -> NTv2Model:
    return NTv2Model(ntv2.PRESETS["ntv2-tiny"]).eval()


def _tokens(model: NTv2Model, *shape: int) -> torch.Tensor:
    """Random ids that are never the padding id."""
    pad = model.config.pad_token_id
    ids = torch.randint(0, model.config.vocab_size - 1, shape)
    return ids + (ids >= pad).long()


def test_output_shapes():
    model = _tiny()
    ids = _tokens(model, 2, 11)
    assert model(ids).shape == (2, 11, model.config.vocab_size)
    assert model.embed(ids).shape == (2, 11, model.hidden_size)
    assert model.hidden_size == 32
    assert model.tokenizer_kind == "kmer" and not model.streamable


def test_right_padding_does_not_change_real_tokens():
    model = _tiny()
    ids = _tokens(model, 1, 9)
    padded = torch.cat([ids, torch.full((1, 5), model.config.pad_token_id)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded)[:, :9], model(ids), atol=TOL, rtol=TOL)


def test_left_padding_does_not_change_real_tokens():
    """Left padding shifts every absolute position; with masked pads and relative (rotary) positions the real
    tokens' outputs stay the same. Fails if the mask or the rotary relativity is wrong."""
    model = _tiny()
    ids = _tokens(model, 1, 9)
    padded = torch.cat([torch.full((1, 6), model.config.pad_token_id), ids], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded)[:, 6:], model(ids), atol=TOL, rtol=TOL)


def test_padding_in_one_row_leaves_other_rows_alone():
    model = _tiny()
    ids = _tokens(model, 2, 8)
    padded = ids.clone()
    padded[1, 5:] = model.config.pad_token_id
    with torch.no_grad():
        out, ref = model(padded), model(ids)
        alone = model(ids[1:, :5])
    torch.testing.assert_close(out[0], ref[0], atol=TOL, rtol=TOL)
    torch.testing.assert_close(out[1, :5], alone[0], atol=TOL, rtol=TOL)


def test_rotary_scores_depend_on_relative_position_only():
    q, k = torch.randn(16), torch.randn(16)

    def score(p: int, s: int) -> torch.Tensor:
        positions = torch.tensor([p, s])
        rq = rotate(torch.stack([q, q]), positions, 10000.0)[0]
        rk = rotate(torch.stack([k, k]), positions, 10000.0)[1]
        return rq @ rk

    torch.testing.assert_close(score(3, 1), score(40, 38), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(score(0, 5), score(17, 22), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)  # positions do matter
    x = torch.randn(2, 4, 16)
    torch.testing.assert_close(rotate(x, torch.arange(4), 10000.0).norm(dim=-1), x.norm(dim=-1))  # a rotation


def test_model_sees_token_order():
    """Without positions a transformer is permutation-equivariant; with rotary it is not."""
    model = _tiny()
    ids = _tokens(model, 1, 10)
    perm = torch.randperm(10)
    with torch.no_grad():
        permuted_out = model(ids[:, perm])
        out_permuted = model(ids)[:, perm]
    assert not torch.allclose(permuted_out, out_permuted, atol=1e-4)


def test_non_default_runner_is_refused():
    model = _tiny()
    ids = _tokens(model, 1, 6)

    def runner(fn, x, *, reverse, key):
        raise AssertionError("ntv2 must not call a scan runner")

    with pytest.raises(LrgenError, match="ntv2 is a transformer and cannot stream"):
        model(ids, runner=runner)
    with pytest.raises(LrgenError, match="cannot stream"):
        model.embed(ids, runner=runner)


def test_gradients_reach_every_parameter():
    model = NTv2Model(ntv2.PRESETS["ntv2-tiny"])
    ids = _tokens(model, 2, 7)
    loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_presets_parameter_count_and_config():
    assert ntv2.FAMILY == "ntv2" and ntv2.MODEL_CLASS is NTv2Model and ntv2.CONFIG_CLASS is NTv2Config
    assert set(ntv2.PRESETS) == set(ntv2.PRESET_DESCRIPTIONS) == {"ntv2-50m", "ntv2-tiny"}
    config = ntv2.PRESETS["ntv2-50m"]
    assert config.vocab_size == 4107
    with torch.device("meta"):
        big = NTv2Model(config)
    assert 40e6 <= big.num_parameters() <= 60e6
    mlps = [m for m in big.modules() if isinstance(m, ntv2.SwiGLU)]
    assert len(mlps) == 12 and all(lin.bias is None for mlp in mlps for lin in (mlp.gate, mlp.up, mlp.down))
    data = config.to_dict()
    assert data["model_type"] == "ntv2" and NTv2Config.from_dict(data) == config
    with pytest.raises(LrgenError, match="unknown keys"):
        NTv2Config.from_dict({**data, "d_state": 16})


def test_cls_is_prepended_where_missing_and_its_output_dropped():
    """The published checkpoints read <cls> first; lrgen's jobs give KmerTokenizer.tokenize ids (no <cls>) and
    line outputs up with its starts, so the model adds <cls> itself and drops its output."""
    config = NTv2Config.from_dict({**ntv2.PRESETS["ntv2-tiny"].to_dict(), "lm_head": "esm", "cls_token_id": 3})
    torch.manual_seed(0)
    model = NTv2Model(config).eval()
    assert model.tokenizer == KmerTokenizer(prepend_cls=True) and isinstance(model.lm_head, ntv2.ESMLMHead)
    seq = "ACGTACGTACGTNNACGGTACCATG"
    ids, starts, _ = model.tokenizer.tokenize(seq)
    plain, with_cls = torch.from_numpy(ids)[None], model.tokenizer.encode(seq)[None]
    assert with_cls[0, 0] == 3 and torch.equal(with_cls[:, 1:], plain)
    with torch.no_grad():
        hidden = model.embed(plain)
        assert hidden.shape == (1, len(starts), model.hidden_size)  # one row per token start, as jobs expect
        torch.testing.assert_close(hidden, model.embed(with_cls)[:, 1:], atol=TOL, rtol=TOL)
        torch.testing.assert_close(model(plain), model(with_cls)[:, 1:], atol=TOL, rtol=TOL)
        padded = torch.cat([plain, torch.full((1, 3), config.pad_token_id)], dim=1)  # right padding, as jobs pad
        torch.testing.assert_close(model(padded)[:, : plain.shape[1]], model(plain), atol=TOL, rtol=TOL)


def test_presets_keep_their_head_and_tokenizer():
    model = _tiny()
    assert isinstance(model.lm_head, torch.nn.Linear) and model.config.cls_token_id is None
    assert model.tokenizer == KmerTokenizer() and model.tokenizer.encode("ACGTAC").tolist() == [728]
    with pytest.raises(LrgenError, match="lm_head 'mlp' is not 'linear' or 'esm'"):
        NTv2Config(d_model=32, n_layers=2, n_heads=4, mlp_hidden=64, lm_head="mlp")
