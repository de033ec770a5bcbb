"""Character and 6-mer tokenizers: ids, round trips, reverse complement, k-mer rules against a plain reference."""

from __future__ import annotations

import json
import random
import time

import pytest
import torch

from lrgen import tokenizer as tok


def test_character_ids_are_caduceus_ids():
    assert tok.ID_TO_TOKEN[:7] == ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]"]
    assert tok.encode("ACGTN").tolist() == [7, 8, 9, 10, 11]
    assert (tok.A_ID, tok.C_ID, tok.G_ID, tok.T_ID, tok.N_ID, tok.VOCAB_SIZE) == (7, 8, 9, 10, 11, 12)
    assert tok.COMPLEMENT_IDS == (0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11)


def test_encode_uppercases_and_maps_iupac_to_n():
    ids = tok.encode("acgtRYKMBVDHSWn-.?é")
    assert ids.dtype == torch.long
    assert ids.tolist() == [7, 8, 9, 10] + [11] * 15


def test_round_trip_and_specials():
    seq = "".join(random.Random(0).choice("ACGTN") for _ in range(1000))
    assert tok.decode(tok.encode(seq)) == seq
    assert tok.decode([tok.CLS_ID, tok.A_ID, tok.MASK_ID]) == "[CLS]A[MASK]"
    assert tok.decode(torch.empty(0, dtype=torch.long)) == ""


def test_encode_batch():
    batch = tok.encode_batch(["ACGT", "TTNA"])
    assert batch.shape == (2, 4)
    assert batch[1].tolist() == [10, 10, 11, 7]
    with pytest.raises(ValueError, match="equal length"):
        tok.encode_batch(["ACGT", "ACG"])


def test_encode_is_fast_on_a_megabase():
    seq = "ACGTN" * 200_000
    tok.encode(seq)
    t0 = time.perf_counter()
    ids = tok.encode(seq)
    elapsed = time.perf_counter() - t0
    assert ids.shape == (1_000_000,)
    assert elapsed < 0.2, f"encode of 1 Mbp took {elapsed:.3f} s"


def test_reverse_complement_string():
    assert tok.reverse_complement("AACGTN") == "NACGTT"
    assert tok.reverse_complement("acgR") == "Ycgt"


def test_reverse_complement_ids_matches_string_rc():
    seqs = ["".join(random.Random(i).choice("ACGTN") for _ in range(37)) for i in range(3)]
    ids = tok.encode_batch(seqs)
    rc = tok.reverse_complement_ids(ids)
    assert rc.shape == ids.shape
    for row, seq in zip(rc, seqs):
        assert tok.decode(row) == tok.reverse_complement(seq)
    # involution, leading dims, specials fixed
    nested = ids.view(3, 1, 37)
    assert torch.equal(tok.reverse_complement_ids(tok.reverse_complement_ids(nested)), nested)
    assert tok.reverse_complement_ids(torch.tensor([tok.CLS_ID, tok.A_ID, tok.MASK_ID])).tolist() == [3, 10, 0]


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.uint8])
def test_complement_ids_is_the_complement_table(dtype):
    ids = torch.arange(tok.VOCAB_SIZE, dtype=dtype)
    got = tok.complement_ids(ids)
    assert got.dtype == dtype and got.tolist() == list(tok.COMPLEMENT_IDS)


# ---- 6-mer tokenizer -------------------------------------------------------------------------------------


def _reference_kmer_tokens(seq: str, k: int) -> list[str]:
    """Plain statement of the NTv2 rule: split at N, k-mers from the left of each piece, tail as singles."""
    tokens: list[str] = []
    pieces = seq.upper().split("N")
    for i, piece in enumerate(pieces):
        whole = len(piece) // k * k
        tokens += [piece[j : j + k] for j in range(0, whole, k)]
        tokens += list(piece[whole:])
        if i < len(pieces) - 1:
            tokens.append("N")
    return tokens


