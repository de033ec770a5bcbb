"""Why NTv2 keeps (or loses) its perplexity beyond its training length: where its attention goes, and how far its
rotary frequencies turned within a training window.

For the trained NTv2 and its untrained control, at each ``--contexts`` length up to ``--ntv2-max-context``, over
``--attention-windows`` windows centred evenly across the held-out region (the same centres for every context):
per layer and head, over ``--attention-queries`` query tokens spread over the window's middle half, the mean
query–key distance (bp), the attention mass on keys farther than any two tokens of a training window are apart
(distances training never showed the model) and the attention entropy (nats; ``log(keys)`` is uniform attention).
Attention that stays local and sharp at 100× the training length explains a transformer that does not collapse;
mass spread to unseen distances, or entropy growing with the number of keys, is how it would.

The rotary table is arithmetic on the config: rotate() turns channel pair ``j`` by ``position · base^(-j / half)``,
so pair ``j`` has a wavelength of ``2π · base^(j / half)`` tokens; a pair that makes less than one turn across a
training window meets rotation angles at longer distances that training never produced.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from lrgen.errors import LrgenError
from lrgen.models.ntv2 import NTv2Model, rotate
from lrgen.models.registry import load_checkpoint
from lrgen.pretrain.data import load_species
from lrgen.sizes import format_size

from suite.clock import OutOfTime, estimate_seconds
from suite.context import Suite, log

OVERHEAD = 5.0  # seconds to load a model and its first kernels
STATS = ("distance_bp", "far_mass", "entropy")


def run_attention(suite: Suite) -> None:
    """The attention statistics of the trained and untrained NTv2 at each context it is evaluated at."""
    if "ntv2" not in suite.names:
        return
    a = suite.args
    if suite.state.get("rope") is None:
        suite.state.put("rope", value=rope_table(load_checkpoint(suite.init["ntv2"]), a.context, a.contexts))
    contexts = [c for c in a.contexts if c <= a.ntv2_max_context]
    seq = None  # the held-out sequence, read once for every stage left
    for weights in ("trained", "untrained"):
        for context in contexts:
            key = ("attention", weights, str(context))
            if suite.state.get(*key) is not None:
                continue
            work = a.attention_windows * context * max(1.0, context / a.context)  # as the extrapolation's NTv2 work
            estimate = estimate_seconds(work, _done(suite), _rate(suite), OVERHEAD)
            if not suite.deadline.fits(estimate):
                log(f"attention ntv2 {weights} at {format_size(context)}: estimated {estimate:,.0f} s, "
                    f"{max(suite.deadline.remaining(), 0):,.0f} s left")
                raise OutOfTime()
            started = time.perf_counter()
            path = suite.trained_model("ntv2") if weights == "trained" else suite.init["ntv2"]
            model = load_checkpoint(path).to(suite.device).eval()
            seq = load_species(str(suite.heldout)).contigs[0].seq if seq is None else seq
            layers = window_statistics(model, seq, context, a)
            k = model.tokenizer.k
            row = {"context": context, "work": work, "layers": layers, "far_bp": (a.context // k - 1) * k,
                   "wall_seconds": time.perf_counter() - started, "estimated_seconds": estimate}
            suite.state.put(*key, value=row)
            far = max(head["far_mass"] for layer in layers for head in layer)
            log(f"attention ntv2 {weights} at {format_size(context)}: largest head mass beyond the training window "
                f"{far:.3f} ({row['wall_seconds']:.1f} s)")


def window_statistics(model: NTv2Model, seq: np.ndarray, context: int, a: argparse.Namespace
                      ) -> list[list[dict[str, float]]]:
    """Per layer, per head: :data:`STATS` averaged over the sampled queries of ``a.attention_windows`` windows of
    ``context`` bases centred evenly across ``seq`` (the held-out region's bases)."""
    if seq.size < context:
        raise LrgenError(f"the held-out region ({seq.size:,} bp) is shorter than the context {context:,}")
    span = seq.size - context
    starts = [round(span * (i + 0.5) / a.attention_windows) for i in range(a.attention_windows)]
    k = model.tokenizer.k
    far_tokens = a.context // k - 1  # the largest query-key distance inside a training window, in tokens
    totals: list[list[dict[str, float]]] | None = None
    for start in starts:
        text = seq[start : start + context].tobytes().decode("ascii")
        ids = model.tokenizer.encode(text)[None].to(next(model.parameters()).device)
        stats = attention_statistics(model, ids, a.attention_queries, far_tokens, k)
        if totals is None:
            totals = [[dict.fromkeys(STATS, 0.0) for _ in layer] for layer in stats]
        for total_layer, layer in zip(totals, stats):
            for total, head in zip(total_layer, layer):
                for s in STATS:
                    total[s] += head[s] / len(starts)
    return totals or []


@torch.no_grad()
def attention_statistics(model: NTv2Model, ids: torch.Tensor, queries: int, far_tokens: int,
                         bases_per_token: int) -> list[list[dict[str, float]]]:
    """Per layer and head of ``model`` on one window ``ids (1, L)``: the mean query–key distance in bp, the mass on
    keys more than ``far_tokens`` away and the entropy, over up to ``queries`` query tokens evenly spread over the
    middle half of the window (the layers run whole, as NTv2's forward does)."""
    length = ids.shape[1]
    positions = torch.arange(length, device=ids.device)
    picked = torch.linspace(length / 4, 3 * length / 4 - 1, min(queries, max(length // 2, 1)),
                            device=ids.device).round().long().unique()
    distance = (positions[None, :] - picked[:, None]).abs().float()  # (Q, L)
    far = (distance > far_tokens).float()
    x = model.embedding(ids)
    result = []
    for layer in model.layers:
        attn = layer.attn
        q, k, _ = attn.qkv(layer.norm_attn(x)).unflatten(-1, (3, attn.n_heads, -1)).permute(2, 0, 3, 1, 4)
        q = rotate(q[:, :, picked], picked, attn.rope_base).float()
        k = rotate(k, positions, attn.rope_base).float()
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)[0]  # (H, Q, L)
        entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1).mean(-1)
        mean_distance = (weights * distance).sum(-1).mean(-1) * bases_per_token
        far_mass = (weights * far).sum(-1).mean(-1)
        result.append([{"distance_bp": float(d), "far_mass": float(f), "entropy": float(e)}
                       for d, f, e in zip(mean_distance, far_mass, entropy)])
        x = layer(x, None)
    return result


def rope_table(model: NTv2Model, context: int, contexts: list[int]) -> dict:
    """Each rotary channel pair's wavelength (bp) and the turns it makes across the longest distance of a window of
    each of ``contexts`` (``context``: the training window), from the model's config."""
    config = model.config
    half = config.d_model // config.n_heads // 2
    k = model.tokenizer.k
    pairs = []
    for j in range(half):
        wavelength = 2 * math.pi * config.rope_base ** (j / half)  # tokens
        pairs.append({"pair": j, "wavelength_bp": wavelength * k,
                      "turns": {str(c): (c // k - 1) / wavelength for c in [context, *contexts]}})
    unturned = sum(p["turns"][str(context)] < 1 for p in pairs)
    return {"pairs": pairs, "rope_base": config.rope_base, "head_dim": 2 * half, "unturned_in_training": unturned}


def _done(suite: Suite) -> list[tuple[float, float]]:
    rows = [r for by_context in (suite.state.get("attention") or {}).values() for r in by_context.values()]
    return [(r["work"], r["wall_seconds"]) for r in rows]


def _rate(suite: Suite) -> float:
    """Work per second before any measurement: NTv2's extrapolation rows (the same work measure), else training."""
    rows = [r for r in (suite.state.get("mlm", "ntv2") or {}).values() if "wall_seconds" in r]
    if rows:
        windows = suite.args.windows
        return sum(windows * r["context"] * max(1.0, r["context"] / suite.args.context) for r in rows) / sum(
            r["wall_seconds"] for r in rows)
    return suite.state.get("train", "ntv2", "bases_per_s")
