"""Nucleotide tokens: the Caduceus character tokenizer, reverse complement, and the NTv2 6-mer tokenizer.

Character ids are those of the published Caduceus checkpoints, so their embeddings load unchanged:
``[CLS]0 [SEP]1 [BOS]2 [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11``. Input is uppercased and every
letter other than A, C, G, T (IUPAC ambiguity codes, gaps, anything else) becomes N. The module-level functions
and constants are those of this default vocabulary (:data:`CHAR_TOKENIZER`).

A model's own tokenizer is ``model.tokenizer``: a :class:`CharTokenizer` (one token per base; the default, or one
read from a checkpoint's ``tokenizer.json`` by :func:`read_tokenizer_json`) or a :class:`KmerTokenizer` (NTv2;
read from ``vocab.txt`` by :meth:`KmerTokenizer.from_vocab_txt`). Both offer ``encode``, ``decode``, ``tokenize``,
``vocab_size``, ``per_base``, ``nucleotide_ids`` (A, C, G, T), ``n_id``, ``unk_id``, ``mask_id`` and ``pad_id``;
character tokenizers also ``complement`` and ``reverse_complement_ids``.
"""

from __future__ import annotations

import json
import math
from itertools import product
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from lrgen.errors import LrgenError

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


TOKENIZER_JSON = "tokenizer.json"
VOCAB_TXT = "vocab.txt"
_NO_OP_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD"}  # identities on the ASCII input lrgen reads


