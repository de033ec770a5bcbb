"""Task heads over a backbone's hidden states, and :class:`GlrbModel` (backbone + pooling + head).

Pooling is parameter-free (see :mod:`lrgen.glrb.pooling`), so with a frozen backbone the pooled features can be
computed once and only the head trained. Variant tasks pool ``mean(ref) ⊕ mean(alt)`` over the centred
``pool_bp`` (1,536 bp) and add a tissue embedding for eQTL; classification tasks pool the centred 200 bp;
bulk RNA pools the 1,536 bp around the TSS; CAGE pools each 128 bp bin and applies one linear map per bin.
Caduceus-PS backbones are made RC-invariant before centred pooling (:func:`rc_invariant`); ``conjoin`` averages any
character-token backbone with its pass on the reverse complement (post-hoc conjoining, as for Caduceus-Ph).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from lrgen.errors import LrgenError
from lrgen.glrb.data import CAGE_BIN_BP, cage_bins
from lrgen.glrb.pooling import bin_mean, centre_mean, rc_invariant
from lrgen.glrb.tasks import CAGE, CLASSIFICATION, VARIANT, get_task

TISSUE_DIM = 16


@dataclass
class HeadSpec:
    """Everything needed to rebuild a head: written to ``task.json`` beside the fine-tuned backbone."""

    task: str
    context: int  # training context (bp)
    in_features: int  # pooled feature width per window
    n_outputs: int
    hidden: int = 256  # MLP width (0: linear)
    tissues: list[str] = field(default_factory=list)  # eQTL tissue vocabulary; id 0 is "unknown"
    rc_pool: bool = False
    conjoin: bool = False
    label_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HeadSpec:
        names = set(cls.__dataclass_fields__)
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
    """MLP over ``mean(ref) ⊕ mean(alt)`` (and a tissue embedding when the task has tissues): one logit."""

    def __init__(self, in_features: int, hidden: int, n_tissues: int = 0) -> None:
        super().__init__()
        self.tissue = nn.Embedding(n_tissues + 1, TISSUE_DIM) if n_tissues else None
        self.mlp = MLPHead(2 * in_features + (TISSUE_DIM if n_tissues else 0), 1, hidden)

    def forward(self, x: Tensor, tissue: Tensor | None = None) -> Tensor:
        if self.tissue is not None:
            x = torch.cat([x, self.tissue(tissue)], dim=-1)
        return self.mlp(x)


def build_head(spec: HeadSpec) -> nn.Module:
    task = get_task(spec.task)
    if task.kind == VARIANT:
        return VariantHead(spec.in_features, spec.hidden, len(spec.tissues))
    if task.kind == CLASSIFICATION:
        return MLPHead(spec.in_features, spec.n_outputs, spec.hidden)
    return MLPHead(spec.in_features, spec.n_outputs, 0)  # bulk RNA, CAGE: linear per tissue / per bin


def feature_width(backbone, task_name: str, conjoin: bool) -> tuple[int, bool]:
    """Pooled width per window and whether PS RC-invariant pooling applies, for ``backbone`` on the task."""
    task = get_task(task_name)
    if conjoin and getattr(backbone, "tokenizer_kind", "char") != "char":
        raise LrgenError("conjoin needs a one-token-per-base model; NTv2's 6-mers have no reverse-complement map")
    rc_pool = bool(getattr(backbone, "rc_equivariant", False)) and task.kind in (VARIANT, CLASSIFICATION)
    width = backbone.hidden_size // 2 if rc_pool else backbone.hidden_size
    return width, rc_pool


class GlrbModel(nn.Module):
    """A backbone, the task's pooling and (optionally, for zero-shot variant scoring) a head."""

    def __init__(self, backbone: nn.Module, spec: HeadSpec, head: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.spec = spec
        self.task = get_task(spec.task)
        self.head = build_head(spec) if head else None

    def hidden(self, ids: Tensor, chunk_size: int | None = None) -> Tensor:
        """Hidden states ``(B, T, F)``; streamed chunk by chunk when ``chunk_size`` is given."""
        if chunk_size is not None:
            from lrgen.engine import stream

            h = stream(self.backbone, ids, chunk_size=chunk_size, output="hidden", conjoin=self.spec.conjoin)
        elif self.spec.conjoin:
            from lrgen.models.conjoin import conjoin

            h = conjoin(self.backbone, ids, output="hidden")
        else:
            h = self.backbone.embed(ids)
        return rc_invariant(h) if self.spec.rc_pool else h

    def pool(self, hidden: Tensor, positions: Tensor, context: int) -> Tensor:
        mid = context // 2
        if self.task.kind == CAGE:
            bins = cage_bins(context)
            return bin_mean(hidden, positions, mid - bins * CAGE_BIN_BP // 2, bins, CAGE_BIN_BP)
        half = self.task.pool_bp // 2
        return centre_mean(hidden, positions, mid - half, mid - half + self.task.pool_bp)

    def features(self, batch: dict, chunk_size: int | None = None) -> Tensor:
        """Pooled features of a collated batch (see :func:`lrgen.glrb.batches.collate`)."""
        context = batch["context"]
        if self.task.kind == VARIANT:
            ids = torch.cat([batch["ids"], batch["alt_ids"]])
            positions = torch.cat([batch["positions"], batch["alt_positions"]])
            pooled = self.pool(self.hidden(ids, chunk_size), positions, context)
            ref, alt = pooled.chunk(2)
            return torch.cat([ref, alt], dim=-1)
        return self.pool(self.hidden(batch["ids"], chunk_size), batch["positions"], context)

    def head_outputs(self, features: Tensor, batch: dict) -> Tensor:
        """Logits (binary / multilabel) or predictions (regression), ``(B, n_outputs)`` or ``(B, bins, tracks)``."""
        return self.head(features.float(), batch.get("tissue"))

    def forward(self, batch: dict) -> Tensor:
        return self.head_outputs(self.features(batch), batch)

    def scores(self, features: Tensor, batch: dict) -> Tensor:
        """What metrics are computed from: probabilities, regression values, or the zero-shot variant distance."""
        if self.head is None:
            if self.task.kind != VARIANT:
                raise LrgenError(f"{self.task.name} needs a fine-tuned model (run lrgen finetune first)")
            ref, alt = features.float().chunk(2, dim=-1)
            return (ref - alt).norm(dim=-1, keepdim=True)
        out = self.head_outputs(features, batch)
        return torch.sigmoid(out) if self.task.binary else out


def make_spec(backbone, task_name: str, context: int, n_outputs: int, **kwargs) -> HeadSpec:
    width, rc_pool = feature_width(backbone, task_name, kwargs.get("conjoin", False))
    return HeadSpec(task=get_task(task_name).name, context=context, in_features=width, n_outputs=n_outputs,
                    rc_pool=rc_pool, **kwargs)

