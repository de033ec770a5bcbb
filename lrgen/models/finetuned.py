"""A fine-tuned model: a backbone, parameter-free pooling of its hidden states, and a task head; and its folder.

The head describes its own pooling (:class:`HeadSpec`), so any job can use a fine-tuned model without knowing the
task it was trained on:

- ``variant``: ``mean(ref) ⊕ mean(alt)`` over the centred ``pool_bp`` of a REF and an ALT window (rows
  ``[ref…, alt…]``), then an MLP (with a tissue embedding when the spec has tissues): ``n_outputs`` logits or values;
- ``centre``: the mean over the centred ``pool_bp``, then an MLP (``hidden`` 0: a linear map);
- ``bins``: the mean over each ``bin_bp`` bin of the centred ``min(max_bins, context // bin_bp)`` bins, then one
  linear map per bin: a ``(bins, tracks)`` output.

Caduceus-PS backbones are made RC-invariant before centred pooling (``rc_pool``); ``conjoin`` averages the
backbone with its pass on the reverse complement. The model takes hidden states: the job computes them (streamed
through :mod:`lrgen.engine` for inference, or whole with :meth:`FinetunedModel.hidden` in training).

On disk a fine-tuned folder is the backbone's checkpoint (``config.json`` + ``model.safetensors``, so
``lrgen.load_model(DIR)`` still loads the backbone), ``head.safetensors`` and ``task.json`` (the spec and what the
job adds), each written atomically, ``task.json`` last.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from lrgen.errors import LrgenError
from lrgen.models.pooling import bin_mean, centre_mean, rc_invariant
from lrgen.runtime.files import atomic_write_text, replace

HEAD_FILE = "head.safetensors"
TASK_FILE = "task.json"
POOLINGS = ("variant", "centre", "bins")
TISSUE_DIM = 16


@dataclass
class HeadSpec:
    """Everything needed to rebuild a head and pool for it: written to ``task.json`` beside the backbone."""

    task: str  # the task it was trained on (a GLRB task name, or a user task)
    context: int  # training context (bp)
    in_features: int  # pooled feature width per window (per REF or ALT window for variant pooling)
    n_outputs: int
    pooling: str  # one of POOLINGS
    binary: bool  # outputs are logits of binary / multilabel classes (else regression values)
    pool_bp: int = 0  # variant / centre pooling: width of the centred region
    bin_bp: int = 0  # bins pooling: bin width
    max_bins: int = 0  # bins pooling: bins at most
    hidden: int = 256  # MLP width (0: linear)
    tissues: list[str] = field(default_factory=list)  # eQTL tissue vocabulary; id 0 is "unknown"
    rc_pool: bool = False
    conjoin: bool = False
    label_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise LrgenError(f"head pooling {self.pooling!r} is not one of {', '.join(POOLINGS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HeadSpec:
        names = set(cls.__dataclass_fields__)
        missing = [n for n in ("task", "context", "in_features", "n_outputs", "pooling", "binary") if n not in data]
        if missing:
            raise LrgenError(f"head description lacks {', '.join(missing)}: the folder was written by an older lrgen; "
                             "fine-tune again")
        return cls(**{k: v for k, v in data.items() if k in names})


class MLPHead(nn.Module):
    """LayerNorm, then a linear map or a one-hidden-layer GELU MLP, applied over the last dimension."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        if hidden:
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, out_features))
        else:
            self.net = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor, tissue: Tensor | None = None) -> Tensor:
        return self.net(self.norm(x))


class VariantHead(nn.Module):
    """MLP over ``mean(ref) ⊕ mean(alt)`` (and a tissue embedding when there are tissues): ``n_outputs`` values."""

    def __init__(self, in_features: int, hidden: int, n_tissues: int = 0, n_outputs: int = 1) -> None:
        super().__init__()
        self.tissue = nn.Embedding(n_tissues + 1, TISSUE_DIM) if n_tissues else None
        self.mlp = MLPHead(2 * in_features + (TISSUE_DIM if n_tissues else 0), n_outputs, hidden)

    def forward(self, x: Tensor, tissue: Tensor | None = None) -> Tensor:
        if self.tissue is not None:
            if tissue is None:
                tissue = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)  # "unknown"
            x = torch.cat([x, self.tissue(tissue)], dim=-1)
        return self.mlp(x)


