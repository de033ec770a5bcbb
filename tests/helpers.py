"""Plain helpers shared by several test modules: the shared data folder, random DNA, FASTA files, tiny streaming
models, run metrics, the fused-vs-unfused BiMamba comparison.

Import them as ``from helpers import ...``: tests/ is not a package, so pytest's default ``prepend`` import mode
puts it on ``sys.path``. Fixtures shared across modules live in conftest.py.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

from lrgen import load_model
from lrgen.models.caduceus import BiMamba
from lrgen.ops.reference import selective_scan_ref
from lrgen.tokenizer import A_ID, N_ID, T_ID

# --- the shared real data -------------------------------------------------------------------------------------

SHARED_DATA_VARIABLE = "LRGEN_SHARED_DATA"
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the repository


def locate_shared_data(environ: Mapping[str, str] = os.environ) -> Path:
    """The folder of real genomes and VCFs: ``$LRGEN_SHARED_DATA`` if set, else ``../shared/data`` beside the
    repository. If it is missing, the calling test fails under CI (``CI=true``) and skips elsewhere."""
    value = environ.get(SHARED_DATA_VARIABLE)
    path = Path(value).expanduser().resolve() if value else DEFAULT_SHARED_DATA
    if path.is_dir():
        return path
    where = (f"{SHARED_DATA_VARIABLE}={value}" if value
             else f"the default beside the repository; set {SHARED_DATA_VARIABLE} to use another folder")
    message = f"shared test data folder {path} not found ({where})"
    if environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"{message}; CI runs need it", pytrace=False)
    pytest.skip(message)


# --- DNA as text and as token ids ------------------------------------------------------------------------------


def random_bases(n: int, seed: int | np.random.Generator = 0) -> str:
    """``n`` random A/C/G/T letters from numpy's ``default_rng(seed)``; pass a Generator to keep drawing from it."""
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), n))


def write_fasta(path: Path, records, *, width: int | None = None, description: str | None = None,
                compress: bool = False) -> Path:
    """Write ``records`` ({name: seq} or [(name, seq), ...]) to ``path`` as FASTA and return ``path``.

    Each sequence is one line, or lines of ``width`` letters; ``description`` follows every name in its header;
    ``compress`` writes plain gzip.
    """
    items = records.items() if isinstance(records, dict) else records
    text = ""
    for name, seq in items:
        lines = [seq[i : i + width] for i in range(0, len(seq), width)] if width else [seq]
        text += f">{name}" + (f" {description}" if description else "") + "\n" + "\n".join(lines) + "\n"
    if compress:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        Path(path).write_text(text)
    return path


def random_ids(batch: int, length: int, seed: int = 0, with_n: bool = True) -> torch.Tensor:
    """Random (batch, length) ids of A/C/G/T (and N unless ``with_n`` is false) from a generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(A_ID, N_ID + 1 if with_n else N_ID, (batch, length), generator=g)


# --- tiny streaming models (test_engine, test_engine_marks) ----------------------------------------------------

STREAMING_PRESETS = ("caduceus-ps-tiny", "caduceus-ph-tiny", "hawk-tiny")
DNA_LENGTH = 150
_MODELS: dict[str, torch.nn.Module] = {}


def randomise_biases(model: torch.nn.Module, std: float) -> None:
    """Draw every ``*bias`` parameter from N(0, std²), so that a test also checks where the biases enter."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(std=std)


def tiny(name: str) -> torch.nn.Module:
    """A tiny preset with random weights (biases too, so every term is exercised), built once per session."""
    if name not in _MODELS:
        torch.manual_seed(1)
        model = load_model(name).eval()
        randomise_biases(model, 0.2)
        _MODELS[name] = model
    return _MODELS[name]


def dna(batch: int, length: int = DNA_LENGTH, seed: int = 0) -> torch.Tensor:
    """Random A/C/G/T/N ids with a run of N (positions 20-30), as in real windows near gaps."""
    ids = random_ids(batch, length, seed)
    ids[:, 20:31] = N_ID
    return ids


def snv(ids: torch.Tensor, pos: int) -> torch.Tensor:
    """``ids`` with the base at ``pos`` changed (A to T, anything else to A)."""
    alt = ids.clone()
    alt[:, pos] = torch.where(alt[:, pos] == A_ID, T_ID, A_ID)
    return alt


# --- runs and kernels ------------------------------------------------------------------------------------------


def read_metrics(run_dir: Path, drop: tuple[str, ...] = ()) -> list[dict]:
    """The records of a pretraining run's metrics.jsonl, without the keys in ``drop``."""
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def zero_state_kernel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    """The reference scan in the signature of mamba-ssm's kernel, which cannot take an initial state."""
    assert return_last_state
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, None)


def set_fused(model: torch.nn.Module, on: bool) -> None:
    """Every BiMamba layer of ``model`` on the fused training function (or the unfused path)."""
    for module in model.modules():
        if isinstance(module, BiMamba):
            module.fused = on


def loss_and_grads(model, ids, fused: bool, autocast: torch.dtype | None = None):
    """Logits and every parameter's gradient of one masked-LM-like loss, on the fused path or the unfused one."""
    set_fused(model, fused)
    model.zero_grad(set_to_none=True)
    device = ids.device.type
    with torch.autocast(device, dtype=autocast or torch.float32, enabled=autocast is not None):
        logits = model(ids)
    loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids.flatten() % logits.shape[-1])
    loss.backward()
    return logits.detach().float(), {n: p.grad.detach().clone() for n, p in model.named_parameters()
                                     if p.grad is not None}


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest magnitude of ``b``."""
    return ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12)).item()
