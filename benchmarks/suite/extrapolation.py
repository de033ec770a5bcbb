"""Zero-shot extrapolation: MLM perplexity per base on the held-out region at each ``--contexts`` length.

Every model and context is one stage (one :func:`lrgen.pretrain.evaluate.evaluate_mlm` call) over the same
``--windows`` window centres, drawn for the largest context (``centre_span``), so every cell of the table compares
the same DNA; each row carries a bootstrap interval over windows. Caduceus-PS and Hawk stream through the engine;
NTv2 runs whole windows up to ``--ntv2-max-context`` (its attention is quadratic in length), and running out of GPU
memory is recorded as that row's result (longer contexts are then skipped). A stage starts only when its estimated
time fits before the deadline: the rate of the model's finished stages (bases per second; for NTv2 bases × context,
the attention's share), else its training rate.
"""

from __future__ import annotations

import time

from lrgen.pretrain.evaluate import MlmOptions, evaluate_mlm
from lrgen.sizes import format_size

from suite.clock import OutOfTime, estimate_seconds
from suite.context import Suite, log

OVERHEAD = 5.0  # seconds to load a model and its first kernels


def run_extrapolation(suite: Suite) -> None:
    a = suite.args
    for name in suite.names:
        for context in a.contexts:
            key = ("mlm", name, str(context))
            if suite.state.get(*key) is not None:
                continue
            skip = _skip_reason(suite, name, context)
            if skip is not None:
                suite.state.put(*key, value={"context": context, "error": skip})
                continue
            estimate = estimate_seconds(_work(suite, name, context), _done(suite, name), _rate(suite, name), OVERHEAD)
            if not suite.deadline.fits(estimate):
                log(f"mlm {name} at {format_size(context)}: estimated {estimate:,.0f} s, "
                    f"{max(suite.deadline.remaining(), 0):,.0f} s left")
                raise OutOfTime()
            started = time.perf_counter()
            result = evaluate_mlm(MlmOptions(
                model=str(suite.trained_model(name)), fasta=[str(suite.heldout)], context=[context],
                windows=a.windows, chunk_size=a.chunk_size, device=a.device, seed=a.seed, centre_span=max(a.contexts)))
            row = {**result["results"][0], "family": result["family"], "beyond_trained_context": context > a.context,
                   "wall_seconds": time.perf_counter() - started, "estimated_seconds": estimate}
            suite.state.put(*key, value=row)
            shown = (f"perplexity/base {row['perplexity_per_base']:.4f} [{row['perplexity_per_base_ci'][0]:.4f}–"
                     f"{row['perplexity_per_base_ci'][1]:.4f}], accuracy {row['accuracy']:.4f}"
                     if "perplexity_per_base" in row else row.get("error"))
            log(f"mlm {name} at {format_size(context)}: {shown} ({row['wall_seconds']:.1f} s, "
                f"estimated {estimate:.0f} s)")


def _skip_reason(suite: Suite, name: str, context: int) -> str | None:
    if name == "ntv2" and context > suite.args.ntv2_max_context:
        return f"not run: beyond --ntv2-max-context {format_size(suite.args.ntv2_max_context)}"
    for row in (suite.state.get("mlm", name) or {}).values():
        if row["context"] < context and row.get("error") == "out of GPU memory":
            return f"skipped after out of GPU memory at {format_size(row['context'])}"
    return None


def _work(suite: Suite, name: str, context: int) -> float:
    """Bases to evaluate (NTv2: times the context over the training length, the attention's growth)."""
    bases = suite.args.windows * context
    return bases * max(1.0, context / suite.args.context) if name == "ntv2" else bases


def _done(suite: Suite, name: str) -> list[tuple[float, float]]:
    rows = (suite.state.get("mlm", name) or {}).values()
    return [(_work(suite, name, r["context"]), r["wall_seconds"]) for r in rows if "wall_seconds" in r]


def _rate(suite: Suite, name: str) -> float:
    """Work per second before any measurement: the training rate (a forward alone is faster: a safe guess)."""
    return suite.state.get("train", name, "bases_per_s")
