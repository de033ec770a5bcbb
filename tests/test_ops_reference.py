"""The PyTorch reference kernels against naive per-timestep loops (float32, tolerance 1e-5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lrgen import ops
from lrgen.ops import reference
from lrgen.ops.reference import causal_conv1d_ref, linear_scan_ref, selective_scan_ref

TOL = dict(rtol=1e-5, atol=1e-5)


def naive_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, state):
    b, d, length = u.shape
    h = torch.zeros(b, d, A.shape[1]) if state is None else state.clone()
    ys = []
    for t in range(length):
        dt = delta[:, :, t] + (0 if delta_bias is None else delta_bias)
        if delta_softplus:
            dt = torch.log1p(torch.exp(dt))
        h = torch.exp(dt[:, :, None] * A) * h + dt[:, :, None] * B[:, None, :, t] * u[:, :, t, None]
        y = (h * C[:, None, :, t]).sum(-1)
        if D is not None:
            y = y + D * u[:, :, t]
        if z is not None:
            y = y * z[:, :, t] * torch.sigmoid(z[:, :, t])
        ys.append(y)
    return torch.stack(ys, -1), h


def naive_conv(x, weight, bias, state, activation):
    b, d, length = x.shape
    w = weight.shape[1]
    past = torch.zeros(b, d, w - 1) if state is None else state
    xx = torch.cat([past, x], -1)
    y = torch.stack([(xx[:, :, t : t + w] * weight).sum(-1) for t in range(length)], -1)
    if bias is not None:
        y = y + bias[:, None]
    if activation == "silu":
        y = y * torch.sigmoid(y)
    return y, xx[:, :, -(w - 1) :] if w > 1 else xx[:, :, :0]


def naive_linear_scan(a, b, state):
    h = torch.zeros(b.shape[0], b.shape[2]) if state is None else state.clone()
    hs = []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        hs.append(h)
    return torch.stack(hs, 1), h


def scan_inputs(b=2, d=5, n=3, length=23, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return dict(
        u=r(b, d, length),
        delta=r(b, d, length) * 0.5,
        A=-torch.rand(d, n, generator=g) * 2,
        B=r(b, n, length),
        C=r(b, n, length),
        D=r(d),
        z=r(b, d, length),
        delta_bias=r(d) * 0.1,
    )


@pytest.fixture(autouse=True)
def small_block(monkeypatch):
    """Blocks of 8 so that short test sequences cross several block boundaries at odd offsets."""
    monkeypatch.setattr(reference, "BLOCK", 8)


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("options", ["full", "plain"])
def test_selective_scan_matches_naive(with_state, options):
    x = scan_inputs()
    if options == "plain":
        x.update(D=None, z=None, delta_bias=None)
        x["delta"] = x["delta"].abs()
    softplus = options == "full"
    state = torch.randn(2, 5, 3) if with_state else None
    y, h = selective_scan_ref(**x, delta_softplus=softplus, state=state)
    y0, h0 = naive_selective_scan(**x, delta_softplus=softplus, state=state)
    assert y.shape == (2, 5, 23) and h.dtype == torch.float32
    torch.testing.assert_close(y, y0, **TOL)
    torch.testing.assert_close(h, h0, **TOL)


def test_selective_scan_chunks_equal_one_call():
    x = scan_inputs(length=31)
    y_full, h_full = selective_scan_ref(**x, delta_softplus=True)
    state, parts = None, []
    for start, stop in [(0, 5), (5, 6), (6, 19), (19, 31)]:
        sl = slice(start, stop)
        part = {k: (v[..., sl] if k in ("u", "delta", "B", "C", "z") else v) for k, v in x.items()}
        y, state = selective_scan_ref(**part, delta_softplus=True, state=state)
        parts.append(y)
    torch.testing.assert_close(torch.cat(parts, -1), y_full, **TOL)
    torch.testing.assert_close(state, h_full, **TOL)


@pytest.mark.parametrize("width", [1, 2, 4])
@pytest.mark.parametrize("with_state", [False, True])
def test_causal_conv_matches_naive_and_chunks(width, with_state):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 17, generator=g)
    weight, bias = torch.randn(6, width, generator=g), torch.randn(6, generator=g)
    state = torch.randn(2, 6, width - 1, generator=g) if with_state else None
    y, s = causal_conv1d_ref(x, weight, bias, state, "silu")
    y0, s0 = naive_conv(x, weight, bias, state, "silu")
    torch.testing.assert_close(y, y0, **TOL)
    torch.testing.assert_close(s, s0, **TOL)
    parts, st = [], state
    for start, stop in [(0, 1), (1, 3), (3, 10), (10, 17)]:  # chunks shorter than the kernel too
        yy, st = causal_conv1d_ref(x[..., start:stop], weight, bias, st, None)
        parts.append(yy)
    torch.testing.assert_close(torch.cat(parts, -1), naive_conv(x, weight, bias, state, None)[0], **TOL)
    torch.testing.assert_close(st, s0, **TOL)


@pytest.mark.parametrize("with_state", [False, True])
def test_linear_scan_matches_naive_and_chunks(with_state):
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(3, 21, 4, generator=g), torch.randn(3, 21, 4, generator=g)
    state = torch.randn(3, 4, generator=g) if with_state else None
    h, last = linear_scan_ref(a, b, state)
    h0, last0 = naive_linear_scan(a, b, state)
    torch.testing.assert_close(h, h0, **TOL)
    torch.testing.assert_close(last, last0, **TOL)
    parts, st = [], state
    for start, stop in [(0, 9), (9, 10), (10, 21)]:
        hh, st = linear_scan_ref(a[:, start:stop], b[:, start:stop], st)
        parts.append(hh)
    torch.testing.assert_close(torch.cat(parts, 1), h0, **TOL)
    torch.testing.assert_close(st, last0, **TOL)


def test_dtypes_and_gradients():
    x = scan_inputs(b=1, d=3, n=2, length=10)
    x = {k: v.requires_grad_() for k, v in x.items()}
    y, h = selective_scan_ref(**{**x, "u": x["u"].to(torch.bfloat16)}, delta_softplus=True)
    assert y.dtype == torch.bfloat16 and h.dtype == torch.float32
    y, h = selective_scan_ref(**x, delta_softplus=True)  # the differentiable path
    y0, h0 = naive_selective_scan(**{k: v.detach() for k, v in x.items()}, delta_softplus=True, state=None)
    torch.testing.assert_close(y.detach(), y0, **TOL)
    torch.testing.assert_close(h.detach(), h0, **TOL)
    y.sum().backward()
    assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in x.values())


def test_dispatch_runs_the_reference_when_forced(monkeypatch):
    monkeypatch.setenv("LRGEN_BACKEND", "reference")  # the CPU default is the fast path (tests/test_ops_cpu.py)
    x = scan_inputs()
    y, _ = ops.selective_scan(**x, delta_softplus=True)
    torch.testing.assert_close(y, selective_scan_ref(**x, delta_softplus=True)[0], rtol=0, atol=0)
    a, b = torch.rand(1, 5, 2), torch.randn(1, 5, 2)
    torch.testing.assert_close(ops.linear_scan(a, b)[0], linear_scan_ref(a, b)[0], rtol=0, atol=0)
    xc, w = torch.randn(1, 2, 5), torch.randn(2, 4)
    torch.testing.assert_close(ops.causal_conv1d(xc, w)[0], F.silu(naive_conv(xc, w, None, None, None)[0]), **TOL)


def test_reverse_dispatch_is_the_scan_of_the_flipped_sequence(monkeypatch):
    monkeypatch.setenv("LRGEN_BACKEND", "reference")
    x = scan_inputs()
    flipped = {k: v.flip(-1) if k in ("u", "delta", "B", "C", "z") else v for k, v in x.items()}
    y, last = ops.selective_scan(**x, delta_softplus=True, reverse=True)
    y0, last0 = selective_scan_ref(**flipped, delta_softplus=True)
    torch.testing.assert_close(y, y0.flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(last, last0, rtol=0, atol=0)
    xc, w, s = torch.randn(1, 2, 9), torch.randn(2, 4), torch.randn(1, 2, 3)
    yc, sc = ops.causal_conv1d(xc, w, None, s, reverse=True)
    yc0, sc0 = causal_conv1d_ref(xc.flip(-1), w, None, s)
    torch.testing.assert_close(yc, yc0.flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(sc, sc0, rtol=0, atol=0)
    a, b, h0 = torch.rand(2, 7, 3), torch.randn(2, 7, 3), torch.randn(2, 3)
    h, last = ops.linear_scan(a, b, h0, reverse=True)
    h_ref, last_ref = linear_scan_ref(a.flip(1), b.flip(1), h0)
    torch.testing.assert_close(h, h_ref.flip(1), rtol=0, atol=0)
    torch.testing.assert_close(last, last_ref, rtol=0, atol=0)