def test_kmer_vocab_layout():
    kt = tok.KmerTokenizer()
    assert kt.vocab_size == 4107
    assert kt.vocab[:6] == ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>"]
    assert (kt.UNK_ID, kt.PAD_ID, kt.MASK_ID, kt.CLS_ID) == (0, 1, 2, 3)
    known = {"AAAAAA": 6, "AAAAAT": 7, "AAAAAC": 8, "AAAAAG": 9, "AAAATA": 10, "TTTTTT": 1371,
             "CCCCCC": 2736, "GGGGGG": 4101, "A": 4102, "T": 4103, "C": 4104, "G": 4105, "N": 4106}
    for token, idx in known.items():
        assert kt.token_to_id[token] == idx
    assert kt.N_ID == 4106


def test_kmer_rules_n_in_middle_and_tail():
    kt = tok.KmerTokenizer()
    seq = "AAAAAATTTTTTCAN" + "GGGGGGGG"
    ids = kt.encode(seq).tolist()
    assert ids == [6, 1371, 4104, 4102, 4106, 4101, 4105, 4105]
    assert kt.decode(ids) == seq
    assert kt.token_lengths(seq).tolist() == [6, 6, 1, 1, 1, 6, 1, 1]
    spans = kt.token_spans(seq)
    assert spans[0].tolist() == [0, 6] and spans[5].tolist() == [15, 21] and spans[-1].tolist() == [22, 23]
    assert kt.encode("").numel() == 0
    assert kt.encode("acgtac").tolist() == [kt.token_to_id["ACGTAC"]]
    assert kt.encode("ACGTRY").tolist() == [4102, 4104, 4105, 4103, 4106, 4106]


@pytest.mark.parametrize("k", [6, 3])
def test_kmer_matches_reference_on_random_sequences(k):
    kt = tok.KmerTokenizer(k)
    rng = random.Random(k)
    for _ in range(30):
        seq = "".join(rng.choice("ACGT" * 6 + "N") for _ in range(rng.randrange(0, 200)))
        expected = [kt.token_to_id[t] for t in _reference_kmer_tokens(seq, k)]
        assert kt.encode(seq).tolist() == expected
        lengths = kt.token_lengths(seq)
        assert int(lengths.sum()) == len(seq)
        assert kt.decode(kt.encode(seq)) == seq


def test_kmer_to_bases_maps_token_values_to_each_base():
    kt = tok.KmerTokenizer()
    seq = "ACGTACGTNAC"
    lengths = kt.token_lengths(seq)
    values = torch.arange(len(lengths), dtype=torch.float32).unsqueeze(-1).expand(-1, 2)
    per_base = kt.to_bases(values, lengths)
    assert per_base.shape == (len(seq), 2)
    assert per_base[:, 0].tolist() == [0] * 6 + [1, 2, 3, 4, 5]


# ---- model.tokenizer: the tokenizer objects --------------------------------------------------------------------


def test_default_char_tokenizer_is_the_module_vocabulary():
    t = tok.CHAR_TOKENIZER
    seq = "acgtRYKMBVDHSWn-.?é" + "".join(random.Random(1).choice("ACGTN") for _ in range(50))
    assert torch.equal(t.encode(seq), tok.encode(seq))
    assert t.decode(t.encode("ACGTN")) == "ACGTN" and t.decode([tok.CLS_ID, tok.MASK_ID]) == "[CLS][MASK]"
    assert (t.nucleotide_ids, t.n_id, t.unk_id, t.mask_id, t.pad_id) == ((7, 8, 9, 10), 11, 6, 3, 4)
    assert t.per_base and t.kind == "char" and t.vocab_size == 12 and t.complement == tok.COMPLEMENT_IDS
    ids = tok.encode_batch(["ACGTNAC", "TTGCANG"])
    assert torch.equal(t.reverse_complement_ids(ids), tok.reverse_complement_ids(ids))
    assert torch.equal(t.encode_batch(["ACGT", "TTNA"]), tok.encode_batch(["ACGT", "TTNA"]))
    ids, starts, lengths = t.tokenize("ACGTN")
    assert ids.tolist() == [7, 8, 9, 10, 11] and starts.tolist() == [0, 1, 2, 3, 4] and lengths.tolist() == [1] * 5


