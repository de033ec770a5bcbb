"""Pretraining data: genome loading, validation regions, window sampling (determinism, resume, ranks), tokens."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from lrgen import tokenizer
from lrgen.errors import LrgenError
from lrgen.pretrain.data import (
    Region,
    WindowSampler,
    load_species,
    parse_region,
    read_fasta_list,
    reverse_complement_bases,
    split_segments,
    tokenize_windows,
    whole_segments,
)

from helpers import random_bases, write_fasta


def _write_fasta(path, records, compress=False):
    """Headers with a description, sequences in lines of 60."""
    return str(write_fasta(path, records, width=60, description="description", compress=compress))


@pytest.fixture
def two_species(tmp_path):
    a = _write_fasta(tmp_path / "a.fa.gz", [("chr1", random_bases(3000, 1)), ("chr2", random_bases(1000, 2))], True)
    b = _write_fasta(tmp_path / "b.fa", [("plasmid", "acgt" * 250 + "N" * 500 + "ACGT" * 250)])
    return [load_species(a), load_species(b)]


def test_load_species_normalises_and_names(two_species):
    a, b = two_species
    assert a.name == "a" and [c.name for c in a.contigs] == ["chr1", "chr2"] and a.length == 4000
    seq = b.contigs[0].seq
    assert seq.dtype == np.uint8 and not seq.flags.writeable
    assert seq[:4].tobytes() == b"ACGT" and np.count_nonzero(seq == ord("N")) == 500


def test_load_species_errors(tmp_path):
    with pytest.raises(LrgenError, match="not found"):
        load_species(str(tmp_path / "missing.fa"))


def test_fasta_list(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("# genomes\na.fa\n\n/abs/b.fa  # second\n")
    assert read_fasta_list(lst) == [str(tmp_path / "a.fa"), "/abs/b.fa"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(LrgenError, match="no FASTA path"):
        read_fasta_list(tmp_path / "empty.txt")


def test_parse_region():
    assert parse_region("20:1000000-4000000") == Region("20", 999_999, 4_000_000)
    assert parse_region("chrX:1,001-2,000") == Region("chrX", 1000, 2000)
    assert parse_region("chr2") == Region("chr2", 0, None)
    for bad in ("20:5-1", "20:0-10", "20:a-b", ""):
        with pytest.raises(LrgenError):
            parse_region(bad)


def test_split_segments_regions_fraction_and_aliases(two_species):
    train, val = split_segments(two_species, [parse_region("1:101-200"), parse_region("chr2")], val_fraction=0.1)
    a_chr1 = [(s.start, s.end) for s in train if s.species == 0 and s.contig == 0]
    assert a_chr1 == [(0, 100), (200, 2700)]  # 'chr1' matched through the chr alias; last 10% held out
    assert [(s.start, s.end) for s in val if s.species == 0 and s.contig == 0] == [(100, 200), (2700, 3000)]
    assert not [s for s in train if s.species == 0 and s.contig == 1]  # whole chr2 held out
    with pytest.raises(LrgenError, match="matches no contig"):
        split_segments(two_species, [parse_region("chr9:1-10")])


def test_sampler_is_deterministic_resumable_and_rank_specific(two_species):
    segs = whole_segments(two_species)
    make = lambda **kw: WindowSampler(two_species, segs, 200, rc_augment=True, seed=3, **kw)  # noqa: E731
    s1, s2 = make(), make()
    batches = [s1.next_batch(4)[1] for _ in range(5)]
    state = s1.state_dict()
    more = s1.next_batch(4)[1]
    s2.load_state_dict(state)
    assert s2.next_batch(4)[1][0].tobytes() == more[0].tobytes()
    again = make()
    assert all(np.array_equal(x, y) for x, y in zip(again.draw(2, 4), batches[2]))
    other_rank = make(rank=1)
    assert not all(np.array_equal(x, y) for x, y in zip(other_rank.draw(2, 4), batches[2]))


def test_sampler_skips_n_windows_and_respects_segments(two_species):
    train, _ = split_segments(two_species, [parse_region("chr1:1001-3000")])
    sampler = WindowSampler(two_species, train, 100, max_n_fraction=0.0, seed=0)
    for sp, contig, start, rc in sampler.draw_locations(0, 300):
        assert not rc
        window = two_species[sp].contigs[contig].seq[start : start + 100]
        assert window.size == 100 and not np.any(window == ord("N"))
        if (sp, contig) == (0, 0):
            assert start + 100 <= 1000  # never overlaps the held-out region
    with pytest.raises(LrgenError, match="as long as the context"):
        WindowSampler(two_species, train, 5000)


def test_sampling_is_proportional_to_length_or_weights(two_species):
    segs = whole_segments(two_species)
    by_length = WindowSampler(two_species, segs, 100, max_n_fraction=1.0, seed=0).draw_locations(0, 4000)
    share = np.mean([sp == 0 for sp, *_ in by_length])
    expect = (3000 - 99 + 1000 - 99) / (3000 - 99 + 1000 - 99 + 2500 - 99)
    assert abs(share - expect) < 0.03
    weighted = WindowSampler(two_species, segs, 100, weights=[1, 3], max_n_fraction=1.0, seed=0).draw_locations(0, 4000)
    assert abs(np.mean([sp == 0 for sp, *_ in weighted]) - 0.25) < 0.03
    with pytest.raises(LrgenError, match="weights given"):
        WindowSampler(two_species, segs, 100, weights=[1])


def test_tokenize_windows_char_and_kmer():
    windows = [np.frombuffer(b"ACGTNACGTA", np.uint8), np.frombuffer(b"GGGGGGCCCC", np.uint8)]
    ids = tokenize_windows(windows, tokenizer.CHAR_TOKENIZER)
    assert torch.equal(ids[0], tokenizer.encode("ACGTNACGTA")) and ids.shape == (2, 10)
    k = tokenizer.KmerTokenizer()
    kmer = tokenize_windows(windows, k)
    first, second = k.encode("ACGTNACGTA"), k.encode("GGGGGGCCCC")
    assert kmer.shape == (2, max(len(first), len(second)))
    assert torch.equal(kmer[1, : len(second)], second)
    assert torch.equal(kmer[0, : len(first)], first) and (kmer[0, len(first) :] == k.PAD_ID).all()
    assert reverse_complement_bases(windows[0]).tobytes() == tokenizer.reverse_complement("ACGTNACGTA").encode()
