"""Fast kernels against the PyTorch reference: forward, gradients, initial state, odd lengths, chunked == whole, reverse.

GPU tests run the compiled Triton kernels (relative error ≤ 1e-3 in float32, ≤ 1e-2 in bfloat16). When triton is
importable but no GPU is present, the same kernels run under the Triton interpreter (``TRITON_INTERPRET=1``) on
tiny inputs. The mamba-ssm initial-state correction is checked on CPU with the reference as the zero-state kernel.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from lrgen.ops.mamba_backend import selective_scan_with_state
from lrgen.ops.reference import causal_conv1d_ref, linear_scan_ref, selective_scan_ref

from helpers import loss_and_grads, max_rel, zero_state_kernel

HAS_TRITON = importlib.util.find_spec("triton") is not None
KERNEL_MODULES = ("lrgen.ops.triton_scan", "lrgen.ops.triton_lru", "lrgen.ops.triton_conv", "lrgen.ops.triton_norm")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    assert torch.isfinite(a).all()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def compare(fast, ref, inputs, tol):
    """Outputs and gradients (random cotangents) of ``fast`` and ``ref`` on the same leaf inputs agree within tol."""
    xs_f = [None if x is None else x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    xs_r = [None if x is None else x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    out_f, out_r = fast(*xs_f), ref(*xs_r)
    for o_f, o_r in zip(out_f, out_r):
        assert o_f.dtype == o_r.dtype and o_f.shape == o_r.shape
        assert rel(o_f, o_r) <= tol, ("output", rel(o_f, o_r))
    cots = [torch.randn_like(o.float()) for o in out_r]
    leaves_f = [x for x in xs_f if x is not None and x.requires_grad]
    leaves_r = [x for x in xs_r if x is not None and x.requires_grad]
    loss_f = sum((o.float() * c).sum() for o, c in zip(out_f, cots))
    loss_r = sum((o.float() * c).sum() for o, c in zip(out_r, cots))
    for i, (g_f, g_r) in enumerate(zip(torch.autograd.grad(loss_f, leaves_f), torch.autograd.grad(loss_r, leaves_r))):
        assert rel(g_f, g_r) <= tol, ("gradient of input", i, rel(g_f, g_r))


def flipped(fn, time_args):
    """The reference run on inputs flipped along length (positions ``time_args`` index into args), y flipped back."""

    def run(*args):
        args = [a.flip(-1) if i in time_args and a is not None else a for i, a in enumerate(args)]
        y, state = fn(*args)
        return y.flip(-1), state

    return run


def ssm_inputs(b, d, n, length, dtype, device, layout="channels_first"):
    def seq(*shape):  # (b, c, l) with the requested memory layout
        x = torch.randn(*shape, device=device)
        return x if layout == "channels_first" else x.transpose(1, 2).contiguous().transpose(1, 2)

    u, z = seq(b, d, length).to(dtype), seq(b, d, length).to(dtype)
    delta = (0.5 * seq(b, d, length) - 1.0).to(dtype)
    A = -torch.exp(torch.randn(d, n, device=device) * 0.5)
    B, C = seq(b, n, length).to(dtype), seq(b, n, length).to(dtype)
    D, bias = torch.randn(d, device=device), 0.5 * torch.randn(d, device=device)
    state = torch.randn(b, d, n, device=device)
    return [u, delta, A, B, C, D, z, bias, state]


def ssm_call(impl, **kw):
    return lambda u, delta, A, B, C, D, z, bias, state: impl(u, delta, A, B, C, D, z, bias, True, state, **kw)


def check_selective_scan(impl, b, d, n, length, dtype, device, tol, layout="channels_first"):
    inputs = ssm_inputs(b, d, n, length, dtype, device, layout)
    compare(ssm_call(impl), ssm_call(selective_scan_ref), inputs, tol)
    compare(ssm_call(impl, reverse=True), flipped(ssm_call(selective_scan_ref), {0, 1, 3, 4, 6}), inputs, tol)
    # without z, D, bias, softplus and state (Δ made positive directly)
    plain = [inputs[0], (0.3 * inputs[1].float().abs()).to(dtype), inputs[2], inputs[3], inputs[4]]
    compare(lambda *a: impl(*a), lambda *a: selective_scan_ref(*a), plain, tol)


def check_scan_chunked(impl, b, d, n, length, split, device):
    u, delta, A, B, C, D, z, bias, state = ssm_inputs(b, d, n, length, torch.float32, device)
    y, last = impl(u, delta, A, B, C, D, z, bias, True, state)
    parts = (slice(0, split), slice(split, length))
    y1, s1 = impl(*(t[..., parts[0]] for t in (u, delta)), A, B[..., parts[0]], C[..., parts[0]], D, z[..., parts[0]],
                  bias, True, state)
    y2, s2 = impl(*(t[..., parts[1]] for t in (u, delta)), A, B[..., parts[1]], C[..., parts[1]], D, z[..., parts[1]],
                  bias, True, s1)
    assert rel(torch.cat([y1, y2], -1), y) <= 1e-5 and rel(s2, last) <= 1e-5


def check_scan_marks(impl, b, d, n, length, marks, device):
    """The states returned at ``marks=(first, every)`` equal the final states of the reference run on each prefix
    (in scan order: forward, and reverse as the reference on flipped inputs); y and the last state are unchanged."""
    u, delta, A, B, C, D, z, bias, state = ssm_inputs(b, d, n, length, torch.float32, device)
    first, every = marks
    counts = list(range(first, length + 1, every))
    for reverse in (False, True):
        seq = [t.flip(-1) if reverse else t for t in (u, delta, B, C, z)]
        y, last, marked = impl(u, delta, A, B, C, D, z, bias, True, state, marks, reverse=reverse)
        y0, last0 = impl(u, delta, A, B, C, D, z, bias, True, state, reverse=reverse)
        assert rel(y, y0) == 0 and rel(last, last0) == 0 and marked.shape == (b, len(counts), d, n)
        for k, p in enumerate(counts):
            ref = selective_scan_ref(*(t[..., :p] for t in seq[:2]), A, seq[2][..., :p], seq[3][..., :p], D,
                                     seq[4][..., :p], bias, True, state)[1]
            assert rel(marked[:, k], ref) <= 1e-4, (reverse, p, rel(marked[:, k], ref))


def check_rms_norm(impl, b, length, c, dtype, device, tol):
    """The fused norm of a strided half of a wider tensor against the PyTorch composite, in ``dtype``."""
    from lrgen.models.layers import rms_norm

    wide = torch.randn(b, length, 2 * c, device=device)
    weight = torch.randn(c, device=device)
    for x in (wide[..., c:], wide[..., :c].to(dtype)):
        with torch.no_grad():
            ref = (lambda xf: xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5) * weight)(x.float())
            got = impl(x, weight, 1e-5, dtype)
        assert got.dtype == dtype and got.shape == x.shape and rel(got, ref.to(dtype)) <= tol
        # the layers' rms_norm: on a GPU this fused kernel (bit for bit), on the CPU the PyTorch composite
        assert torch.equal(rms_norm(x, weight, 1e-5, dtype), got if device == "cuda" else ref.to(dtype))
        out = torch.full((b, length, 2 * c), 7.0, device=device, dtype=dtype)  # into the second half of a wider one
        with torch.no_grad():
            assert impl(x, weight, 1e-5, dtype, out[..., c:]).data_ptr() == out[..., c:].data_ptr()
        assert torch.equal(out[..., c:], got) and bool((out[..., :c] == 7.0).all())


def check_linear_scan(impl, b, length, d, dtype, device, tol):
    a = torch.rand(b, length, d, device=device).to(dtype)
    x = torch.randn(b, length, d, device=device).to(dtype)
    state = torch.randn(b, d, device=device)
    compare(impl, linear_scan_ref, [a, x, state], tol)
    compare(lambda a, x, s: impl(a, x, s, reverse=True),
            lambda a, x, s: (lambda h, last: (h.flip(1), last))(*linear_scan_ref(a.flip(1), x.flip(1), s)),
            [a, x, state], tol)
    compare(lambda a, x: impl(a, x), lambda a, x: linear_scan_ref(a, x), [a, x], tol)
    h, last = impl(a, x, state)
    h1, s1 = impl(a[:, :5], x[:, :5], state)
    h2, s2 = impl(a[:, 5:], x[:, 5:], s1)
    assert rel(torch.cat([h1, h2], 1), h) <= tol and rel(s2, last) <= 1e-5


def check_conv(impl, b, d, length, width, dtype, device, tol, layout="channels_first"):
    x = torch.randn(b, d, length, device=device).to(dtype)
    if layout == "length_major":
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    w, bias = torch.randn(d, width, device=device), torch.randn(d, device=device)
    state = torch.randn(b, d, width - 1, device=device)
    compare(impl, causal_conv1d_ref, [x, w, bias, state], tol)
    compare(lambda x, w, bias, s: impl(x, w, bias, s, reverse=True), flipped(causal_conv1d_ref, {0}),
            [x, w, bias, state], tol)
    compare(lambda x, w: impl(x, w, None, None, None), lambda x, w: causal_conv1d_ref(x, w, None, None, None),
            [x, w], tol)
    y, last = impl(x, w, bias, state)
    y1, s1 = impl(x[..., :1], w, bias, state)  # shorter than the state
    y2, s2 = impl(x[..., 1:], w, bias, s1)
    assert rel(torch.cat([y1, y2], -1), y) <= tol and rel(s2, last) <= 1e-6


def check_conv_silu_backward(impl, b, d, length, width, dtype, device, tol):
    """``impl(x, w, bias, du, dx, accumulate, reverse)`` (the fused conv + SiLU backward) against autograd through
    the reference, forward and reverse, dx written and added, with and without bias, length-major x."""
    for reverse, accumulate, with_bias in itertools.product((False, True), repeat=3):
        x = torch.randn(b, length, d, device=device).to(dtype).transpose(1, 2)
        w = 0.5 * torch.randn(d, width, device=device)
        bias = 0.3 * torch.randn(d, device=device) if with_bias else None
        du = torch.randn(b, d, length, device=device).to(dtype)
        before = torch.randn(b, length, d, device=device).to(dtype)
        dx = before.clone().transpose(1, 2)
        dw, dbias = impl(x, w, bias, du, dx, accumulate, reverse)
        leaves = [t.detach().float().requires_grad_() for t in (x, w) + ((bias,) if with_bias else ())]
        xs = leaves[0].flip(-1) if reverse else leaves[0]
        y, _ = causal_conv1d_ref(xs, leaves[1], leaves[2] if with_bias else None, None, "silu")
        grads = torch.autograd.grad(y.flip(-1) if reverse else y, leaves, du.float())
        want = grads[0] + (before.transpose(1, 2).float() if accumulate else 0)
        case = dict(reverse=reverse, accumulate=accumulate, bias=with_bias)
        assert rel(dx, want) <= tol and rel(dw, grads[1]) <= tol, case
        assert (dbias is None) == (not with_bias) and (dbias is None or rel(dbias, grads[2]) <= tol), case


# --- compiled kernels on a GPU ---------------------------------------------------------------------------------

TOL = {torch.float32: 1e-3, torch.bfloat16: 1e-2}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 24, 16, 1000), (1, 8, 4, 7), (1, 64, 16, 20001)])
def test_selective_scan_gpu(dtype, shape):
    from lrgen.ops.triton_scan import selective_scan_triton

    check_selective_scan(selective_scan_triton, *shape, dtype, "cuda", TOL[dtype])


@pytest.mark.gpu
def test_selective_scan_gpu_length_major_and_chunked():
    from lrgen.ops.triton_scan import selective_scan_triton

    check_selective_scan(selective_scan_triton, 2, 48, 16, 3001, torch.bfloat16, "cuda", 1e-2, layout="length_major")
    check_scan_chunked(selective_scan_triton, 2, 40, 16, 5001, 1777, "cuda")
    check_scan_marks(selective_scan_triton, 1, 40, 16, 20001, (777, 2048), "cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_gpu(dtype):
    from lrgen.ops.triton_norm import rms_norm_triton

    check_rms_norm(rms_norm_triton, 2, 3001, 256, dtype, "cuda", TOL[dtype])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 1001, 96), (1, 20003, 40)])
def test_linear_scan_gpu(dtype, shape):
    from lrgen.ops.triton_lru import linear_scan_triton

    check_linear_scan(linear_scan_triton, *shape, dtype, "cuda", TOL[dtype])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_causal_conv1d_gpu(dtype):
    from lrgen.ops.triton_conv import causal_conv1d_triton

    check_conv(causal_conv1d_triton, 2, 72, 1001, 4, dtype, "cuda", TOL[dtype])
    check_conv(causal_conv1d_triton, 2, 72, 1001, 4, dtype, "cuda", TOL[dtype], "length_major")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_conv_silu_backward_gpu(dtype):
    from lrgen.ops.triton_conv import conv_silu_backward_triton

    check_conv_silu_backward(conv_silu_backward_triton, 2, 200, 3001, 4, dtype, "cuda", TOL[dtype])


@pytest.mark.gpu
def test_dispatch_uses_triton_on_gpu(monkeypatch):
    from lrgen.ops import selective_scan

    monkeypatch.setenv("LRGEN_BACKEND", "triton")
    u, delta, A, B, C, D, z, bias, state = ssm_inputs(1, 8, 4, 33, torch.float32, "cuda")
    y, last = selective_scan(u, delta, A, B, C, D, z, bias, True, state)
    y_ref, last_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, True, state)
    assert rel(y, y_ref) <= 1e-3 and rel(last, last_ref) <= 1e-3


# --- the same kernels under the Triton interpreter on CPU ------------------------------------------------------


@pytest.fixture(scope="module")
def interpreted():
    """The three kernel modules under TRITON_INTERPRET=1, small tiles so tiny inputs span many tiles.

    The interpreter must be on before triton first loads, so these tests run in a fresh process started by
    :func:`test_kernels_under_the_interpreter`; in any other process they skip.
    """
    if not HAS_TRITON:
        pytest.skip("triton is not installed")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the compiled kernels are tested instead")
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("runs in its own process (test_kernels_under_the_interpreter)")
    scan, lru, conv, norm = [importlib.import_module(name) for name in KERNEL_MODULES]
    scan.BLOCK_D = {**scan.BLOCK_D, "backward": 4}
    scan.CHECKPOINT_EVERY = 4
    scan.PASS_SEGMENTS, scan.PASS_ELEMENTS = 4, 64
    lru.BD, lru.T = 16, 8
    conv.BLOCK = {"length_major": (8, 8), "channels_first": (4, 16), "backward": (8, 8)}
    norm.ROWS = 4
    return scan, lru, conv, norm


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("+")[0].split(".")[:2])


def test_kernels_under_the_interpreter():
    """The ``*_interpreted`` tests below, in a fresh process with TRITON_INTERPRET=1."""
    if not HAS_TRITON or torch.cuda.is_available():
        pytest.skip("needs triton and no GPU")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("already inside the interpreter process")
    if version_tuple(importlib.metadata.version("triton")) < (3, 7) and version_tuple(np.__version__) >= (2, 4):
        pytest.skip("the interpreter of triton < 3.7 fails under numpy >= 2.4 (triton-lang/triton#9171): "
                    "pip install 'triton>=3.7'")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "_interpreted"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "6 passed" in proc.stdout, proc.stdout[-2000:]


def test_selective_scan_interpreted(interpreted):
    scan = interpreted[0]
    check_selective_scan(scan.selective_scan_triton, 2, 3, 5, 37, torch.float32, "cpu", 1e-4)
    check_selective_scan(scan.selective_scan_triton, 1, 8, 4, 45, torch.float32, "cpu", 1e-4)  # unmasked steps
    programs, scan.PROGRAMS_PER_SM = scan.PROGRAMS_PER_SM, {"forward": 2, "backward": 2}  # segments of many positions
    try:
        check_selective_scan(scan.selective_scan_triton, 2, 8, 4, 45, torch.float32, "cpu", 1e-4)
    finally:
        scan.PROGRAMS_PER_SM = programs
    check_scan_chunked(scan.selective_scan_triton, 1, 3, 4, 29, 11, "cpu")
    check_scan_marks(scan.selective_scan_triton, 1, 3, 4, 29, (3, 7), "cpu")
    check_scan_marks(scan.selective_scan_triton, 1, 3, 4, 9, (10, 4), "cpu")
    check_scan_marks(scan.selective_scan_triton, 1, 8, 4, 29, (3, 7), "cpu")
    inputs = ssm_inputs(1, 6, 4, 21, torch.float32, "cpu", layout="length_major")
    compare(ssm_call(scan.selective_scan_triton), ssm_call(selective_scan_ref), inputs, 1e-4)


def test_fused_bimamba_interpreted(interpreted, monkeypatch):
    """The fused BiMamba function on its GPU route — Triton scan forward and backward, Triton conv, the fused conv +
    SiLU backward kernel (and the general conv backward for a conv wider than that kernel takes) — against the
    unfused path on the PyTorch reference: logits and every gradient."""
    import lrgen.ops
    import lrgen.ops.bimamba
    from lrgen.models.registry import build_model, preset_config

    scan, _, conv, _ = interpreted
    # whole-channel tiles and few segments: the interpreter runs each program in Python
    monkeypatch.setattr(scan, "BLOCK_D", {"length_major": 64, "channels_first": 64, "backward": 64})
    monkeypatch.setattr(scan, "PROGRAMS_PER_SM", {"forward": 1, "backward": 1})
    monkeypatch.setattr(conv, "BLOCK", {"length_major": (32, 64), "channels_first": (64, 32), "backward": (32, 32)})
    def on_triton(device, implemented=("triton",)):
        return "triton" if "triton" in implemented else "reference"

    for width in (4, 5):  # 5: wider than the fused conv + SiLU backward takes
        tiny = preset_config("caduceus-ps-tiny")
        model = build_model(dataclasses.replace(tiny, n_layer=1, ssm_cfg={**tiny.ssm_cfg, "d_conv": width}), seed=1)
        ids = model.tokenizer.encode("ACGTTGCAAGGCTTANGATTC")[None].repeat(2, 1)
        ref_logits, ref_grads = loss_and_grads(model, ids, fused=False)
        with monkeypatch.context() as patch:
            patch.setattr(lrgen.ops, "select_backend", on_triton)
            patch.setattr(lrgen.ops.bimamba, "select_backend", on_triton)
            logits, grads = loss_and_grads(model, ids, fused=True)
        assert max_rel(logits, ref_logits) <= 1e-4 and grads.keys() == ref_grads.keys()
        worst = max((max_rel(grads[n], ref_grads[n]), n) for n in ref_grads)
        assert worst[0] <= 1e-4, (width, worst)


def test_linear_scan_interpreted(interpreted):
    check_linear_scan(interpreted[1].linear_scan_triton, 2, 27, 20, torch.float32, "cpu", 1e-5)


def test_rms_norm_interpreted(interpreted):
    check_rms_norm(interpreted[3].rms_norm_triton, 2, 9, 12, torch.float32, "cpu", 1e-5)


def test_causal_conv1d_interpreted(interpreted):
    check_conv(interpreted[2].causal_conv1d_triton, 2, 10, 23, 4, torch.float32, "cpu", 1e-5)
    check_conv(interpreted[2].causal_conv1d_triton, 1, 10, 23, 4, torch.float32, "cpu", 1e-5, "length_major")


def test_conv_silu_backward_interpreted(interpreted, monkeypatch):
    conv = interpreted[2]
    # several channel blocks (a partial last one), programs of several tiles (a partial last one)
    monkeypatch.setattr(conv, "BLOCK", {**conv.BLOCK, "backward": (4, 8)})
    monkeypatch.setattr(conv, "TILES_PER_PROGRAM", 2)
    for width in (3, 4):
        check_conv_silu_backward(conv.conv_silu_backward_triton, 2, 6, 19, width, torch.float32, "cpu", 1e-5)
    check_conv_silu_backward(conv.conv_silu_backward_triton, 1, 6, 2, 4, torch.float32, "cpu", 1e-5)  # L < w


# --- the layers' rms_norm on CPU tensors: no kernel, the PyTorch composite ------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_on_cpu_is_the_composite(dtype):
    from lrgen.models.layers import rms_norm

    check_rms_norm(rms_norm, 2, 9, 12, dtype, "cpu", 0.0)


# --- mamba-ssm's initial-state correction, with the reference as the zero-state kernel -------------------------


@pytest.mark.parametrize("with_z", [True, False])
def test_mamba_state_correction(with_z, monkeypatch):
    import lrgen.ops.mamba_backend as mb

    monkeypatch.setattr(mb, "CORRECTION_ELEMENTS", 64)  # several blocks along length
    inputs = ssm_inputs(2, 6, 4, 19, torch.float32, "cpu")
    if not with_z:
        inputs[6] = None

    def fast(u, delta, A, B, C, D, z, bias, state):
        return selective_scan_with_state(zero_state_kernel, u, delta, A, B, C, D, z, bias, True, state)

    compare(fast, ssm_call(selective_scan_ref), inputs, 1e-5)
