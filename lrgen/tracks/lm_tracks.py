"""Language-model tracks that need no fine-tuning, computed per position from MLM logits.

- ``logprob``: log p(reference base) — a conservation-like score (low where the model is surprised).
- ``entropy``: entropy (nats) of the model's distribution over A, C, G, T.
- ``max-alt-llr``: max over the three other bases of log p(alt) − log p(ref) — the ``wt-marginal`` score of the
  most likely substitution at the position.

Probabilities are renormalised over A, C, G, T, the logit columns of the model's own tokenizer. Positions whose
reference is not A/C/G/T are NaN (not written).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

LM_TRACKS = ("logprob", "entropy", "max-alt-llr")


def lm_tracks(logits: Tensor, input_ids: Tensor, nucleotide_ids: Sequence[int],
              names: tuple[str, ...] = LM_TRACKS) -> dict[str, Tensor]:
    """Per-position tracks ``(..., L)`` float32 from logits ``(..., L, V)`` and the reference ids ``(..., L)``;
    ``nucleotide_ids`` are the A, C, G, T ids of the model's tokenizer (``model.tokenizer.nucleotide_ids``)."""
    nuc = torch.tensor(nucleotide_ids, device=logits.device)
    logp = torch.log_softmax(logits.float().index_select(-1, nuc), dim=-1)  # (..., L, 4)
    index = (input_ids.unsqueeze(-1) == nuc).float()  # one-hot over ACGT; all zero at N
    is_nuc = index.sum(-1) > 0
    ref_logp = (logp * index).sum(-1)
    out: dict[str, Tensor] = {}
    for name in names:
        if name == "logprob":
            value = ref_logp
        elif name == "entropy":
            value = -(logp.exp() * logp).sum(-1)
        elif name == "max-alt-llr":
            value = (logp - ref_logp.unsqueeze(-1)).masked_fill(index.bool(), float("-inf")).amax(-1)
        else:
            raise ValueError(f"unknown LM track {name!r}")
        out[name] = torch.where(is_nuc, value, torch.full_like(value, float("nan")))
    return out
