"""The masked-LM objective: BERT masking (15%: 80% [MASK], 10% random, 10% unchanged) and loss on masked positions.

Targets are nucleotide tokens only: for character models A/C/G/T (never N, never padding or specials); for the
NTv2 6-mer tokenizer the whole 6-mers (never N, never the single-nucleotide tokens at the tail of an N-free run),
so one target stands for 6 bases. ``per_base`` metrics divide the summed cross-entropy by the number of bases the
targets cover: for character models it equals the per-token value, for 6-mer models it makes the numbers comparable
in bits per base (exp(loss per 6-mer / 6)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lrgen.tokenizer import CharTokenizer, KmerTokenizer

IGNORE = -100


@dataclass(frozen=True)
class MaskingScheme:
    """Which ids are targets, what [MASK] and padding are, and how many bases one target covers."""

    mask_id: int
    target_ids: Tensor  # 1-D, sorted
    bases_per_target: int

    @classmethod
    def for_tokenizer(cls, tokenizer: CharTokenizer | KmerTokenizer) -> "MaskingScheme":
        """The scheme of a model's own tokenizer: its [MASK] id, and its A/C/G/T ids (one token per base) or its
        whole k-mer ids (NTv2)."""
        if tokenizer.per_base:
            return cls(tokenizer.mask_id, torch.tensor(sorted(tokenizer.nucleotide_ids)), 1)
        kmers = tokenizer.kmer_ids
        return cls(tokenizer.mask_id, torch.arange(kmers.start, kmers.stop), tokenizer.k)


def mask_tokens(
    ids: Tensor, scheme: MaskingScheme, generator: torch.Generator, mask_prob: float = 0.15
) -> tuple[Tensor, Tensor]:
    """``(inputs, labels)`` for CPU ids ``(B, T)``: labels hold the original id at chosen positions, else ``IGNORE``.

    Each target-eligible position is chosen with probability ``mask_prob``; a chosen one becomes [MASK] with
    probability 0.8, a random target id with 0.1, and stays unchanged with 0.1.
    """
    eligible = torch.isin(ids, scheme.target_ids)
    chosen = eligible & (torch.rand(ids.shape, generator=generator) < mask_prob)
    action = torch.rand(ids.shape, generator=generator)
    random_ids = scheme.target_ids[torch.randint(len(scheme.target_ids), ids.shape, generator=generator)]
    inputs = ids.clone()
    inputs[chosen & (action < 0.8)] = scheme.mask_id
    swap = chosen & (action >= 0.8) & (action < 0.9)
    inputs[swap] = random_ids[swap]
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    return inputs, labels


def mlm_sums(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Summed cross-entropy (float32), number of targets and number predicted right (argmax) over masked positions."""
    sel = labels != IGNORE
    target = labels[sel]
    picked = logits[sel].float()
    loss_sum = F.cross_entropy(picked, target, reduction="sum")
    correct = (picked.argmax(-1) == target).sum()
    return loss_sum, sel.sum(), correct


def summarize(loss_sum: float, count: int, correct: int, bases_per_target: int) -> dict[str, float]:
    """Loss, perplexity and accuracy per target, and perplexity per base."""
    if count == 0:
        return {"loss": math.nan, "perplexity": math.nan, "perplexity_per_base": math.nan, "accuracy": math.nan}
    loss = loss_sum / count
    return {
        "loss": loss,
        "perplexity": math.exp(loss),
        "perplexity_per_base": math.exp(loss / bases_per_target),
        "accuracy": correct / count,
    }
