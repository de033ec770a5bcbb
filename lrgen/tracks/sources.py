"""What a model contributes to ``lrgen predict``: its track names, their resolution and the values of a window batch.

Two kinds of model write genome tracks:

- a language model (Caduceus or Hawk, per base, streamable): the language-model tracks of
  :mod:`lrgen.tracks.lm_tracks`, one value per base;
- a model fine-tuned by ``lrgen finetune`` with a head that writes tracks (:class:`HeadSource`), computed exactly as
  in fine-tuning and evaluation (:class:`lrgen.models.finetuned.FinetunedModel`): a per-bin head (``--task
  tracks``, GLRB ``cage_prediction``) gives one value per bin, the mean of each bin through a linear map per
  track; a centre head (``--task regions``, regulatory elements) gives each window's probabilities (or values) over
  the window's kept interior, by default its pooled centre.

Variant heads predict one value per pair of windows and are refused: see docs/predict.md.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from lrgen.engine.graphs import GraphedStream
from lrgen.errors import LrgenError
from lrgen.models.finetuned import FinetunedModel
from lrgen.models.resolve import ResolvedModel
from lrgen.runtime.device import autocast
from lrgen.tracks.lm_tracks import LM_TRACKS, lm_tracks

#: window length of language-model tracks when none is given
DEFAULT_CONTEXT = 131_072


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name) or "track"


def select_tracks(names: list[str], requested: list[str] | None, label: str) -> list[int]:
    """Indices of the requested tracks (by name or index, first occurrence kept); ``None`` means every track."""
    if not requested:
        return list(range(len(names)))
    index = {n: i for i, n in enumerate(names)}
    chosen: list[int] = []
    for item in requested:
        key = item.strip()
        if key in index:
            i = index[key]
        elif key.isdigit() and int(key) < len(names):
            i = int(key)
        else:
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise LrgenError(f"unknown track {item!r}: {label} writes {len(names)} tracks, by name ({shown}) "
                             f"or index 0-{len(names) - 1}")
        if i not in chosen:
            chosen.append(i)
    return chosen


class LmSource:
    """Per-base language-model tracks of a streamable one-token-per-base model; with ``cuda_graphs``, equal
    batches of windows on a GPU replay one CUDA graph (:class:`lrgen.engine.graphs.GraphedStream`)."""

    resolution = 1
    names = list(LM_TRACKS)

    def __init__(self, model, label: str, device: torch.device, conjoin: bool, cuda_graphs: bool = True) -> None:
        self.model = model.to(device).eval()
        self.label = label
        self.conjoin = conjoin
        self.dtype = torch.bfloat16 if device.type == "cuda" else None
        self.cuda_graphs = cuda_graphs
        self._passes: dict[int, GraphedStream] = {}  # by chunk size: equal batches replay one CUDA graph

    @property
    def default_names(self) -> list[str]:
        return ["logprob"]

    def default_context(self) -> int:
        return DEFAULT_CONTEXT

    def default_flank(self, context: int) -> int:
        return context // 8

    def check_window(self, context: int, flank: int) -> None:
        """Any window is fine for per-base tracks (tiling checks the flank fits)."""

    @torch.no_grad()
    def window_values(self, seqs: list[str], columns: list[int], chunk_size: int) -> np.ndarray:
        """``(B, context, len(columns))`` float32 values of equal-length windows."""
        from lrgen.engine import stream

        tokenizer = self.model.tokenizer
        ids = tokenizer.encode_batch(seqs).to(self.model.device)
        options = dict(chunk_size=chunk_size, output="logits", conjoin=self.conjoin, dtype=self.dtype)
        if not self.cuda_graphs:
            logits = stream(self.model, ids, **options)
        else:  # a replay returns the graph's buffer: used up before the next batch
            if chunk_size not in self._passes:
                self._passes[chunk_size] = GraphedStream(self.model, **options)
            logits = self._passes[chunk_size](ids)
        wanted = tuple(self.names[c] for c in columns)
        values = lm_tracks(logits, ids, tokenizer.nucleotide_ids, wanted)
        return torch.stack([values[n] for n in wanted], dim=-1).float().cpu().numpy()


class HeadSource:
    """Output tracks of a fine-tuned head: per bin (bins pooling), or per window over its kept interior (centre
    pooling; one value per base, the window's probability for a binary head)."""

    def __init__(self, model: FinetunedModel, label: str, device: torch.device, conjoin: bool = False) -> None:
        if conjoin:
            model.spec.conjoin = True  # average with the reverse-complement pass, as lrgen evaluate --conjoin does
        self.model = model.to(device).eval()
        self.device = device
        self.label = label
        self.per_window = model.spec.pooling == "centre"
        self.resolution = 1 if self.per_window else model.spec.bin_bp
        given = list(model.spec.label_names)
        self.names = given if len(given) == model.spec.n_outputs else [f"track{i}" for i in range(model.spec.n_outputs)]

    @property
    def default_names(self) -> list[str]:
        return list(self.names)

    def default_context(self) -> int:
        return self.model.spec.context

    def default_flank(self, context: int) -> int:
        """Bins: an eighth of the window, at least up to the pooled bins; centre: up to the pooled centre, so each
        window's value covers the region it was trained to describe."""
        if self.per_window:
            return self.model.pooled_offset(context)
        flank = context // 8 // self.resolution * self.resolution
        return max(flank, self.model.pooled_offset(context))

    def check_window(self, context: int, flank: int) -> None:
        self.model.check_context(context)
        if self.per_window:
            return
        offset = self.model.pooled_offset(context)
        if flank % self.resolution or flank < offset:
            raise LrgenError(f"--flank {flank} must be a multiple of the model's {self.resolution} bp bins and at least "
                             f"{offset} bp (the model pools only the central bins of a {context} bp window)")

    @torch.no_grad()
    def window_values(self, seqs: list[str], columns: list[int], chunk_size: int) -> np.ndarray:
        """``(B, context // resolution, len(columns))`` float32 values from the window start: per bin (NaN outside
        the pooled bins), or the window's value at every base (centre pooling)."""
        from torch.nn.utils.rnn import pad_sequence

        from lrgen.engine import forward
        from lrgen.tokenizer import Tokens

        context = len(seqs[0])
        tokens = Tokens(self.model.backbone.tokenizer)
        rows = [tokens(s) for s in seqs]
        ids = pad_sequence([r[0] for r in rows], batch_first=True, padding_value=tokens.pad_id).to(self.device)
        positions = pad_sequence([r[1] for r in rows], batch_first=True, padding_value=-1).to(self.device)
        with autocast(self.device):
            hidden = forward(self.model.backbone, ids, "hidden", chunk_size=chunk_size, conjoin=self.model.spec.conjoin)
            features = self.model.pool(hidden, positions, context)
        out = self.model.scores(features)[..., columns].float().cpu().numpy()
        if self.per_window:
            return np.broadcast_to(out[:, None, :], (out.shape[0], context, out.shape[1]))  # read-only view
        values = np.full((len(seqs), context // self.resolution, len(columns)), np.nan, dtype=np.float32)
        first = self.model.pooled_offset(context) // self.resolution
        values[:, first : first + out.shape[1]] = out
        return values


def load_source(resolved: ResolvedModel, device: torch.device, conjoin: bool, cuda_graphs: bool = True):
    """The track source of a resolved model: its head if it has one, else its language-model tracks
    (``cuda_graphs``: see :class:`LmSource`)."""
    if resolved.finetuned is not None:
        resolved.require("track_head", command="predict")
        return HeadSource(resolved.finetuned, resolved.label, device, conjoin)
    resolved.require("per_base", "streamable", command="predict")
    return LmSource(resolved.model, resolved.label, device, conjoin, cuda_graphs)


def track_file_names(source, columns: list[int]) -> list[str]:
    """File-name-safe names of the chosen tracks (distinct)."""
    names = [_file_safe(source.names[c]) for c in columns]
    if len(set(names)) != len(names):
        names = [f"{i}-{n}" for i, n in zip(columns, names)]
    return names
