"""torch.compile of the position-wise parts (``--compile``): the same numbers as eager, forward and gradients.

The wiring is checked with the ``aot_eager`` backend (Dynamo and AOT autograd, no code generation: seconds); one
test compiles with Inductor on the CPU, and the GPU test on CUDA.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import lrgen.pretrain.loop as loop
from lrgen.errors import LrgenError
from lrgen.models import build_model, compile_position_wise
from lrgen.models.registry import preset_config
from lrgen.pretrain.loop import run_pretrain

from helpers import random_ids, write_fasta


def _pair(name: str, device: str = "cpu"):
    torch.manual_seed(0)
    eager = build_model(preset_config(name)).to(device)
    compiled = build_model(preset_config(name)).to(device)
    compiled.load_state_dict(eager.state_dict())
    return eager, compiled


def _check_same(eager, compiled, lengths, device="cpu", rtol=1e-5):
    for length in lengths:  # dynamic shapes: a second length reuses the graphs
        ids = random_ids(2, length, seed=length, with_n=False).to(device)
        a, b = eager(ids), compiled(ids)
        torch.testing.assert_close(b, a, rtol=rtol, atol=1e-5)
        (a.square().mean()).backward()
        (b.square().mean()).backward()
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("name", ["hawk-tiny", "ntv2-tiny"])
def test_compiled_parts_match_eager(name):
    eager, compiled = _pair(name)
    names = compile_position_wise(compiled, backend="aot_eager")
    expected = {"hawk-tiny": {"layers.0.mixer.fwd.gates", "layers.1.mlp.forward", "norm_f.forward"},
                "ntv2-tiny": {"layers.0.forward", "layers.1.forward"}}[name]
    assert expected <= set(names)
    _check_same(eager, compiled, [60, 37] if name == "hawk-tiny" else [48])
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints unchanged


def test_caduceus_has_nothing_to_compile():
    model = build_model(preset_config("caduceus-ps-tiny"))
    assert compile_position_wise(model, backend="aot_eager") == []


@pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")), reason="Inductor on CPU needs a C++ compiler")
def test_inductor_on_cpu():
    eager, compiled = _pair("hawk-tiny")
    compile_position_wise(compiled)
    _check_same(eager, compiled, [60, 37])


@pytest.mark.gpu
def test_inductor_on_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    for name in ("hawk-tiny", "ntv2-tiny"):
        eager, compiled = _pair(name, "cuda")
        compile_position_wise(compiled)
        _check_same(eager, compiled, [60, 37] if name == "hawk-tiny" else [48], "cuda", rtol=1e-4)


def test_pretrain_compile_flag(tmp_path, monkeypatch):
    fasta = tmp_path / "toy.fa"
    write_fasta(fasta, {"c0": "ACGTTGCA" * 500})
    calls = []

    def fast(model):
        calls.append(compile_position_wise(model, backend="aot_eager"))
        return calls[-1]

    monkeypatch.setattr(loop, "compile_position_wise", fast)
    flags = dict(model="hawk-tiny", fasta=[str(fasta)], context=64, steps=2, batch_size=2, val_windows=2)
    run_pretrain({**flags, "output": str(tmp_path / "run"), "compile": True})
    assert len(calls) == 1 and calls[0]
    assert json.loads((tmp_path / "run" / "pretrain_config.json").read_text())["compile"] is True
    with pytest.raises(LrgenError, match="--compile and --fsdp do not go together"):
        run_pretrain({**flags, "output": str(tmp_path / "other"), "compile": True, "fsdp": True})
