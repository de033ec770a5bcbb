"""What every lrgen language model offers the rest of the package."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from lrgen.models.scan import ScanRunner, run_whole
from lrgen.tokenizer import CHAR_TOKENIZER, CharTokenizer, KmerTokenizer


class LanguageModel(nn.Module):
    """Base class of the model families.

    ``model(input_ids)`` returns MLM logits ``(B, L, V)`` whose columns follow the tokenizer ids;
    ``model.embed(input_ids)`` returns the last hidden states ``(B, L, H)``. Streamable families route every
    sequence-mixer direction through ``runner`` (see :mod:`lrgen.models.scan`), which the engine replaces to stream.
    ``model.tokenizer`` turns sequences into the ids the model reads: the family's default (:meth:`default_tokenizer`)
    or, for a loaded checkpoint, the checkpoint's own.
    """

    family: ClassVar[str]
    tokenizer_kind: ClassVar[str] = "char"  # "char" (one token per base) or "kmer" (NTv2 6-mers)
    streamable: ClassVar[bool] = True
    rc_equivariant: ClassVar[bool] = False  # True for Caduceus-PS
    # (submodule class, method) pairs of position-wise work that lrgen.models.compiled.compile_position_wise compiles
    position_wise: ClassVar[tuple[tuple[type[nn.Module], str], ...]] = ()

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.tokenizer: CharTokenizer | KmerTokenizer = self.default_tokenizer(config)

    @classmethod
    def default_tokenizer(cls, config) -> CharTokenizer | KmerTokenizer:
        """The tokenizer of a model of ``config`` whose checkpoint brings none: lrgen's character tokenizer."""
        return CHAR_TOKENIZER

    def forward(self, input_ids: Tensor, runner: ScanRunner = run_whole) -> Tensor:
        raise NotImplementedError

    def embed(self, input_ids: Tensor, runner: ScanRunner = run_whole) -> Tensor:
        raise NotImplementedError

    @property
    def hidden_size(self) -> int:
        """Width H of :meth:`embed`'s output."""
        raise NotImplementedError

    def num_parameters(self) -> int:
        """Parameters counted once even when tied."""
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