def build_head(spec: HeadSpec) -> nn.Module:
    if spec.pooling == "variant":
        return VariantHead(spec.in_features, spec.hidden, len(spec.tissues), spec.n_outputs)
    return MLPHead(spec.in_features, spec.n_outputs, spec.hidden)


def feature_width(backbone, pooling: str, conjoin: bool) -> tuple[int, bool]:
    """Pooled width per window and whether RC-invariant pooling applies, for ``backbone`` with ``pooling``."""
    if conjoin and not backbone.tokenizer.per_base:
        raise LrgenError("conjoin needs a one-token-per-base model; NTv2's 6-mers have no reverse-complement map")
    rc_pool = bool(backbone.rc_equivariant) and pooling in ("variant", "centre")
    width = backbone.hidden_size // 2 if rc_pool else backbone.hidden_size
    return width, rc_pool


def make_spec(backbone, *, task: str, context: int, n_outputs: int, pooling: str, binary: bool,
              conjoin: bool = False, **kwargs) -> HeadSpec:
    """The spec of a new head for ``backbone`` (its feature width and RC pooling follow from the backbone)."""
    width, rc_pool = feature_width(backbone, pooling, conjoin)
    return HeadSpec(task=task, context=context, in_features=width, n_outputs=n_outputs, pooling=pooling,
                    binary=binary, rc_pool=rc_pool, conjoin=conjoin, **kwargs)


