"""The CPU fast path (backend ``cpu``) against the PyTorch reference, timed in the same run: (a) the raw kernels at
the shapes the models use, (b) a streamed forward of the bundled ``caduceus-ps-demo`` model. Prints Markdown tables
with the ratios.

    python benchmarks/bench_cpu.py                        # torch's default thread count
    python benchmarks/bench_cpu.py --threads 1 --tokens 16k
    python benchmarks/bench_cpu.py --floor                # also the forward with its selective scans skipped

Each timing is the median of ``--repeats`` runs after a warm-up, reference and fast path alternating so that load
from other processes hits both alike. Wall time is what counts; the CPU time beside it (all threads) shows when the
machine was shared (CPU time well under threads × wall).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import torch

from mdtable import print_table

from lrgen import load_model
from lrgen.engine import stream
from lrgen.ops import causal_conv1d, linear_scan, selective_scan
from lrgen.sizes import parse_size


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each fn, under its backend, interleaved."""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for name, fn in fns.items():
        with backend(name):
            fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            with backend(name):
                runs[name].append(timed(fn))
    return {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
            for name, rs in runs.items()}


class backend:
    """``LRGEN_BACKEND`` set for the block."""

    def __init__(self, name: str) -> None:
        self.name, self.saved = name, os.environ.get("LRGEN_BACKEND")

    def __enter__(self) -> None:
        os.environ["LRGEN_BACKEND"] = self.name

    def __exit__(self, *exc) -> None:
        if self.saved is None:
            del os.environ["LRGEN_BACKEND"]
        else:
            os.environ["LRGEN_BACKEND"] = self.saved


def kernels(tokens: int, batch: int) -> dict[str, Callable[[], object]]:
    """One call of each kernel at the bundled model's shapes (d_inner 384, state 16) and Hawk-50m's (d 512)."""
    g = torch.Generator().manual_seed(0)
    d, n = 384, 16
    rows = torch.randn(batch, tokens, 2 * d + 12 + 2 * n, generator=g)  # channels-contiguous, as the model's
    u, z = rows[..., :d].transpose(1, 2), rows[..., d : 2 * d].transpose(1, 2)
    delta = rows[..., 2 * d : 2 * d + 12].repeat(1, 1, 32).transpose(1, 2)
    B, C = rows[..., -2 * n : -n].transpose(1, 2), rows[..., -n:].transpose(1, 2)
    A = -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1)  # the official init
    D, bias = torch.ones(d), torch.full((d,), -4.0)
    a = torch.rand(batch, tokens, 512, generator=g) * 0.1 + 0.9
    b = torch.randn(batch, tokens, 512, generator=g)
    w = torch.randn(d, 4, generator=g)
    return {
        f"selective scan {batch}×{d}×{n}, {tokens:,} positions, reverse":
            lambda: selective_scan(u, delta, A, B, C, D, z, bias, True, None, None, True),
        f"causal conv1d {batch}×{d}, width 4, {tokens:,} positions":
            lambda: causal_conv1d(u, w, D, None, "silu"),
        f"RG-LRU linear scan {batch}×512, {tokens:,} positions":
            lambda: linear_scan(a, b),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--tokens", default="32k", help="positions of the streamed forward")
    parser.add_argument("--chunk-size", default="4096", help="chunk of the streamed forward (the CPU default)")
    parser.add_argument("--kernel-tokens", default="4096", help="positions of one kernel call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--floor", action="store_true",
                        help="also time the forward with every selective scan replaced by a copy of its input: what "
                             "no scan kernel can go below")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs\n")
    torch.set_grad_enabled(False)
    rows = []
    for batch in (1, 4):
        for name, fn in kernels(parse_size(args.kernel_tokens), batch).items():
            t = compare({"reference": fn, "cpu": fn}, args.repeats)
            rows.append([name, *_cells(t)])
    model = load_model("caduceus-ps-demo").eval()
    tokens, chunk = parse_size(args.tokens), parse_size(args.chunk_size)
    ids = torch.randint(7, 11, (1, tokens), generator=torch.Generator().manual_seed(0))
    run = lambda: stream(model, ids, chunk_size=chunk)  # noqa: E731
    t = compare({"reference": run, "cpu": run}, args.repeats)
    rows.append([f"caduceus-ps-demo streamed forward, {tokens:,} positions, chunk {chunk:,}", *_cells(t)])
    rows.append(["  (positions per second)", f"{tokens / t['reference'][0]:,.0f}", "", f"{tokens / t['cpu'][0]:,.0f}",
                 "", ""])
    if args.floor:
        wall, cpu = _without_scans(run, args.repeats)
        rows.append([f"  the same with the selective scans skipped: {wall:.2f} s ({cpu:.2f} CPU s), "
                     f"{tokens / wall:,.0f} positions/s", "", "", "", "", ""])
    print_table(["what", "reference s", "reference CPU s", "cpu s", "cpu CPU s", "speed-up"], rows,
                align="---:")


def _without_scans(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``run`` with Caduceus's selective scan replaced by ``y = u`` (zero state)."""
    import lrgen.models.caduceus as caduceus

    def skip(u, delta, A, *args, **kwargs):
        return u.clone(), u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float32)

    kept, caduceus.selective_scan = caduceus.selective_scan, skip
    try:
        run()
        runs = [timed(run) for _ in range(repeats)]
    finally:
        caduceus.selective_scan = kept
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _cells(t: dict[str, tuple[float, float]]) -> list[str]:
    (ref, ref_cpu), (fast, fast_cpu) = t["reference"], t["cpu"]
    return [f"{ref:.4f}", f"{ref_cpu:.4f}", f"{fast:.4f}", f"{fast_cpu:.4f}", f"{ref / fast:.1f}×"]


if __name__ == "__main__":
    main()
