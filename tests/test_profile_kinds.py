"""benchmarks/profile_train.py groups every Triton kernel of lrgen.ops under a kind of work, not "other"."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_lrgen_kernel_has_a_kind():
    pytest.importorskip("torch.profiler")
    spec = importlib.util.spec_from_file_location("profile_train", ROOT / "benchmarks" / "profile_train.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    names = [name for path in sorted((ROOT / "lrgen" / "ops").glob("triton_*.py"))
             for name in re.findall(r"@triton\.jit\s*\ndef (\w+_kernel)\(", path.read_text())]
    assert len(names) >= 8
    kinds = {name: next((k for k, p in module.KINDS if re.search(p, name, re.IGNORECASE)), "other") for name in names}
    assert "other" not in kinds.values(), kinds
    assert kinds["_conv_silu_bwd_kernel"] == "conv1d" and kinds["_bwd_kernel"].startswith("selective scan")
