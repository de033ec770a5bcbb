"""States at marks inside one call (``marks=(first, every)``) against the final states of calls on each prefix:
the reference selective scan, mamba-ssm's split path (reference as its zero-state kernel) and the conv states."""

from __future__ import annotations

import pytest
import torch

from lrgen.ops import conv_states
from lrgen.ops import reference
from lrgen.ops.mamba_backend import selective_scan_with_state
from lrgen.ops.reference import causal_conv1d_ref, selective_scan_ref

from helpers import zero_state_kernel

TOL = dict(rtol=1e-5, atol=1e-5)
MARKS = [(1, 1), (3, 7), (8, 8), (5, 100), (30, 4)]  # every position, odd offsets, block-aligned, one mark, none


def inputs(length: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    b, d, n = 2, 5, 3
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return (r(b, d, length), r(b, d, length) * 0.5, -torch.rand(d, n, generator=g) * 2, r(b, n, length),
            r(b, n, length), r(d), r(b, d, length), r(d) * 0.1), r(b, d, n)


def prefix_state(args, state, p):
    u, delta, A, B, C, D, z, bias = args
    return selective_scan_ref(u[..., :p], delta[..., :p], A, B[..., :p], C[..., :p], D, z[..., :p], bias, True,
                              state)[1]


@pytest.mark.parametrize("marks", MARKS)
@pytest.mark.parametrize("with_state", [False, True])
def test_selective_scan_marks_equal_prefix_states(marks, with_state, monkeypatch):
    monkeypatch.setattr(reference, "BLOCK", 8)  # marks on both sides of block edges
    length = 29
    args, state = inputs(length)
    state = state if with_state else None
    counts = list(range(marks[0], length + 1, marks[1]))
    y0, last0 = selective_scan_ref(*args, True, state)
    kernels = {"reference": lambda *a: selective_scan_ref(*a),
               "mamba split": lambda *a: selective_scan_with_state(zero_state_kernel, *a)}
    for name, impl in kernels.items():
        y, last, marked = impl(*args, True, state, marks)
        assert marked.shape == (2, len(counts), 5, 3) and marked.dtype == torch.float32, name
        torch.testing.assert_close(y, y0, **TOL)
        torch.testing.assert_close(last, last0, **TOL)
        for k, p in enumerate(counts):
            torch.testing.assert_close(marked[:, k], prefix_state(args, state, p), **TOL)


def test_marks_must_be_positive():
    args, _ = inputs(5)
    with pytest.raises(ValueError, match="marks"):
        selective_scan_ref(*args, True, None, (0, 2))


@pytest.mark.parametrize("marks", MARKS)
@pytest.mark.parametrize("width", [1, 4])
def test_conv_states_equal_prefix_states(marks, width):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 17, generator=g)
    weight = torch.randn(6, width, generator=g)
    for state in (None, torch.randn(2, 6, width - 1, generator=g)):
        counts = list(range(marks[0], 18, marks[1]))
        states = conv_states(x, state, width, marks)
        assert states.shape == (2, len(counts), 6, width - 1) and states.dtype == torch.float32
        for k, p in enumerate(counts):
            torch.testing.assert_close(states[:, k], causal_conv1d_ref(x[..., :p], weight, None, state)[1], **TOL)


@pytest.mark.parametrize("marks", MARKS)
def test_conv_states_reverse_count_from_the_right(marks):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 6, 17, generator=g)
    state = torch.randn(2, 6, 3, generator=g)
    torch.testing.assert_close(conv_states(x, state, 4, marks, reverse=True), conv_states(x.flip(-1), state, 4, marks),
                               rtol=0, atol=0)