class FinetunedModel(nn.Module):
    """A backbone, the spec's pooling and (optionally, for zero-shot variant distances) a head."""

    def __init__(self, backbone: nn.Module, spec: HeadSpec, head: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.spec = spec
        self.head = build_head(spec) if head else None

    def hidden(self, ids: Tensor) -> Tensor:
        """Hidden states ``(B, T, H)`` of a whole pass (conjoined when the spec is), with gradients if enabled."""
        if self.spec.conjoin:
            from lrgen.models.conjoin import conjoin

            return conjoin(self.backbone, ids, output="hidden")
        return self.backbone.embed(ids)

    def n_bins(self, context: int) -> int:
        """Bins pooled from a ``context`` bp window (bins pooling)."""
        return min(self.spec.max_bins, context // self.spec.bin_bp)

    @property
    def allele_width(self) -> int:
        """Width (bp) pooled around an allele when scoring variants: the pooled region (variant, centre) or one bin."""
        return self.spec.bin_bp if self.spec.pooling == "bins" else self.spec.pool_bp

    def pooled_offset(self, context: int) -> int:
        """Window offset (bp) of the first pooled base."""
        if self.spec.pooling == "bins":
            return context // 2 - self.n_bins(context) * self.spec.bin_bp // 2
        return context // 2 - self.spec.pool_bp // 2

    def check_context(self, context: int) -> None:
        """Refuse a window the pooling cannot use: shorter than the pooled region, or (bins) not an even number of
        bins."""
        if self.spec.pooling == "bins":
            if context % (2 * self.spec.bin_bp):
                raise LrgenError(f"context {context} must be a multiple of {2 * self.spec.bin_bp} bp (an even number "
                                 f"of the model's {self.spec.bin_bp} bp bins)")
        elif context < self.spec.pool_bp:
            raise LrgenError(f"context {context} is shorter than the model's pooled region ({self.spec.pool_bp} bp)")

    def pool(self, hidden: Tensor, positions: Tensor, context: int) -> Tensor:
        """Features of hidden states ``(B, T, H)`` whose tokens start at window offsets ``positions`` (B, T) (-1:
        padding). Variant pooling takes rows ``[ref…, alt…]`` and returns ``(B/2, 2F)``."""
        if self.spec.rc_pool:
            hidden = rc_invariant(hidden)
        start = self.pooled_offset(context)
        if self.spec.pooling == "bins":
            return bin_mean(hidden, positions, start, self.n_bins(context), self.spec.bin_bp)
        pooled = centre_mean(hidden, positions, start, start + self.spec.pool_bp)
        if self.spec.pooling == "variant":
            ref, alt = pooled.chunk(2)
            return torch.cat([ref, alt], dim=-1)
        return pooled

    def outputs(self, features: Tensor, tissue: Tensor | None = None) -> Tensor:
        """Logits (binary / multilabel) or predictions (regression): ``(B, n_outputs)`` or ``(B, bins, tracks)``."""
        return self.head(features.float(), tissue)

    def forward(self, ids: Tensor, positions: Tensor, context: int, tissue: Tensor | None = None) -> Tensor:
        """Outputs of a whole pass (training): hidden states, pooling, head."""
        return self.outputs(self.pool(self.hidden(ids), positions, context), tissue)

    def scores(self, features: Tensor, tissue: Tensor | None = None) -> Tensor:
        """What metrics are computed from: probabilities, regression values, or (no head, variant pooling) the
        zero-shot distance ``|mean(ref) - mean(alt)|``."""
        if self.head is None:
            if self.spec.pooling != "variant":
                raise LrgenError(f"{self.spec.task} needs a fine-tuned model (run lrgen finetune first)")
            ref, alt = features.float().chunk(2, dim=-1)
            return (ref - alt).norm(dim=-1, keepdim=True)
        out = self.outputs(features, tissue)
        return torch.sigmoid(out) if self.spec.binary else out


def is_finetuned(path: str | os.PathLike) -> bool:
    return (Path(path) / TASK_FILE).is_file()


def save_finetuned(model: FinetunedModel, out_dir: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write backbone, head and ``task.json`` (the spec, plus ``extra``) into ``out_dir``."""
    from lrgen.models.checkpoint import save_model
    from lrgen.models.weights import write_safetensors

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for left in out.glob(".save-*"):  # what a killed save left behind
        shutil.rmtree(left, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".save-") as tmp:
        staged = save_model(model.backbone, Path(tmp) / "model")
        state = {k: v.detach().contiguous().cpu() for k, v in model.head.state_dict().items()}
        write_safetensors(state, staged / HEAD_FILE)
        for name in sorted(os.listdir(staged)):
            replace(staged / name, out / name)
    meta = {"format": "lrgen-finetuned", "head": model.spec.to_dict(), **(extra or {})}
    atomic_write_text(out / TASK_FILE, json.dumps(meta, indent=2) + "\n")
    return out


def read_task_json(path: str | os.PathLike) -> dict:
    """The ``task.json`` of a fine-tuned folder, checked."""
    file = Path(path) / TASK_FILE
    try:
        meta = json.loads(file.read_text())
        HeadSpec.from_dict(meta["head"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LrgenError(f"{file}: not a readable lrgen fine-tuned model description ({exc})") from None
    except LrgenError as exc:
        raise LrgenError(f"{file}: {exc}") from None
    return meta


def load_finetuned(path: str | os.PathLike, backbone: nn.Module | None = None) -> tuple[FinetunedModel, dict]:
    """The :class:`FinetunedModel` of the folder ``path`` (around ``backbone`` when it is loaded already) and its
    ``task.json``."""
    from safetensors.torch import load_file

    from lrgen.models.registry import load_checkpoint

    path = Path(path)
    if backbone is None:
        backbone = load_checkpoint(path)
    meta = read_task_json(path)
    model = FinetunedModel(backbone, HeadSpec.from_dict(meta["head"]))
    head_file = path / HEAD_FILE
    if not head_file.is_file():
        raise LrgenError(f"{head_file} not found: {path} is an incomplete fine-tuned model")
    try:
        state = load_file(str(head_file))
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise LrgenError(f"{head_file}: cannot read ({err})") from None
    missing, unexpected = model.head.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise LrgenError(f"{head_file}: head weights do not match {TASK_FILE} (missing {missing}, unexpected {unexpected})")
    return model, meta
