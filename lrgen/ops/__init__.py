"""Sequence-mixing kernels with explicit state in and out, dispatched to the best available backend.

Shapes follow mamba-ssm's channels-first convention for the Mamba ops and ``(batch, length, dim)`` for the linear
recurrence used by RG-LRU. States are always float32.

- ``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, state=None)``
  -> ``(y, last_state)``; u, delta, z ``(b, d, l)``; A ``(d, n)``; B, C ``(b, n, l)``; D, delta_bias ``(d,)``;
  state / last_state ``(b, d, n)`` float32; y in u's dtype, ``y = (C·h + D·u) * silu(z)`` when z is given.
- ``causal_conv1d(x, weight, bias=None, state=None, activation="silu")`` -> ``(y, new_state)``; x ``(b, d, l)``;
  weight ``(d, w)``; state ``(b, d, w-1)`` = the w-1 inputs before this chunk (zeros when None); new_state = the last
  w-1 inputs seen, so chunked calls equal one call.
- ``linear_scan(a, b, state=None)`` -> ``(h, last_state)``: ``h_t = a_t * h_{t-1} + b_t``; a, b ``(batch, l, d)``;
  state ``(batch, d)`` float32; h in b's dtype.
"""

from __future__ import annotations

from lrgen.ops.backend import select_backend


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, state=None):
    backend = select_backend(u.device, ("reference", "triton", "mamba"))
    if backend == "mamba":
        from lrgen.ops.mamba_backend import selective_scan_mamba as impl
    elif backend == "triton":
        from lrgen.ops.triton_scan import selective_scan_triton as impl
    else:
        from lrgen.ops.reference import selective_scan_ref as impl
    return impl(u, delta, A, B, C, D, z, delta_bias, delta_softplus, state)


def causal_conv1d(x, weight, bias=None, state=None, activation="silu"):
    backend = select_backend(x.device, ("reference", "triton"))
    if backend == "triton":
        from lrgen.ops.triton_conv import causal_conv1d_triton as impl
    else:
        from lrgen.ops.reference import causal_conv1d_ref as impl
    return impl(x, weight, bias, state, activation)


def linear_scan(a, b, state=None):
    backend = select_backend(b.device, ("reference", "triton"))
    if backend == "triton":
        from lrgen.ops.triton_lru import linear_scan_triton as impl
    else:
        from lrgen.ops.reference import linear_scan_ref as impl
    return impl(a, b, state)
