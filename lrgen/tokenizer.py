"""Nucleotide tokens: the Caduceus character tokenizer, reverse complement, and the NTv2 6-mer tokenizer.

Character ids are those of the published Caduceus checkpoints, so their embeddings load unchanged:
``[CLS]0 [SEP]1 [BOS]2 [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11``. Input is uppercased and every
letter other than A, C, G, T (IUPAC ambiguity codes, gaps, anything else) becomes N.
"""

from __future__ import annotations

from itertools import product
from typing import Sequence

import numpy as np
import torch

CLS_ID = 0
SEP_ID = 1
BOS_ID = 2
MASK_ID = 3
PAD_ID = 4
RESERVED_ID = 5
UNK_ID = 6
A_ID = 7
C_ID = 8
G_ID = 9
T_ID = 10
N_ID = 11
VOCAB_SIZE = 12
NUCLEOTIDE_IDS = (A_ID, C_ID, G_ID, T_ID)
ID_TO_TOKEN = ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]", "A", "C", "G", "T", "N"]
COMPLEMENT_IDS = tuple(
    {A_ID: T_ID, T_ID: A_ID, C_ID: G_ID, G_ID: C_ID}.get(i, i) for i in range(VOCAB_SIZE)
)

# byte -> id: A/C/G/T in either case, everything else N
_ENCODE_TABLE = np.full(256, N_ID, dtype=np.int64)
for _letter, _id in zip("ACGT", NUCLEOTIDE_IDS):
    _ENCODE_TABLE[ord(_letter)] = _id
    _ENCODE_TABLE[ord(_letter.lower())] = _id

# id -> byte for nucleotide ids (7..11); other ids are decoded through ID_TO_TOKEN
_DECODE_TABLE = np.frombuffer(b"\0" * A_ID + b"ACGTN", dtype=np.uint8)

# IUPAC complement, case kept; characters outside the table are left as they are
_COMPLEMENT_STR = str.maketrans("ACGTRYKMBVDHSWNacgtrykmbvdhswn", "TGCAYRMKVBHDSWNtgcayrmkvbhdswn")


def _as_bytes(seq: str) -> np.ndarray:
    """The sequence as a uint8 array; non-ASCII characters become '?' (and so N)."""
    return np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)


def encode(seq: str) -> torch.Tensor:
    """Character ids of ``seq`` as a 1-D LongTensor (uppercased; non-ACGT -> N)."""
    return torch.from_numpy(_ENCODE_TABLE[_as_bytes(seq)])


def encode_batch(seqs: Sequence[str]) -> torch.Tensor:
    """Ids of equal-length sequences as a ``(B, L)`` LongTensor."""
    if len(seqs) == 0:
        raise ValueError("encode_batch needs at least one sequence")
    lengths = {len(s) for s in seqs}
    if len(lengths) != 1:
        raise ValueError(f"encode_batch needs sequences of equal length, got lengths {sorted(lengths)}")
    return encode("".join(seqs)).view(len(seqs), -1)


def decode(ids: torch.Tensor | Sequence[int]) -> str:
    """The string of 1-D character ids; special ids are written as their token, e.g. ``[MASK]``."""
    arr = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids, dtype=np.int64).reshape(-1)
    if arr.size and arr.min() >= A_ID and arr.max() <= N_ID:
        return _DECODE_TABLE[arr].tobytes().decode("ascii")
    return "".join(ID_TO_TOKEN[i] for i in arr.tolist())


def reverse_complement(seq: str) -> str:
    """Reverse complement of a DNA string (IUPAC codes complemented, case kept)."""
    return seq.translate(_COMPLEMENT_STR)[::-1]


def complement_ids(ids: torch.Tensor) -> torch.Tensor:
    """:data:`COMPLEMENT_IDS` of each id, computed on the ids' device (no host table: CUDA-graph capturable)."""
    return torch.where((ids >= A_ID) & (ids <= T_ID), A_ID + T_ID - ids, ids)


def reverse_complement_ids(ids: torch.Tensor) -> torch.Tensor:
    """Reverse complement of character ids along the last dimension (any leading dimensions)."""
    return complement_ids(ids.flip(-1))


