"""The CPU fast path (backend ``cpu``) against the PyTorch reference: many shapes and block sizes, states in and
out, reverse, marks, chunked calls equal one call, gradients, and the backend selection on CPU."""

from __future__ import annotations

import pytest
import torch

import lrgen
from lrgen import ops
from lrgen.ops import cpu_scan
from lrgen.ops.cpu_conv import causal_conv1d_cpu
from lrgen.ops.cpu_lru import linear_scan_cpu
from lrgen.ops.cpu_scan import selective_scan_cpu
from lrgen.ops.reference import causal_conv1d_ref, linear_scan_ref, selective_scan_ref

TOL = dict(rtol=1e-5, atol=1e-5)
SEQ = ("u", "delta", "B", "C", "z")  # the arguments with a length axis


def scan_inputs(b=2, d=5, n=3, length=23, seed=0, dt_scale=0.5, a_scale=2.0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return dict(u=r(b, d, length), delta=r(b, d, length) * dt_scale, A=-torch.rand(d, n, generator=g) * a_scale,
                B=r(b, n, length), C=r(b, n, length), D=r(d), z=r(b, d, length), delta_bias=r(d) * 0.1)


def flipped(x: dict) -> dict:
    return {k: v.flip(-1) if k in SEQ and v is not None else v for k, v in x.items()}


def sliced(x: dict, start: int, stop: int) -> dict:
    return {k: v[..., start:stop] if k in SEQ else v for k, v in x.items()}


@pytest.fixture(params=[(64, 1 << 19), (5, 1 << 19), (64, 40)], ids=["default-blocks", "blocks-of-5", "blocks-of-1"])
def blocks(request, monkeypatch):
    """Default blocks, blocks of 5 positions (odd edges), and one position per block (a tiny element budget)."""
    monkeypatch.setattr(cpu_scan, "MAX_BLOCK", request.param[0])
    monkeypatch.setattr(cpu_scan, "BLOCK_ELEMENTS", request.param[1])


def expected_scan(x, softplus, state, marks, reverse):
    out = selective_scan_ref(**(flipped(x) if reverse else x), delta_softplus=softplus, state=state, marks=marks)
    return (out[0].flip(-1) if reverse else out[0], *out[1:])


@pytest.mark.usefixtures("blocks")
@pytest.mark.parametrize("shape", [(2, 5, 3, 23), (1, 8, 16, 70), (3, 2, 1, 1), (1, 4, 2, 0)])
@pytest.mark.parametrize("options", ["full", "plain"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_selective_scan_matches_reference(shape, options, with_state, reverse):
    b, d, n, length = shape
    x = scan_inputs(b, d, n, length)
    if options == "plain":
        x.update(D=None, z=None, delta_bias=None)
        x["delta"] = x["delta"].abs()
    state = torch.randn(b, d, n) if with_state else None
    y, last = selective_scan_cpu(**x, delta_softplus=options == "full", state=state, reverse=reverse)
    y0, last0 = expected_scan(x, options == "full", state, None, reverse)
    assert y.shape == (b, d, length) and last.shape == (b, d, n) and last.dtype == torch.float32
    torch.testing.assert_close(y, y0, **TOL)
    torch.testing.assert_close(last, last0, **TOL)


@pytest.mark.usefixtures("blocks")
@pytest.mark.parametrize("marks", [(1, 1), (3, 7), (8, 8), (5, 100), (30, 4)])
@pytest.mark.parametrize("reverse", [False, True])
def test_selective_scan_marks_match_reference(marks, reverse):
    x = scan_inputs(length=29)
    state = torch.randn(2, 5, 3)
    y, last, marked = selective_scan_cpu(**x, delta_softplus=True, state=state, marks=marks, reverse=reverse)
    y0, last0, marked0 = expected_scan(x, True, state, marks, reverse)
    assert marked.shape == marked0.shape and marked.dtype == torch.float32
    torch.testing.assert_close(y, y0, **TOL)
    torch.testing.assert_close(last, last0, **TOL)
    torch.testing.assert_close(marked, marked0, **TOL)


@pytest.mark.usefixtures("blocks")
@pytest.mark.parametrize("reverse", [False, True])
def test_selective_scan_chunks_equal_one_call(reverse):
    x = scan_inputs(length=31)
    y_full, h_full = selective_scan_cpu(**x, delta_softplus=True, reverse=reverse)
    bounds = [(0, 5), (5, 6), (6, 19), (19, 31)]
    state, parts = None, {}
    for start, stop in reversed(bounds) if reverse else bounds:  # scan order
        parts[start], state = selective_scan_cpu(**sliced(x, start, stop), delta_softplus=True, state=state,
                                                 reverse=reverse)
    torch.testing.assert_close(torch.cat([parts[s] for s, _ in bounds], -1), y_full, **TOL)
    torch.testing.assert_close(state, h_full, **TOL)


def test_selective_scan_long_decays_and_low_precision():
    """Large Δ and strongly negative A (decays that underflow to zero and subnormals), bf16 activations."""
    x = scan_inputs(b=1, d=6, n=16, length=50, dt_scale=4.0, a_scale=60.0)
    y, last = selective_scan_cpu(**x, delta_softplus=True)
    y0, last0 = selective_scan_ref(**x, delta_softplus=True)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, y0, **TOL)
    torch.testing.assert_close(last, last0, **TOL)
    low = {k: v.to(torch.bfloat16) if k in ("u", "z") else v for k, v in x.items()}
    y, _ = selective_scan_cpu(**low, delta_softplus=True)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, selective_scan_ref(**low, delta_softplus=True)[0], rtol=1e-2, atol=1e-2)


def test_selective_scan_reads_strided_inputs():
    """Channels-contiguous views, as the model hands them over (the transposes of linear-layer outputs)."""
    x = scan_inputs(b=2, d=7, n=4, length=19)
    views = {k: v.transpose(1, 2).contiguous().transpose(1, 2) if k in SEQ else v for k, v in x.items()}
    y, last = selective_scan_cpu(**views, delta_softplus=True, reverse=True)
    y0, last0 = expected_scan(x, True, None, None, True)
    torch.testing.assert_close(y, y0, **TOL)
    torch.testing.assert_close(last, last0, **TOL)


@pytest.mark.parametrize("width", [1, 2, 4])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_causal_conv_matches_reference_and_chunks(width, with_state, reverse, activation):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 17, generator=g)
    weight, bias = torch.randn(6, width, generator=g), torch.randn(6, generator=g)
    state = torch.randn(2, 6, width - 1, generator=g) if with_state else None
    y, s = causal_conv1d_cpu(x, weight, bias, state, activation, reverse=reverse)
    y0, s0 = causal_conv1d_ref(x.flip(-1) if reverse else x, weight, bias, state, activation)
    torch.testing.assert_close(y, y0.flip(-1) if reverse else y0, **TOL)
    torch.testing.assert_close(s, s0, **TOL)
    bounds = [(0, 1), (1, 3), (3, 10), (10, 17)]  # chunks shorter than the kernel too
    parts, st = {}, state
    for start, stop in reversed(bounds) if reverse else bounds:
        parts[start], st = causal_conv1d_cpu(x[..., start:stop], weight, bias, st, activation, reverse=reverse)
    torch.testing.assert_close(torch.cat([parts[s] for s, _ in bounds], -1), y, **TOL)
    torch.testing.assert_close(st, s0, **TOL)


