"""Post-hoc conjoining: average a model's output on a sequence and on its reverse complement (flipped back)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lrgen.errors import LrgenError
from lrgen.models.base import LanguageModel
from lrgen.models.scan import ScanRunner, run_whole


def conjoin(
    model: LanguageModel,
    input_ids: Tensor,
    runner: ScanRunner = run_whole,
    output: Literal["logits", "hidden"] = "logits",
) -> Tensor:
    """Strand-symmetric output of ``model`` on character ids ``(B, L)`` of its tokenizer (whose complement map
    gives the reverse complement).

    ``logits``: ``(model(x) + flip_L(model(rc(x)))[..., comp]) / 2`` — the RC pass's logits at each forward
    position, with vocabulary columns complemented. ``hidden``: ``(embed(x) + flip_L(embed(rc(x)))) / 2``. For an
    RC-equivariant model (Caduceus-PS) conjoined logits equal plain logits, and conjoined hidden states equal
    ``(h + flip_C(h)) / 2``.
    """
    tokenizer = model.tokenizer
    if not tokenizer.per_base:
        raise LrgenError(f"conjoin needs per-nucleotide tokens; the {model.family} model reads {tokenizer.kind} tokens")
    rc_ids = tokenizer.reverse_complement_ids(input_ids)
    if output == "logits":
        fwd, rc = model(input_ids, runner=runner), model(rc_ids, runner=runner)
        complement = tokenizer.complement_ids(torch.arange(rc.shape[-1], device=rc.device))
        return (fwd + rc.flip(1)[..., complement]) / 2
    if output == "hidden":
        return (model.embed(input_ids, runner=runner) + model.embed(rc_ids, runner=runner).flip(1)) / 2
    raise LrgenError(f"conjoin output must be 'logits' or 'hidden', got {output!r}")
