"""The head of each GLRB task, as a :class:`~lrgen.models.finetuned.HeadSpec`.

Variant tasks pool ``mean(ref) ⊕ mean(alt)`` over the centred ``pool_bp`` (1,536 bp) and add a tissue embedding
for eQTL; classification tasks pool the centred 200 bp into an MLP; bulk RNA pools the 1,536 bp around the TSS
into a linear map; CAGE pools each 128 bp bin of the centred 896 and applies one linear map per bin.
"""

from __future__ import annotations

from lrgen.glrb.data import CAGE_BIN_BP, CAGE_BINS
from lrgen.glrb.tasks import CAGE, CLASSIFICATION, VARIANT, Task
from lrgen.models.finetuned import HeadSpec, make_spec

POOLING = {VARIANT: "variant", CAGE: "bins"}  # every other kind pools the centred region


def task_spec(backbone, task: Task, context: int, n_outputs: int, *, hidden: int = 256, conjoin: bool = False,
              tissues: list[str] | None = None, label_names: list[str] | None = None) -> HeadSpec:
    """The head spec of ``task`` on ``backbone`` at ``context``: MLP heads for variant and classification tasks,
    linear maps for the regressions."""
    pooling = POOLING.get(task.kind, "centre")
    bins = {"bin_bp": CAGE_BIN_BP, "max_bins": CAGE_BINS} if pooling == "bins" else {"pool_bp": task.pool_bp}
    return make_spec(backbone, task=task.name, context=context, n_outputs=n_outputs, pooling=pooling,
                     binary=task.binary, conjoin=conjoin, hidden=hidden if task.kind in (VARIANT, CLASSIFICATION) else 0,
                     tissues=list(tissues or []), label_names=list(label_names or []), **bins)
