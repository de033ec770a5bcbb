"""Both directions of a weight-tied BiMamba layer under autograd, as one function that saves little.

``bimamba(x, weights, reverse)`` computes ``out_proj(y_0 + y_1)`` where ``y_k`` is Mamba direction k
(``conv1d`` + SiLU → ``x_proj`` → ``dt_proj`` → selective scan with the ``silu(z)`` gate) over one shared
``xz = in_proj(x)``; direction k walks right to left when ``reverse[k]``. The directions share ``in_proj`` and
``out_proj`` (Caduceus' ``bidirectional_weight_tie``) and are added, so ``xz`` is formed once and ``out_proj`` runs
once on the sum — half the projection work of two separate directions.

The backward recomputes the conv output and Δ from ``xz`` and the saved ``x_proj`` outputs instead of keeping them
(as mamba-ssm's ``mamba_inner_fn`` does), so per position only x, xz, the two ``x_proj`` outputs and ``y_0 + y_1``
are saved; both directions' gradients are written into one ``dxz`` buffer (no concatenation). Scan and conv run
through :mod:`lrgen.ops`' dispatch. The scan's backward is the Triton kernel's where Triton runs the scans, and
autograd through the PyTorch reference otherwise (CPU, ``LRGEN_BACKEND=reference|mamba``). The conv + SiLU backward
is one Triton kernel on the Triton route (:func:`lrgen.ops.triton_conv.conv_silu_backward_triton`: it recomputes
the conv and adds dx into ``dxz`` in place; convs wider than it takes use the general path), otherwise the same conv
run the other way over the gradient plus one product-sum per tap (:func:`conv_backward`). The unfused path (two
:class:`~lrgen.models.caduceus.Mamba` directions under autograd) is the reference the tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lrgen.ops import causal_conv1d, selective_scan
from lrgen.ops.backend import select_backend
from lrgen.ops.limits import CONV_SILU_BACKWARD_MAX_WIDTH


@dataclass(frozen=True)
class Direction:
    """One direction's own weights: conv ``(E, w)`` + bias, ``x_proj`` ``(R + 2N, E)``, ``dt_proj`` ``(E, R)`` +
    bias (Δ's bias inside the scan), A ``(E, N)`` (negative), D ``(E,)``."""

    conv_weight: Tensor
    conv_bias: Tensor | None
    x_proj: Tensor
    dt_proj: Tensor
    dt_bias: Tensor
    A: Tensor
    D: Tensor

    def tensors(self) -> tuple[Tensor | None, ...]:
        return (self.conv_weight, self.conv_bias, self.x_proj, self.dt_proj, self.dt_bias, self.A, self.D)


FIELDS = len(Direction.__dataclass_fields__)


def bimamba(x: Tensor, in_proj: Tensor, in_bias: Tensor | None, out_proj: Tensor, out_bias: Tensor | None,
            directions: tuple[Direction, Direction], reverse: tuple[bool, bool]) -> Tensor:
    """``out_proj(y_0) + out_proj(y_1)`` (its bias counted twice) for x ``(B, L, d_model)``; matrices in x's dtype;
    A, D and the Δ bias float32."""
    flat = [t for direction in directions for t in direction.tensors()]
    return _BiMamba.apply(x, in_proj, in_bias, out_proj, out_bias, tuple(reverse), *flat)


def _split(x_dbl: Tensor, rank: int, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """dt input ``(B, L, R)`` and B, C as ``(B, N, L)`` views of the ``x_proj`` output."""
    dt, B, C = x_dbl.split([rank, n, n], dim=-1)
    return dt, B.transpose(1, 2), C.transpose(1, 2)


class _BiMamba(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, in_proj, in_bias, out_proj, out_bias, reverse, *flat):
        directions = [Direction(*flat[k * FIELDS : (k + 1) * FIELDS]) for k in range(2)]
        with torch.autocast(x.device.type, enabled=False):
            xz = F.linear(x, in_proj, in_bias)
            inner = xz.shape[-1] // 2
            x_dbls, y_sum = [], None
            for d, rev in zip(directions, reverse):
                u_pre = xz[..., :inner].transpose(1, 2)
                u, _ = causal_conv1d(u_pre, d.conv_weight, d.conv_bias, None, "silu", rev)
                x_dbl = F.linear(u.transpose(1, 2), d.x_proj)
                dt, B, C = _split(x_dbl, d.dt_proj.shape[1], d.A.shape[1])
                delta = F.linear(dt, d.dt_proj).transpose(1, 2)
                y, _ = selective_scan(u, delta, d.A, B, C, d.D, xz[..., inner:].transpose(1, 2), d.dt_bias, True,
                                      None, None, rev)
                y = y.transpose(1, 2)
                y_sum = y.contiguous() if y_sum is None else y_sum.add_(y)
                x_dbls.append(x_dbl)
                del u, y, delta
            out = F.linear(y_sum, out_proj, None if out_bias is None else 2 * out_bias)  # each direction's bias
        ctx.reverse = reverse
        ctx.has_bias = (in_bias is not None, out_bias is not None)
        ctx.save_for_backward(x, in_proj, in_bias, out_proj, xz, y_sum, *x_dbls, *flat)
        return out

    @staticmethod
    def backward(ctx, dout):
        x, in_proj, in_bias, out_proj, xz, y_sum, x_dbl0, x_dbl1, *flat = ctx.saved_tensors
        directions = [Direction(*flat[k * FIELDS : (k + 1) * FIELDS]) for k in range(2)]
        need = ctx.needs_input_grad  # the projections' products are skipped where nothing wants them
        grads: list[Tensor | None] = []
        with torch.autocast(x.device.type, enabled=False):
            dout = dout.to(x.dtype)
            dy = dout @ out_proj  # (B, L, E): the same for both directions
            d_out_proj = _weight_grad(dout, y_sum) if need[3] else None
            d_out_bias = 2 * dout.sum(dim=(0, 1)) if ctx.has_bias[1] and need[4] else None
            del y_sum
            inner = xz.shape[-1] // 2
            dxz = torch.empty_like(xz)
            fused_conv = (select_backend(x.device, ("reference", "triton")) == "triton"
                          and directions[0].conv_weight.shape[-1] <= CONV_SILU_BACKWARD_MAX_WIDTH)
            # the conv's input: on the Triton route as the forward read it (bf16, fused conv + SiLU backward), else
            # in float32, once for both directions
            u_pre = xz[..., :inner].transpose(1, 2)
            u_pre = u_pre if fused_conv else u_pre.float()
            for k, (d, x_dbl, rev) in enumerate(zip(directions, (x_dbl0, x_dbl1), ctx.reverse)):
                grads.extend(_direction_backward(xz, u_pre, x_dbl, d, rev, dy, dxz, inner, first=k == 0,
                                                 fused_conv=fused_conv))
            del u_pre
            d_x = dxz @ in_proj if need[0] else None
            d_in_proj = _weight_grad(dxz, x) if need[1] else None
            d_in_bias = dxz.sum(dim=(0, 1)) if ctx.has_bias[0] and need[2] else None
        return (d_x, d_in_proj, d_in_bias, d_out_proj, d_out_bias, None, *grads)


def _weight_grad(grad_out: Tensor, inputs: Tensor) -> Tensor:
    """``Σ grad_outᵀ inputs`` over batch and length: the gradient of a linear layer's weight."""
    return grad_out.reshape(-1, grad_out.shape[-1]).t() @ inputs.reshape(-1, inputs.shape[-1])


def _direction_backward(xz: Tensor, u_pre: Tensor, x_dbl: Tensor, d: Direction, reverse: bool, dy: Tensor,
                        dxz: Tensor, inner: int, first: bool, fused_conv: bool) -> list[Tensor | None]:
    """One direction's parameter gradients (in :class:`Direction` order); its share of ``dxz`` written (``first``)
    or added into ``dxz``. ``u_pre``: the conv's input ``(B, E, L)``, as it is read by the Triton conv and its fused
    backward (``fused_conv``), else in float32."""
    if fused_conv:  # the forward's own conv + SiLU kernel: u bit for bit
        u, _ = causal_conv1d(u_pre, d.conv_weight, d.conv_bias, None, "silu", reverse)
    else:  # the conv before the SiLU in float32, kept for the SiLU's backward
        pre, _ = causal_conv1d(u_pre, d.conv_weight, d.conv_bias, None, None, reverse)
        sig = torch.sigmoid(pre)
        u = (pre * sig).to(xz.dtype)
    rank, n = d.dt_proj.shape[1], d.A.shape[1]
    dt, B, C = _split(x_dbl, rank, n)
    delta = F.linear(dt, d.dt_proj).transpose(1, 2)
    z = xz[..., inner:].transpose(1, 2)
    du, ddelta, dA, dB, dC, dD, dz, dbias = scan_backward(u, delta, d.A, B, C, d.D, z, d.dt_bias, reverse,
                                                          dy.transpose(1, 2))
    ddelta = ddelta.transpose(1, 2).to(dt.dtype)  # (B, L, E)
    d_x_dbl = torch.cat([ddelta @ d.dt_proj, dB.transpose(1, 2).to(dt.dtype), dC.transpose(1, 2).to(dt.dtype)], -1)
    d_dt_proj = _weight_grad(ddelta, dt)
    u_t = u.transpose(1, 2)
    d_x_proj = _weight_grad(d_x_dbl, u_t)
    du = torch.addmm(du.transpose(1, 2).reshape(-1, inner).to(dt.dtype), d_x_dbl.reshape(-1, d_x_dbl.shape[-1]),
                     d.x_proj).view_as(u_t).transpose(1, 2)
    if fused_conv:
        from lrgen.ops.triton_conv import conv_silu_backward_triton

        d_conv_weight, d_conv_bias = conv_silu_backward_triton(u_pre, d.conv_weight, d.conv_bias, du,
                                                               dxz[..., :inner].transpose(1, 2), not first, reverse)
        d_conv_weight = d_conv_weight.view_as(d.conv_weight).to(d.conv_weight.dtype)
        d_conv_bias = None if d_conv_bias is None else d_conv_bias.to(d.conv_bias.dtype)
    else:
        grad_pre = du.float() * sig * (1.0 + pre * (1.0 - sig))  # through the SiLU
        del pre, sig
        d_u_pre, d_conv_weight, d_conv_bias = conv_backward(u_pre, d.conv_weight, d.conv_bias is not None, grad_pre,
                                                            reverse)
        _write(dxz[..., :inner], d_u_pre.transpose(1, 2), first)
    _write(dxz[..., inner:], dz.transpose(1, 2), first)
    return [d_conv_weight, d_conv_bias, d_x_proj, d_dt_proj, dbias, dA, dD]


def _write(into: Tensor, value: Tensor, first: bool) -> None:
    """``into = value`` for the first direction, ``into += value`` for the second."""
    if first:
        into.copy_(value)
    else:
        into.add_(value)


def conv_backward(x: Tensor, weight: Tensor, has_bias: bool, grad: Tensor, reverse: bool
                  ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Gradients (dx, dweight, dbias) of the causal depthwise conv ``pre = conv(x) + bias`` from ``grad = dL/dpre``
    (x, grad ``(B, E, L)``; weight ``(E, w)``). dx is the same conv run the other way over grad; tap k's weight
    gradient sums grad times x shifted by ``w - 1 - k``."""
    width, length = weight.shape[-1], x.shape[-1]
    dx, _ = causal_conv1d(grad, weight, None, None, None, not reverse)
    taps = []
    for k in range(width):
        shift = min(width - 1 - k, length)
        if reverse:
            taps.append((grad[..., : length - shift] * x[..., shift:]).sum(dim=(0, 2)))
        else:
            taps.append((grad[..., shift:] * x[..., : length - shift]).sum(dim=(0, 2)))
    dbias = grad.sum(dim=(0, 2)) if has_bias else None
    return dx, torch.stack(taps, dim=1).to(weight.dtype), None if dbias is None else dbias.to(weight.dtype)


def scan_backward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, z: Tensor, dt_bias: Tensor,
                  reverse: bool, dy: Tensor) -> tuple[Tensor, ...]:
    """Gradients (du, dΔ, dA, dB, dC, dD, dz, dΔbias) of the softplus-Δ selective scan from the whole sequence's
    zero state: the Triton kernel where Triton runs the scans, else autograd through the reference recomputed here."""
    if select_backend(u.device, ("reference", "triton")) == "triton":
        from lrgen.ops.triton_scan import selective_scan_backward

        return selective_scan_backward(u, delta, A, B, C, D, z, dt_bias, True, None, reverse, dy, None)[:8]
    inputs = [t.detach().requires_grad_() for t in (u, delta, A, B, C, D, z, dt_bias)]
    with torch.enable_grad():
        y, _ = selective_scan(*inputs[:7], inputs[7], True, None, None, reverse)
    return torch.autograd.grad(y, inputs, dy)