class CharTokenizer:
    """One token per base: a vocabulary (id → token), the id of every input byte, and the special ids.

    ``complement`` gives the complement id of every id (A↔T, C↔G; every other id maps to itself unless the
    checkpoint says otherwise). ``source`` is the parsed ``tokenizer.json`` it was read from (written back
    unchanged by :meth:`save`), or None for lrgen's default vocabulary.
    """

    kind = "char"
    per_base = True

    def __init__(self, vocab: Sequence[str], table: np.ndarray, *, mask_id: int, pad_id: int, unk_id: int,
                 complement: Sequence[int], source: dict[str, Any] | None = None) -> None:
        self.vocab = list(vocab)
        self._table = np.asarray(table, dtype=np.int64)
        self.mask_id, self.pad_id, self.unk_id = int(mask_id), int(pad_id), int(unk_id)
        self.complement = tuple(int(c) for c in complement)
        self.source = source
        self.nucleotide_ids = tuple(int(self._table[ord(b)]) for b in "ACGT")
        self.n_id = int(self._table[ord("N")])
        self._complement_tables: dict[torch.device, torch.Tensor] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _key(self) -> tuple:
        return self.vocab, self.complement, self.mask_id, self.pad_id, self.unk_id, self._table.tobytes()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def encode(self, seq: str) -> torch.Tensor:
        """Ids of ``seq`` (one per character) as a 1-D LongTensor."""
        return torch.from_numpy(self._table[_as_bytes(seq)])

    def encode_batch(self, seqs: Sequence[str]) -> torch.Tensor:
        """Ids of equal-length sequences as a ``(B, L)`` LongTensor."""
        lengths = sorted({len(s) for s in seqs})
        if len(lengths) != 1:
            raise ValueError(f"encode_batch needs one or more sequences of equal length, got lengths {lengths}")
        return self.encode("".join(seqs)).view(len(seqs), -1)

    def tokenize(self, seq: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ids, start offsets and lengths in bases (as :meth:`KmerTokenizer.tokenize`): one token per base."""
        ids = self._table[_as_bytes(seq)]
        return ids, np.arange(ids.size), np.ones(ids.size, dtype=np.int64)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The tokens of 1-D ids, concatenated."""
        seq = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.vocab[i] for i in seq)

    def complement_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """The complement id of each id, looked up on the ids' device."""
        table = self._complement_tables.get(ids.device)
        if table is None:
            table = self._complement_tables[ids.device] = torch.tensor(self.complement, device=ids.device)
        return table[ids]

    def reverse_complement_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Reverse complement of ids along the last dimension (any leading dimensions)."""
        return self.complement_ids(ids.flip(-1))

    def save(self, directory: str | Path) -> None:
        """Write ``tokenizer.json`` as it was read (nothing for lrgen's default vocabulary)."""
        if self.source is not None:
            (Path(directory) / TOKENIZER_JSON).write_text(json.dumps(self.source, indent=2) + "\n")


CHAR_TOKENIZER = CharTokenizer(ID_TO_TOKEN, _ENCODE_TABLE, mask_id=MASK_ID, pad_id=PAD_ID, unk_id=UNK_ID,
                               complement=COMPLEMENT_IDS)
"""lrgen's default character tokenizer (the ids above): the tokenizer of lrgen's own and the official Caduceus
checkpoints."""

def read_tokenizer_json(path: str | Path, complement_map: dict[Any, Any] | None = None,
                        special_tokens: dict[str, str] | None = None) -> CharTokenizer:
    """The character tokenizer of a Hugging Face ``tokenizer.json`` (a BPE model without merges over single
    characters, as PlantCaduceus's), computed by hand: every character is normalised (lowercased when the
    normaliser says so) and is its own token, or the unknown token. ``complement_map`` (a checkpoint's,
    ``{id: id}``) overrides the A↔T, C↔G complement read off the vocabulary; ``special_tokens`` (from
    ``tokenizer_config.json``) names the mask and pad tokens, else ``[MASK]``/``<mask>`` and ``[PAD]``/``<pad>``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        model = data["model"]
        kind, vocab = model["type"], model["vocab"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LrgenError(f"{path}: not a Hugging Face tokenizer.json ({err})") from None
    if kind != "BPE" or model.get("merges"):
        raise LrgenError(f"{path}: a {kind} model{' with merges' if kind == 'BPE' else ''}; lrgen reads character "
                         "tokenizers (BPE without merges)")
    lowercase = _lowercases(data.get("normalizer"), path)
    _check_pre_tokenizer(data.get("pre_tokenizer"), path)
    post = data.get("post_processor")
    if post is not None and not (post.get("type") == "TemplateProcessing"
                                 and [next(iter(p)) for p in post.get("single", [])] == ["Sequence"]):
        raise LrgenError(f"{path}: the post_processor adds special tokens; lrgen reads tokenizers that add none")
    tokens = {**vocab, **{t["content"]: t["id"] for t in data.get("added_tokens", [])}}
    if sorted(tokens.values()) != list(range(len(tokens))):
        raise LrgenError(f"{path}: token ids are not 0..{len(tokens) - 1} without gaps")
    id_to_token = sorted(tokens, key=tokens.__getitem__)
    special_tokens = special_tokens or {}

    def special(role: str, names: tuple[str, ...]) -> int:
        name = special_tokens.get(role) or next((n for n in names if n in tokens), None)
        if name not in tokens:
            raise LrgenError(f"{path}: no {role} ({name or ' or '.join(names)}) in the vocabulary")
        return tokens[name]

    unk = special("unk_token", (model.get("unk_token") or "[UNK]",))
    table = np.full(256, unk, dtype=np.int64)
    for byte in range(128):
        char = chr(byte).lower() if lowercase else chr(byte)
        if char in vocab:
            table[byte] = vocab[char]
    bases = [int(table[ord(b)]) for b in "ACGT"]
    if unk in bases or len(set(bases)) < 4:
        raise LrgenError(f"{path}: the vocabulary does not give A, C, G and T tokens of their own")
    a, c, g, t = bases
    derived = {a: t, t: a, c: g, g: c}
    if complement_map is None:
        complement = [derived.get(i, i) for i in range(len(id_to_token))]
    else:
        cmap = {int(k): int(v) for k, v in complement_map.items()}
        complement = [cmap.get(i, i) for i in range(len(id_to_token))]
        if any(complement[i] != j for i, j in derived.items()):
            raise LrgenError(f"{path}: the checkpoint's complement_map does not pair A/T and C/G of this vocabulary")
    return CharTokenizer(id_to_token, table, mask_id=special("mask_token", ("[MASK]", "<mask>")),
                         pad_id=special("pad_token", ("[PAD]", "<pad>")), unk_id=unk, complement=complement,
                         source=data)


def _lowercases(normalizer: dict[str, Any] | None, path: Path) -> bool:
    """Whether ``normalizer`` lowercases; one that changes ASCII DNA otherwise is refused."""
    if normalizer is None:
        return False
    kind = normalizer.get("type")
    if kind == "Sequence":
        return any([_lowercases(n, path) for n in normalizer.get("normalizers", [])])
    if kind == "Lowercase":
        return True
    if kind in _NO_OP_NORMALIZERS:
        return False
    raise LrgenError(f"{path}: normalizer {kind!r} is not supported (Lowercase, NFC/NFD/NFKC/NFKD, Sequence)")


def _check_pre_tokenizer(pre: dict[str, Any] | None, path: Path) -> None:
    """Refuse pre-tokenizers other than whitespace splits (which leave a DNA string whole)."""
    if pre is None:
        return
    kind = pre.get("type")
    if kind == "Sequence":
        for p in pre.get("pretokenizers", []):
            _check_pre_tokenizer(p, path)
    elif kind not in ("Whitespace", "WhitespaceSplit"):
        raise LrgenError(f"{path}: pre_tokenizer {kind!r} is not supported (Whitespace, WhitespaceSplit, Sequence)")


class KmerTokenizer:
    """Nucleotide Transformer v2 k-mer tokenizer (k=6: vocab 4,107).

    Vocabulary: ``<unk> <pad> <mask> <cls> <eos> <bos>`` (ids 0..5), the 4^k k-mers over ``A T C G`` in
    lexicographic order of that alphabet (``AAAAAA`` = 6, ``AAAAAT`` = 7, ...), then ``A T C G N``.
    Tokenisation: the sequence (uppercased, non-ACGT -> N) is cut at every N; each N-free run is split into
    non-overlapping k-mers from its left end and its tail shorter than k becomes single-nucleotide tokens;
    each N is one token. With ``prepend_cls`` (the published NTv2 checkpoints) :meth:`encode` puts ``<cls>``
    first, as their tokenizer does; :meth:`tokenize` always gives the sequence's own tokens with their spans (an
    NTv2 model given ids without ``<cls>`` adds it itself and drops its output).
    """

    kind = "kmer"
    per_base = False
    complement = None  # k-mer ids have no per-token complement

    UNK_ID = 0
    PAD_ID = 1
    MASK_ID = 2
    CLS_ID = 3
    EOS_ID = 4
    BOS_ID = 5
    SPECIAL_TOKENS = ("<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>")
    ALPHABET = "ATCG"

    def __init__(self, k: int = 6, prepend_cls: bool = False):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.prepend_cls = prepend_cls
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

    @classmethod
    def from_vocab_txt(cls, path: str | Path, prepend_cls: bool = True) -> "KmerTokenizer":
        """The tokenizer of an NTv2 ``vocab.txt``, which must be this vocabulary for some k (line by line)."""
        path = Path(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as err:
            raise LrgenError(f"{path}: cannot read ({err.strerror})") from None
        n_kmers = len(lines) - len(cls.SPECIAL_TOKENS) - 5
        k = round(math.log(n_kmers, 4)) if n_kmers > 0 else 0
        if k < 1 or 4**k != n_kmers:
            raise LrgenError(f"{path}: {len(lines)} lines is not an NTv2 k-mer vocabulary (11 + 4^k)")
        tokenizer = cls(k, prepend_cls)
        for i, (line, expected) in enumerate(zip(lines, tokenizer.vocab)):
            if line != expected:
                raise LrgenError(f"{path}: line {i + 1} is {line!r}, the NTv2 {k}-mer vocabulary has {expected!r}")
        return tokenizer

    def save(self, directory: str | Path) -> None:
        """Write ``vocab.txt`` (one token a line, in id order)."""
        (Path(directory) / VOCAB_TXT).write_text("\n".join(self.vocab) + "\n")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KmerTokenizer) and (self.k, self.prepend_cls) == (other.k, other.prepend_cls)

    __hash__ = None  # type: ignore[assignment]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def kmer_ids(self) -> range:
        """Ids of the 4^k whole k-mers."""
        return range(self._kmer_offset, self._single_offset)

    @property
    def nucleotide_ids(self) -> tuple[int, int, int, int]:
        """Ids of the single-base tokens A, C, G, T."""
        return tuple(self.token_to_id[b] for b in "ACGT")  # type: ignore[return-value]

    @property
    def n_id(self) -> int:
        return self.N_ID

    @property
    def unk_id(self) -> int:
        return self.UNK_ID

    @property
    def mask_id(self) -> int:
        return self.MASK_ID

    @property
    def pad_id(self) -> int:
        return self.PAD_ID

    @property
    def cls_id(self) -> int:
        return self.CLS_ID

    def reverse_complement_ids(self, ids: torch.Tensor) -> torch.Tensor:
        raise LrgenError("k-mer ids have no per-token reverse complement: reverse-complement the sequence and "
                         "tokenize it")

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
        """Token ids of ``seq`` as a 1-D LongTensor, ``<cls>`` first when ``prepend_cls``."""
        ids = torch.from_numpy(self.tokenize(seq)[0])
        return torch.cat([torch.tensor([self.CLS_ID]), ids]) if self.prepend_cls else ids

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
    """Turns a window string into ``(ids, positions)`` with a model's tokenizer: the sequence's own tokens (no
    ``<cls>``: an NTv2 model that wants it adds it) and ``positions``, the offset in the window (bp) at which each
    token starts, so one pooling serves one-token-per-base and 6-mer models. ``pad_id`` pads ragged rows."""

    def __init__(self, tokenizer: CharTokenizer | KmerTokenizer) -> None:
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_id

    def __call__(self, seq: str) -> tuple[torch.Tensor, torch.Tensor]:
        ids, starts, _ = self.tokenizer.tokenize(seq)
        return torch.from_numpy(ids), torch.from_numpy(starts)