def test_causal_conv_gradients_match_reference():
    g = torch.Generator().manual_seed(2)
    args = [torch.randn(2, 6, 11, generator=g), torch.randn(6, 4, generator=g), torch.randn(6, generator=g),
            torch.randn(2, 6, 3, generator=g)]
    for reverse in (False, True):
        leaves = [t.clone().requires_grad_() for t in args]
        y, s = causal_conv1d_cpu(*leaves, "silu", reverse=reverse)
        grads = torch.autograd.grad((y * y).sum() + s.sum(), leaves)
        leaves0 = [t.clone().requires_grad_() for t in args]
        x0 = leaves0[0].flip(-1) if reverse else leaves0[0]
        y0, s0 = causal_conv1d_ref(x0, *leaves0[1:], "silu")
        grads0 = torch.autograd.grad((y0 * y0).sum() + s0.sum(), leaves0)
        for got, want in zip(grads, grads0):
            torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("length", [0, 1, 2, 7, 21, 100])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_scan_matches_reference_and_chunks(length, with_state, reverse):
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(3, length, 4, generator=g), torch.randn(3, length, 4, generator=g)
    state = torch.randn(3, 4, generator=g) if with_state else None
    h, last = linear_scan_cpu(a, b, state, reverse=reverse)
    h0, last0 = linear_scan_ref(a.flip(1), b.flip(1), state) if reverse else linear_scan_ref(a, b, state)
    torch.testing.assert_close(h, h0.flip(1) if reverse else h0, **TOL)
    torch.testing.assert_close(last, last0, **TOL)
    bounds = [(0, length // 3), (length // 3, length)]  # the first may be empty
    parts, st = [None, None], state
    for i in (1, 0) if reverse else (0, 1):
        start, stop = bounds[i]
        parts[i], st = linear_scan_cpu(a[:, start:stop], b[:, start:stop], st, reverse=reverse)
    torch.testing.assert_close(torch.cat(parts, 1), h, **TOL)
    torch.testing.assert_close(st, last, **TOL)


@pytest.mark.parametrize("length", [1, 5, 33])
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_scan_gradients_match_reference(length, reverse):
    g = torch.Generator().manual_seed(4)
    args = [torch.rand(2, length, 3, generator=g), torch.randn(2, length, 3, generator=g),
            torch.randn(2, 3, generator=g)]
    weights = torch.randn(2, length, 3, generator=g), torch.randn(2, 3, generator=g)
    leaves = [t.clone().requires_grad_() for t in args]
    h, last = linear_scan_cpu(*leaves, reverse=reverse)
    grads = torch.autograd.grad((h * weights[0]).sum() + (last * weights[1]).sum(), leaves)
    leaves0 = [t.clone().requires_grad_() for t in args]
    a0, b0 = (leaves0[0].flip(1), leaves0[1].flip(1)) if reverse else leaves0[:2]
    h0, last0 = linear_scan_ref(a0, b0, leaves0[2])
    h0 = h0.flip(1) if reverse else h0
    grads0 = torch.autograd.grad((h0 * weights[0]).sum() + (last0 * weights[1]).sum(), leaves0)
    for got, want in zip(grads, grads0):
        torch.testing.assert_close(got, want, **TOL)
    h, _ = linear_scan_cpu(args[0].requires_grad_(), args[1].to(torch.bfloat16))  # only the last state unused
    h.float().sum().backward()
    assert h.dtype == torch.bfloat16 and torch.isfinite(args[0].grad).all()


def test_cpu_is_the_default_on_cpu_and_reference_can_be_forced(monkeypatch):
    x = scan_inputs()
    monkeypatch.delenv("LRGEN_BACKEND", raising=False)
    assert ops.select_backend("cpu", ("reference", "cpu")) == "cpu"
    assert ops.select_backend("cpu", ("reference", "triton")) == "reference"  # kernels without a CPU fast path
    torch.testing.assert_close(ops.selective_scan(**x, delta_softplus=True)[0],
                               selective_scan_cpu(**x, delta_softplus=True)[0], rtol=0, atol=0)
    a, b = torch.rand(1, 5, 2), torch.randn(1, 5, 2)
    torch.testing.assert_close(ops.linear_scan(a, b)[0], linear_scan_cpu(a, b)[0], rtol=0, atol=0)
    monkeypatch.setenv("LRGEN_BACKEND", "triton")  # a GPU backend leaves CPU tensors to the CPU default
    assert ops.select_backend("cpu", ("reference", "cpu", "triton")) == "cpu"
    monkeypatch.setenv("LRGEN_BACKEND", "reference")
    assert ops.select_backend("cpu", ("reference", "cpu")) == "reference"
    torch.testing.assert_close(ops.selective_scan(**x, delta_softplus=True)[0],
                               selective_scan_ref(**x, delta_softplus=True)[0], rtol=0, atol=0)


def test_selective_scan_needing_gradients_runs_the_reference(monkeypatch):
    monkeypatch.delenv("LRGEN_BACKEND", raising=False)
    x = {k: v.requires_grad_() for k, v in scan_inputs(length=9).items()}
    y, _ = ops.selective_scan(**x, delta_softplus=True, reverse=True)
    y.sum().backward()
    y0, _ = selective_scan_ref(**flipped({k: v.detach() for k, v in x.items()}), delta_softplus=True)
    torch.testing.assert_close(y.detach(), y0.flip(-1), rtol=0, atol=0)
    assert all(v.grad is not None for v in x.values())


@torch.no_grad()
def test_bundled_model_streamed_with_cpu_backend_matches_reference(monkeypatch):
    """The bundled Caduceus-PS model over 700 positions in chunks of 256: fast path against the reference."""
    from lrgen.engine import stream

    model = lrgen.load_model("caduceus-ps-demo").eval()
    ids = torch.randint(7, 11, (1, 700), generator=torch.Generator().manual_seed(5))
    monkeypatch.setenv("LRGEN_BACKEND", "reference")
    expected = stream(model, ids, chunk_size=256)
    monkeypatch.setenv("LRGEN_BACKEND", "cpu")
    got = stream(model, ids, chunk_size=256)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_environment_names_the_cpu_backend(monkeypatch):
    from lrgen.runtime.environment import describe_environment

    monkeypatch.delenv("LRGEN_BACKEND", raising=False)
    env = describe_environment()
    assert env["backends"]["cpu"] == "available" and "CPU tensors: cpu" in env["active_backend"]
    monkeypatch.setenv("LRGEN_BACKEND", "reference")
    assert "CPU tensors: reference" in describe_environment()["active_backend"]