def test_kmer_tokenizer_interface():
    kt, with_cls = tok.KmerTokenizer(), tok.KmerTokenizer(prepend_cls=True)
    assert not kt.per_base and kt.kind == "kmer" and kt.complement is None
    assert (kt.nucleotide_ids, kt.n_id, kt.unk_id, kt.mask_id, kt.pad_id, kt.cls_id) == (
        (4102, 4104, 4105, 4103), 4106, 0, 2, 1, 3)
    assert kt.encode("ACGTAC").tolist() == [728] and with_cls.encode("ACGTAC").tolist() == [3, 728]
    assert with_cls.tokenize("ACGTAC")[0].tolist() == [728]  # spans of the sequence's own tokens
    assert kt != with_cls and with_cls == tok.KmerTokenizer(6, True)
    with pytest.raises(tok.LrgenError, match="no per-token reverse complement"):
        kt.reverse_complement_ids(torch.tensor([728]))


def _tokenizer_json(tmp_path, **changes):
    data = {
        "version": "1.0", "added_tokens": [{"id": 0, "content": "[PAD]", "special": True},
                                           {"id": 1, "content": "[MASK]", "special": True},
                                           {"id": 2, "content": "[UNK]", "special": True}],
        "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
        "model": {"type": "BPE", "unk_token": "[UNK]", "merges": [],
                  "vocab": {"[PAD]": 0, "[MASK]": 1, "[UNK]": 2, "a": 3, "c": 4, "g": 5, "t": 6}},
    }
    for key, value in changes.items():
        if key == "model":
            data["model"] = {**data["model"], **value}
        else:
            data[key] = value
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data))
    return path


def test_tokenizer_json_reads_a_character_vocabulary(tmp_path):
    t = tok.read_tokenizer_json(_tokenizer_json(tmp_path))
    assert t.encode("ACGTN acgt").tolist() == [3, 4, 5, 6, 2, 2, 3, 4, 5, 6]
    assert t.complement == (0, 1, 2, 6, 5, 4, 3) and (t.mask_id, t.pad_id, t.unk_id) == (1, 0, 2)
    upper = tok.read_tokenizer_json(_tokenizer_json(tmp_path, normalizer=None, model={
        "vocab": {"[PAD]": 0, "[MASK]": 1, "[UNK]": 2, "A": 3, "C": 4, "G": 5, "T": 6, "N": 7}}))
    assert upper.encode("ACGTNa").tolist() == [3, 4, 5, 6, 7, 2] and upper.n_id == 7
    named = tok.read_tokenizer_json(_tokenizer_json(tmp_path), special_tokens={"mask_token": "[PAD]"})
    assert named.mask_id == 0


@pytest.mark.parametrize("changes,message", [
    ({"model": {"type": "WordPiece"}}, "a WordPiece model; lrgen reads character tokenizers"),
    ({"model": {"merges": ["a c"]}}, "a BPE model with merges"),
    ({"normalizer": {"type": "Replace"}}, "normalizer 'Replace' is not supported"),
    ({"pre_tokenizer": {"type": "ByteLevel"}}, "pre_tokenizer 'ByteLevel' is not supported"),
    ({"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]"}},
                                                                  {"Sequence": {"id": "A"}}]}},
     "the post_processor adds special tokens"),
    ({"model": {"vocab": {"[PAD]": 0, "[MASK]": 1, "[UNK]": 2, "a": 3, "c": 4, "g": 5}}},
     "the vocabulary does not give A, C, G and T tokens of their own"),
    ({"model": {"vocab": {"[PAD]": 0, "[UNK]": 2, "a": 3, "c": 4, "g": 5, "t": 6}}, "added_tokens": []},
     r"token ids are not 0..5 without gaps"),
])
def test_tokenizer_json_refusals_name_the_file(tmp_path, changes, message):
    path = _tokenizer_json(tmp_path, **changes)
    with pytest.raises(tok.LrgenError, match=f"{path}: {message}"):
        tok.read_tokenizer_json(path)


def test_tokenizer_json_complement_map_must_pair_the_bases(tmp_path):
    path = _tokenizer_json(tmp_path)
    assert tok.read_tokenizer_json(path, {"3": 6, "6": 3, "4": 5, "5": 4, "7": 7}).complement == (0, 1, 2, 6, 5, 4, 3)
    with pytest.raises(tok.LrgenError, match="complement_map does not pair A/T and C/G"):
        tok.read_tokenizer_json(path, {"3": 4, "4": 3})
