"""benchmarks/profile_train.py groups every Triton kernel of lrgen.ops under a kind of work, not "other"."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _kind_of():
    """profile_train's grouping, as a function of a kernel name."""
    pytest.importorskip("torch.profiler")
    spec = importlib.util.spec_from_file_location("profile_train", ROOT / "benchmarks" / "profile_train.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return lambda name: next((k for k, p in module.KINDS if re.search(p, name, re.IGNORECASE)), "other")


def test_every_lrgen_kernel_has_a_kind():
    kind = _kind_of()
    names = [name for path in sorted((ROOT / "lrgen" / "ops").glob("triton_*.py"))
             for name in re.findall(r"@triton\.jit\s*\ndef (\w+_kernel)\(", path.read_text())]
    assert len(names) >= 8
    kinds = {name: kind(name) for name in names}
    assert "other" not in kinds.values(), kinds
    assert kinds["_conv_silu_bwd_kernel"] == "conv1d" and kinds["_bwd_kernel"].startswith("selective scan")


def test_inductor_kernels_are_counted_apart():
    kind = _kind_of()
    assert kind("triton_poi_fused__to_copy_add_mul_0") == "compiled fusions (inductor)"
    assert kind("triton_red_fused_native_layer_norm_1") == "compiled fusions (inductor)"
    assert kind("_fwd_kernel").startswith("selective scan")
