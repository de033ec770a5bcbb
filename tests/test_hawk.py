"""Hawk: the RG-LRU recurrence against a naive per-timestep loop, chunked streaming, bidirectionality, presets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lrgen.errors import LrgenError
from lrgen.models import hawk
from lrgen.models.hawk import HawkConfig, HawkModel
from lrgen.models.scan import run_whole

from helpers import randomise_biases

TOL = 1e-5


def _tiny() -> HawkModel:
    return HawkModel(hawk.PRESETS["hawk-tiny"]).eval()


def _naive_direction(rglru, x: torch.Tensor, conv_state: torch.Tensor, h: torch.Tensor):
    """Griffin's RG-LRU written out per timestep: conv tap by tap, dense block-diagonal gates, sqrt(1 - a²)."""
    weight, bias = rglru.conv_weight.double(), rglru.conv_bias.double()
    width = weight.shape[1]
    w_a = torch.block_diag(*rglru.gate_a.weight.double())
    w_x = torch.block_diag(*rglru.gate_x.weight.double())
    b_a, b_x = rglru.gate_a.bias.double().flatten(), rglru.gate_x.bias.double().flatten()
    softplus_lambda = F.softplus(rglru.a_param.double())
    history = torch.cat([conv_state.double().transpose(1, 2), x.double()], dim=1)  # (B, w-1+T, D)
    h = h.double()
    outputs = []
    for t in range(x.shape[1]):
        window = history[:, t : t + width]  # the w inputs ending at position t
        xt = (window * weight.T).sum(1) + bias
        r = torch.sigmoid(xt @ w_a + b_a)
        i = torch.sigmoid(xt @ w_x + b_x)
        a = torch.exp(-8.0 * r * softplus_lambda)
        h = a * h + torch.sqrt(1 - a**2) * (i * xt)
        outputs.append(h)
    return torch.stack(outputs, 1), history[:, -(width - 1) :].transpose(1, 2), h


def test_rglru_scan_matches_naive_loop_from_zero_and_from_a_state():
    model = _tiny()
    randomise_biases(model, 0.3)  # non-zero conv and gate biases
    rglru = model.layers[0].mixer.fwd
    d = model.config.d_model
    x = torch.randn(2, 13, d)
    conv0, h0 = torch.zeros(2, d, 3), torch.zeros(2, d)
    y, (conv_state, h) = rglru.scan(x, None)
    y_ref, conv_ref, h_ref = _naive_direction(rglru, x, conv0, h0)
    torch.testing.assert_close(y.double(), y_ref, atol=TOL, rtol=TOL)
    torch.testing.assert_close(h.double(), h_ref, atol=TOL, rtol=TOL)
    torch.testing.assert_close(conv_state.double(), conv_ref, atol=TOL, rtol=TOL)
    assert h.dtype == torch.float32

    conv1, h1 = torch.randn(2, d, 3), torch.randn(2, d)
    y, (conv_state, h) = rglru.scan(x, (conv1, h1))
    y_ref, conv_ref, h_ref = _naive_direction(rglru, x, conv1, h1)
    torch.testing.assert_close(y.double(), y_ref, atol=TOL, rtol=TOL)
    torch.testing.assert_close(h.double(), h_ref, atol=TOL, rtol=TOL)


def test_state_stays_float32_in_bfloat16():
    model = _tiny()
    ids = torch.randint(0, 12, (2, 12))
    with torch.no_grad():
        ref = model(ids)
        model.to(torch.bfloat16)
        _, (_, h) = model.layers[0].mixer.fwd.scan(torch.randn(2, 5, 32, dtype=torch.bfloat16), None)
        low = model(ids)
    assert h.dtype == torch.float32 and low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, atol=0.05, rtol=0.05)


def test_recurrence_weights_start_in_griffin_ring():
    rglru = _tiny().layers[0].mixer.fwd
    a = torch.exp(-F.softplus(rglru.a_param))
    assert bool(((a > 0.9 - 1e-6) & (a < 0.999 + 1e-6)).all())


