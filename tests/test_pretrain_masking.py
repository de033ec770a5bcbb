"""MLM masking statistics and the loss/metric sums."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lrgen import tokenizer
from lrgen.pretrain.masking import IGNORE, MaskingScheme, mask_tokens, mlm_sums, summarize


def _char_ids(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(tokenizer.A_ID, tokenizer.N_ID + 1, (8, n), generator=g)  # A C G T N
    ids[:, -5:] = tokenizer.PAD_ID
    return ids


def test_char_masking_statistics():
    ids = _char_ids(20_000)
    scheme = MaskingScheme.for_tokenizer(tokenizer.CHAR_TOKENIZER)
    inputs, labels = mask_tokens(ids, scheme, torch.Generator().manual_seed(1), mask_prob=0.15)
    eligible = torch.isin(ids, torch.tensor(tokenizer.NUCLEOTIDE_IDS))
    chosen = labels != IGNORE
    # N, padding and specials are never targets; labels are the original ids
    assert not chosen[~eligible].any()
    assert torch.equal(labels[chosen], ids[chosen])
    # unchosen positions are left alone
    assert torch.equal(inputs[~chosen], ids[~chosen])
    rate = chosen.sum().item() / eligible.sum().item()
    assert abs(rate - 0.15) < 0.005
    n = chosen.sum().item()
    masked = (inputs[chosen] == tokenizer.MASK_ID).sum().item() / n
    assert abs(masked - 0.8) < 0.01
    # the other 20%: half random nucleotide, half unchanged; random draws equal the original 1/4 of the time
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    assert abs(kept - (0.1 + 0.1 / 4)) < 0.01
    changed = chosen & (inputs != ids) & (inputs != tokenizer.MASK_ID)
    assert torch.isin(inputs[changed], torch.tensor(tokenizer.NUCLEOTIDE_IDS)).all()
    assert abs(changed.sum().item() / n - 0.1 * 3 / 4) < 0.01


def test_masking_is_deterministic_in_the_generator():
    ids = _char_ids(500)
    scheme = MaskingScheme.for_tokenizer(tokenizer.CHAR_TOKENIZER)
    a = mask_tokens(ids, scheme, torch.Generator().manual_seed(5))
    b = mask_tokens(ids, scheme, torch.Generator().manual_seed(5))
    c = mask_tokens(ids, scheme, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_kmer_targets_are_whole_kmers_only():
    kmer = tokenizer.KmerTokenizer()
    seq = "ACGTACGTAC" * 30 + "NNN" + "ACGTAGGA" * 20 + "ACG"
    ids = kmer.encode(seq).unsqueeze(0).repeat(64, 1)
    scheme = MaskingScheme.for_tokenizer(kmer)
    assert scheme.bases_per_target == 6
    inputs, labels = mask_tokens(ids, scheme, torch.Generator().manual_seed(0))
    chosen = labels != IGNORE
    lengths = kmer.token_lengths(seq).unsqueeze(0).repeat(64, 1)
    assert chosen.any()
    assert (lengths[chosen] == 6).all()  # never N or single-nucleotide tail tokens
    assert (inputs[chosen & (inputs != ids)] != kmer.N_ID).all()


def test_mlm_sums_match_cross_entropy_on_masked_positions():
    logits = torch.randn(2, 7, 12)
    labels = torch.full((2, 7), IGNORE)
    labels[0, 1], labels[1, 3], labels[1, 6] = 7, 9, 10
    loss_sum, count, correct = mlm_sums(logits, labels)
    sel = labels != IGNORE
    expect = F.cross_entropy(logits[sel], labels[sel], reduction="sum")
    assert torch.allclose(loss_sum, expect)
    assert count.item() == 3
    assert correct.item() == (logits[sel].argmax(-1) == labels[sel]).sum().item()


def test_summarize_per_base():
    m = summarize(12.0, 4, 3, bases_per_target=6)
    assert m["loss"] == 3.0 and m["accuracy"] == 0.75
    assert m["perplexity"] == pytest.approx(math.exp(3.0))
    assert m["perplexity_per_base"] == pytest.approx(math.exp(0.5))
    assert math.isnan(summarize(0.0, 0, 0, 1)["loss"])