class KmerTokenizer:
    """Nucleotide Transformer v2 k-mer tokenizer (k=6: vocab 4,107).

    Vocabulary: ``<unk> <pad> <mask> <cls> <eos> <bos>`` (ids 0..5), the 4^k k-mers over ``A T C G`` in
    lexicographic order of that alphabet (``AAAAAA`` = 6, ``AAAAAT`` = 7, ...), then ``A T C G N``.
    Tokenisation: the sequence (uppercased, non-ACGT -> N) is cut at every N; each N-free run is split into
    non-overlapping k-mers from its left end and its tail shorter than k becomes single-nucleotide tokens;
    each N is one token.
    """

    UNK_ID = 0
    PAD_ID = 1
    MASK_ID = 2
    CLS_ID = 3
    EOS_ID = 4
    BOS_ID = 5
    SPECIAL_TOKENS = ("<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>")
    ALPHABET = "ATCG"

    def __init__(self, k: int = 6):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        kmers = ["".join(p) for p in product(self.ALPHABET, repeat=k)]
        self.vocab: list[str] = [*self.SPECIAL_TOKENS, *kmers, *self.ALPHABET, "N"]
        self.token_to_id = {tok: i for i, tok in enumerate(self.vocab)}
        self._kmer_offset = len(self.SPECIAL_TOKENS)
        self._single_offset = self._kmer_offset + len(kmers)
        self.N_ID = self._single_offset + 4
        # byte -> digit in the A T C G alphabet, N (and anything else) -> 4
        self._digit = np.full(256, 4, dtype=np.int64)
        for d, letter in enumerate(self.ALPHABET):
            self._digit[ord(letter)] = d
            self._digit[ord(letter.lower())] = d

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, seq: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token ids, start offsets in ``seq`` and lengths in bases (three int64 arrays of equal length)."""
        k = self.k
        digits = self._digit[_as_bytes(seq)]
        n = digits.size
        if n == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), empty.copy()
        pos = np.arange(n)
        is_n = digits == 4
        last_n = np.maximum.accumulate(np.where(is_n, pos, -1))
        next_n = np.minimum.accumulate(np.where(is_n, pos, n)[::-1])[::-1]
        offset = pos - last_n - 1  # offset inside the N-free run (meaningless at N)
        full = (next_n - last_n - 1) // k * k  # bases of the run covered by whole k-mers
        in_kmer = ~is_n & (offset < full)
        starts = np.flatnonzero(~in_kmer | (offset % k == 0))
        is_kmer = in_kmer[starts]
        lengths = np.where(is_kmer, k, 1)
        ids = self._single_offset + digits[starts]
        kmer_starts = starts[is_kmer]
        if kmer_starts.size:
            value = np.zeros(kmer_starts.size, dtype=np.int64)
            for j in range(k):
                value = value * 4 + digits[kmer_starts + j]
            ids[is_kmer] = self._kmer_offset + value
        return ids, starts, lengths

    def encode(self, seq: str) -> torch.Tensor:
        """Token ids of ``seq`` as a 1-D LongTensor."""
        return torch.from_numpy(self.tokenize(seq)[0])

    def token_lengths(self, seq: str) -> torch.Tensor:
        """Number of bases each token of ``seq`` covers (k or 1); they sum to ``len(seq)``."""
        return torch.from_numpy(self.tokenize(seq)[2])

    def token_spans(self, seq: str) -> torch.Tensor:
        """``(n_tokens, 2)`` LongTensor of each token's ``[start, end)`` in ``seq``."""
        _, starts, lengths = self.tokenize(seq)
        return torch.from_numpy(np.stack([starts, starts + lengths], axis=1))

    @staticmethod
    def to_bases(values: torch.Tensor, lengths: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Per-token ``values`` repeated along ``dim`` so that each base gets the value of its token."""
        return torch.repeat_interleave(values, lengths.to(values.device), dim=dim)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Concatenated tokens of 1-D ids (special tokens written as ``<mask>`` etc.)."""
        seq = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.vocab[i] for i in seq)


class Tokens:
    """Turns a window string into ``(ids, positions)`` for a model's tokenizer kind (``"char"`` or ``"kmer"``):
    ``positions`` is the offset in the window (bp) at which each token starts, so one pooling serves both kinds."""

    def __init__(self, kind: str) -> None:
        if kind not in ("char", "kmer"):
            raise ValueError(f"unknown tokenizer kind {kind!r}")
        self.kind = kind
        self._kmer = KmerTokenizer() if kind == "kmer" else None
        self.pad_id = KmerTokenizer.PAD_ID if kind == "kmer" else PAD_ID

    def __call__(self, seq: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self._kmer is None:
            return encode(seq), torch.arange(len(seq))
        ids, starts, _ = self._kmer.tokenize(seq)
        return torch.from_numpy(ids), torch.from_numpy(starts)