def _chunked_runner(chunk: int, seen: list[str]):
    """Streams each direction in chunks of ``chunk`` carrying state; reverse walks right to left, chunks flipped."""

    def runner(fn, x, *, reverse, key):
        seen.append(key)
        length = x.shape[1]
        starts = list(range(0, length, chunk))
        out = [None] * len(starts)
        state = None
        order = reversed(range(len(starts))) if reverse else range(len(starts))
        for n in order:
            piece = x[:, starts[n] : starts[n] + chunk]
            if reverse:
                y, state = fn(piece.flip(1), state)
                out[n] = y.flip(1)
            else:
                out[n], state = fn(piece, state)
        return torch.cat(out, dim=1)

    return runner


@pytest.mark.parametrize("chunk", [7, 2])  # 2 is shorter than the conv tail of 3
def test_chunked_runner_gives_the_whole_sequence_logits(chunk: int):
    model = _tiny()
    randomise_biases(model, 0.3)  # non-zero conv and gate biases
    ids = torch.randint(0, model.config.vocab_size, (2, 30))
    seen: list[str] = []
    with torch.no_grad():
        whole = model(ids)
        chunked = model(ids, runner=_chunked_runner(chunk, seen))
        emb = model.embed(ids, runner=_chunked_runner(chunk, []))
    assert whole.shape == (2, 30, model.config.vocab_size)
    torch.testing.assert_close(chunked, whole, atol=TOL, rtol=TOL)
    torch.testing.assert_close(emb, model.embed(ids), atol=TOL, rtol=TOL)
    assert seen == ["layers.0.fwd", "layers.0.rev", "layers.1.fwd", "layers.1.rev"]


def test_model_is_bidirectional():
    model = _tiny()
    ids = torch.randint(7, 11, (1, 21))
    changed = ids.clone()
    changed[0, 10] = 7 if ids[0, 10] != 7 else 8
    with torch.no_grad():
        diff = (model(ids) - model(changed)).abs().amax(-1)[0]
    assert bool((diff[:10] > 1e-7).all()) and bool((diff[11:] > 1e-7).all())


def test_gradients_reach_every_parameter():
    model = HawkModel(hawk.PRESETS["hawk-tiny"])
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    loss = F.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_presets_and_interface():
    assert hawk.FAMILY == "hawk" and hawk.MODEL_CLASS is HawkModel and hawk.CONFIG_CLASS is HawkConfig
    assert set(hawk.PRESETS) == set(hawk.PRESET_DESCRIPTIONS) == {"hawk-50m", "hawk-tiny"}
    with torch.device("meta"):
        big = HawkModel(hawk.PRESETS["hawk-50m"])
    assert 40e6 <= big.num_parameters() <= 60e6
    model = _tiny()
    assert model.streamable and model.tokenizer_kind == "char" and model.hidden_size == 32
    ids = torch.randint(0, 12, (3, 9))
    assert model.embed(ids, run_whole).shape == (3, 9, 32)
    logits = model(ids)
    assert logits.shape == (3, 9, 12)
    torch.testing.assert_close(logits, model.embed(ids) @ model.embedding.weight.T)  # tied LM head


def test_config_round_trip_and_errors():
    config = hawk.PRESETS["hawk-tiny"]
    data = config.to_dict()
    assert data["model_type"] == "hawk"
    assert HawkConfig.from_dict(data) == config
    with pytest.raises(LrgenError, match="unknown keys"):
        HawkConfig.from_dict({**data, "d_state": 16})
    with pytest.raises(LrgenError, match="model_type"):
        HawkConfig.from_dict({**data, "model_type": "ntv2"})
    with pytest.raises(LrgenError, match="not divisible"):
        HawkConfig(d_model=30, n_heads=4)
