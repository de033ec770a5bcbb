"""The fused BiMamba training function (:mod:`lrgen.ops.bimamba`) against the unfused path: two Mamba directions
through the scan runner under autograd, the reference it replaces."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lrgen.models.caduceus import BiMamba
from lrgen.models.registry import build_model, preset_config
from lrgen.ops.bimamba import conv_backward
from lrgen.ops.reference import causal_conv1d_ref

from helpers import loss_and_grads, max_rel


def check(model, ids, tol: float, autocast: torch.dtype | None = None) -> None:
    ref_logits, ref_grads = loss_and_grads(model, ids, False, autocast)
    logits, grads = loss_and_grads(model, ids, True, autocast)
    assert max_rel(logits, ref_logits) <= tol
    assert grads.keys() == ref_grads.keys()
    worst = max((max_rel(grads[n], ref_grads[n]), n) for n in ref_grads)
    assert worst[0] <= tol, worst


@pytest.mark.parametrize("preset", ["caduceus-ps-tiny", "caduceus-ph-tiny"])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_matches_unfused(preset, bias):
    config = preset_config(preset)
    config = dataclasses.replace(config, ssm_cfg={**config.ssm_cfg, "bias": bias})
    model = build_model(config, seed=1)
    if bias:  # non-zero projection biases, so their gradients and the RC half's flips of them are checked
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith(("in_proj.bias", "out_proj.bias")):
                    p.normal_()
    ids = model.tokenizer.encode("ACGTTGCAAGGCTTAN" * 19)[None].repeat(2, 1)
    check(model, ids, 1e-5)


def test_frozen_weights_and_inputs_get_no_gradient():
    """Layer 0 sees an input that needs no gradient (frozen embedding and norm) and every layer's projections are
    frozen: the trainable parameters' gradients match the unfused path and the frozen ones get none."""
    model = build_model(preset_config("caduceus-ps-tiny"), seed=3)
    for name, p in model.named_parameters():
        if name.endswith(("in_proj.weight", "out_proj.weight", "embedding.weight", "layers.0.norm.weight")):
            p.requires_grad_(False)
    ids = model.tokenizer.encode("ACGTTGCAAGGCTTAN" * 5)[None].repeat(2, 1)
    check(model, ids, 1e-5)
    _, grads = loss_and_grads(model, ids, fused=True)
    assert grads.keys() == {n for n, p in model.named_parameters() if p.requires_grad}


def test_fused_is_not_used_where_it_does_not_apply():
    """Multiplied directions, and inference, take the unfused path (same numbers by construction)."""
    config = dataclasses.replace(preset_config("caduceus-ph-tiny"), bidirectional_strategy="ew_multiply")
    model = build_model(config, seed=0)
    calls = []
    for module in model.modules():
        if isinstance(module, BiMamba):
            module._fused = lambda *a, **k: calls.append(a)  # noqa: SLF001 - a probe
    ids = model.tokenizer.encode("ACGT" * 20)[None]
    model(ids).sum().backward()
    with torch.no_grad():
        model(ids)
    assert calls == []


@pytest.mark.gpu
@pytest.mark.parametrize("preset", ["caduceus-ps-tiny", "caduceus-ph-tiny"])
def test_fused_matches_unfused_gpu(preset):
    """Triton kernels, float32 and bf16 autocast: the fused path against the unfused one on the same kernels."""
    config = preset_config(preset)
    config = dataclasses.replace(config, d_model=64, n_layer=3)
    model = build_model(config, seed=2).cuda()
    ids = torch.randint(0, 4, (2, 5000), device="cuda") + min(model.tokenizer.nucleotide_ids)
    check(model, ids, 2e-4)
    check(model, ids, 3e-2, autocast=torch.bfloat16)


@pytest.mark.parametrize("length", [2, 3, 50])
@pytest.mark.parametrize("reverse", [False, True])
def test_conv_backward_matches_autograd(length, reverse):
    """The conv's hand-written backward against autograd through the reference conv, both directions, and sequences
    shorter than the conv."""
    x = torch.randn(2, 5, length, requires_grad=True)
    w = torch.randn(5, 4, requires_grad=True)
    b = torch.randn(5, requires_grad=True)
    y, _ = causal_conv1d_ref(x.flip(-1) if reverse else x, w, b, None, None)
    y = y.flip(-1) if reverse else y
    grad = torch.randn_like(y)
    expected = torch.autograd.grad(y, (x, w, b), grad)
    for got, ref in zip(conv_backward(x.detach(), w.detach(), True, grad, reverse), expected):
        assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5)
