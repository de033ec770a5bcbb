"""Kernel timings on one GPU: the Triton selective scan, RG-LRU scan and causal conv1d against the PyTorch reference
(and mamba-ssm's selective scan when installed), with achieved memory bandwidth against the card's measured
device-to-device copy bandwidth and, for the selective scan (bound by its exponentials, not by memory), its
special-function (MUFU) operations against the card's measured ``ex2`` throughput. All baselines are measured in the
same run; prints Markdown tables.

    python benchmarks/bench_kernels.py                   # 1M tokens × 512 channels × state 16, bf16
    python benchmarks/bench_kernels.py --sweep           # also try tile shapes of the selective scan
    python benchmarks/bench_kernels.py --sweep-backward --tokens 48000 --batch 4 --channels 1024   # training shape
    python benchmarks/bench_kernels.py --tokens 131072 --channels 512 --state 16
    git show main:lrgen/ops/triton_scan.py > /tmp/scan_main.py
    python benchmarks/bench_kernels.py --baseline /tmp/scan_main.py --tokens 48000 --batch 4 --channels 1024

Bytes counted are the fewest a kernel must move: each input read once, each output written once. Times are medians
of ``triton.testing.do_bench``. The reference is timed on a shorter sequence (``--ref-tokens``) and scaled per token.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools

import torch
import triton
import triton.language as tl
import triton.testing

from mdtable import print_table

from lrgen.ops import triton_scan
from lrgen.ops.reference import causal_conv1d_ref, linear_scan_ref, selective_scan_ref
from lrgen.ops.triton_conv import causal_conv1d_triton
from lrgen.ops.triton_lru import linear_scan_triton
from lrgen.ops.triton_scan import selective_scan_triton


def bench(fn, rep_ms: int = 200) -> float:
    """Median milliseconds of fn()."""
    return triton.testing.do_bench(fn, warmup=25, rep=rep_ms, return_mode="median")


@triton.jit
def _ex2(x):
    return tl.inline_asm_elementwise("ex2.approx.ftz.f32 $0, $1;", "=f,f", [x], dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def _ex2_chains(x_ptr, y_ptr, ITERS: tl.constexpr, BLOCK: tl.constexpr):
    """ITERS rounds of 2^(-x/2) on eight independent values per element: nothing but MUFU work in flight."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    a = tl.load(x_ptr + offs)
    b, c, d, e, f, g, h = a + 0.125, a + 0.25, a + 0.375, a + 0.5, a + 0.625, a + 0.75, a + 0.875
    for _ in range(ITERS):
        a, b, c, d = _ex2(a * -0.5), _ex2(b * -0.5), _ex2(c * -0.5), _ex2(d * -0.5)
        e, f, g, h = _ex2(e * -0.5), _ex2(f * -0.5), _ex2(g * -0.5), _ex2(h * -0.5)
    tl.store(y_ptr + offs, a + b + c + d + e + f + g + h)


def mufu_throughput() -> float:
    """``ex2.approx.f32`` results per second over the whole GPU (MUFU instructions all have this rate)."""
    block, iters = 256, 4096
    n = torch.cuda.get_device_properties(0).multi_processor_count * 16 * block
    x = torch.rand(n, device="cuda")
    y = torch.empty_like(x)
    ms = bench(lambda: _ex2_chains[(n // block,)](x, y, ITERS=iters, BLOCK=block, num_warps=4), rep_ms=100)
    return n * 8 * iters / (ms * 1e-3)


def copy_bandwidth() -> float:
    """Device-to-device copy of 2 GiB: bytes read + written per second."""
    src = torch.randn(2**29, device="cuda")
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src))
    return 2 * src.numel() * 4 / (ms * 1e-3)


def ssm_inputs(b, d, n, length, dtype, layout):
    def seq(c, scale=1.0, shift=0.0):
        if layout == "length_major":
            x = torch.randn(b, length, c, device="cuda").transpose(1, 2)
        else:
            x = torch.randn(b, c, length, device="cuda")
        return (x * scale + shift).to(dtype)

    u, z, delta = seq(d), seq(d), seq(d, 0.5, -2.0)
    B, C = seq(n), seq(n)
    A = -torch.exp(torch.randn(d, n, device="cuda") * 0.5)
    D, bias = torch.randn(d, device="cuda"), torch.randn(d, device="cuda") * 0.1
    state = torch.randn(b, d, n, device="cuda")
    return u, delta, A, B, C, D, z, bias, state


def ssm_bytes(b, d, n, length, esize):
    return b * length * (4 * d + 2 * n) * esize  # u, delta, z, B, C in; y out


def ssm_mufu_ops(b, d, n, length):
    """MUFU operations of the Triton forward: per position and channel n decays and a softplus (ex2, lg2) in each of
    its two passes (chunk states, then outputs) and the SiLU gate (ex2, rcp) in the second."""
    return b * length * d * (2 * n + 6)


def scan_table(args, bw, mufu):
    b, d, n, L = args.batch, args.channels, args.state, args.tokens // args.batch
    dtype = getattr(torch, args.dtype)
    rows = []
    have_mamba = importlib.util.find_spec("mamba_ssm") is not None
    ref_len = min(L, args.ref_tokens // b)
    ref_ms = None
    for layout in ("length_major", "channels_first"):
        x = ssm_inputs(b, d, n, L, dtype, layout)
        fwd = bench(lambda: selective_scan_triton(*x[:8], True, x[8]))
        leaves = [t.detach().requires_grad_() for t in x]
        y, last = selective_scan_triton(*leaves[:8], True, leaves[8])
        dy = torch.randn_like(y)
        bwd = bench(lambda: torch.autograd.grad(y, leaves, dy, retain_graph=True))
        if ref_ms is None:
            xr = ssm_inputs(b, d, n, ref_len, dtype, layout)
            ref_ms = bench(lambda: selective_scan_ref(*xr[:8], True, xr[8]), rep_ms=1) * L / ref_len
        gbs = ssm_bytes(b, d, n, L, x[0].element_size()) / (fwd * 1e-3)
        ops = ssm_mufu_ops(b, d, n, L) / (fwd * 1e-3)
        rows.append([f"triton ({layout})", f"{fwd:.2f}", f"{bwd:.2f}", f"{gbs / 1e9:,.0f}", f"{gbs / bw:.0%}",
                     f"{ops / mufu:.0%}", f"{ref_ms / fwd:.0f}×"])
        if have_mamba and layout == "channels_first":
            from lrgen.ops.mamba_backend import selective_scan_mamba

            mfwd = bench(lambda: selective_scan_mamba(*x[:8], True, None))
            rows.append(["mamba-ssm (channels_first, no state)", f"{mfwd:.2f}", "", "", "", "", f"{ref_ms / mfwd:.0f}×"])
            rows[-2][-1] += f" (mamba/triton {mfwd / fwd:.2f}×)"
    rows.append([f"reference (PyTorch, timed at {ref_len:,} tokens, scaled)", f"{ref_ms:.0f}", "", "", "", "", "1×"])
    title = (f"Selective scan, {b} × {L:,} tokens × {d} channels × state {n}, {args.dtype} in/out, fp32 state, "
             f"with D, z gate, delta bias + softplus, initial state; peer (mamba-ssm CUDA, H100) 12.3 ms fwd")
    table(title, ["kernel", "fwd ms", "bwd ms", "fwd GB/s", "of copy BW", "fwd MUFU of peak", "speed-up vs reference"],
          rows)
    floor = ssm_mufu_ops(b, d, n, L) / mufu * 1e3
    print(f"\nThe forward's {2 * n + 6} MUFU operations per position and channel take at least {floor:.2f} ms at the "
          f"measured {mufu / 1e12:.2f} T/s: the floor of this two-pass kernel.")


def sweep(args):
    """Try forward and backward launch shapes of the selective scan; keep the fastest in the module settings."""
    b, d, n, L = args.batch, args.channels, args.state, args.tokens // args.batch
    dtype = getattr(torch, args.dtype)
    ts = triton_scan

    def fwd_ms(x):
        try:
            return bench(lambda: selective_scan_triton(*x[:8], True, x[8]), rep_ms=50)
        except Exception as err:  # e.g. out of registers/shared memory for a shape
            return type(err).__name__

    rows, best = [], {}
    for layout, bds, warps in (("length_major", (32, 64, 128), (1, 2)), ("channels_first", (16, 32, 64), (2,))):
        x = ssm_inputs(b, d, n, L, dtype, layout)
        for bd, nw in itertools.product(bds, warps):
            ts.BLOCK_D[layout], ts.NUM_WARPS["forward"] = bd, nw
            ms = fwd_ms(x)
            rows.append([layout, bd, nw, ts.UNROLL, ts.PROGRAMS_PER_SM["forward"], ts.NUM_STAGES["forward"],
                         ms if isinstance(ms, str) else f"{ms:.2f}"])
            if not isinstance(ms, str) and ms < best.get(layout, (1e9,))[0]:
                best[layout] = (ms, bd, nw)
        ts.BLOCK_D[layout] = best[layout][1]
    ts.NUM_WARPS["forward"] = best["length_major"][2]
    x = ssm_inputs(b, d, n, L, dtype, "length_major")
    top = (best["length_major"][0], ts.UNROLL, ts.PROGRAMS_PER_SM["forward"], ts.NUM_STAGES["forward"])
    for unroll, pps, stages in ((1, 8, 3), (4, 8, 3), (2, 16, 3), (2, 32, 3), (2, 8, 1), (2, 8, 2), (2, 8, 4)):
        ts.UNROLL, ts.PROGRAMS_PER_SM["forward"], ts.NUM_STAGES["forward"] = unroll, pps, stages
        ms = fwd_ms(x)
        rows.append(["length_major", ts.BLOCK_D["length_major"], ts.NUM_WARPS["forward"], unroll, pps, stages,
                     ms if isinstance(ms, str) else f"{ms:.2f}"])
        if not isinstance(ms, str) and ms < top[0]:
            top = (ms, unroll, pps, stages)
    ts.UNROLL, ts.PROGRAMS_PER_SM["forward"], ts.NUM_STAGES["forward"] = top[1:]
    table("Selective-scan forward launch sweep (ms)",
          ["layout", "BLOCK_D", "num_warps", "UNROLL", "PROGRAMS_PER_SM", "stages", "ms"], rows)
    sweep_backward(args)


def sweep_backward(args):
    """Try launch shapes of the selective-scan backward (length-major inputs); keep the fastest in the settings."""
    b, d, n, L = args.batch, args.channels, args.state, args.tokens // args.batch
    ts = triton_scan
    x = ssm_inputs(b, d, n, L, getattr(torch, args.dtype), "length_major")
    leaves = [t.detach().requires_grad_() for t in x]
    y, _ = selective_scan_triton(*leaves[:8], True, leaves[8])
    dy = torch.randn_like(y)

    def trial(bd, nw, k, pps, stages):
        ts.BLOCK_D["backward"], ts.NUM_WARPS["backward"] = bd, nw
        ts.CHECKPOINT_EVERY, ts.PROGRAMS_PER_SM["backward"], ts.NUM_STAGES["backward"] = k, pps, stages
        try:
            ms = bench(lambda: torch.autograd.grad(y, leaves, dy, retain_graph=True), rep_ms=50)
        except Exception as err:
            rows.append([bd, nw, k, pps, stages, type(err).__name__])
            return
        rows.append([bd, nw, k, pps, stages, f"{ms:.2f}"])
        if ms < top[0]:
            top[:] = [ms, (bd, nw, k, pps, stages)]

    rows: list = []
    top: list = [1e9, None]
    base = (ts.BLOCK_D["backward"], ts.NUM_WARPS["backward"], ts.CHECKPOINT_EVERY, ts.PROGRAMS_PER_SM["backward"],
            ts.NUM_STAGES["backward"])
    trial(*base)
    for bd, k, pps in itertools.product((32, 64), (8, 16, 32), (16, 32, 64)):
        trial(bd, base[1], k, pps, base[4])
    best = top[1]
    for nw, stages in ((2, best[4]), (4, best[4]), (best[1], 2), (best[1], 4)):
        trial(best[0], nw, best[2], best[3], stages)
    bd, nw, k, pps, stages = top[1]
    ts.BLOCK_D["backward"], ts.NUM_WARPS["backward"] = bd, nw
    ts.CHECKPOINT_EVERY, ts.PROGRAMS_PER_SM["backward"], ts.NUM_STAGES["backward"] = k, pps, stages
    table(f"Selective-scan backward launch sweep, length_major, {b} × {L:,} × {d} × {n} (ms; first row: the "
          "settings in the module)", ["BLOCK_D", "num_warps", "CHECKPOINT_EVERY", "PROGRAMS_PER_SM", "stages", "ms"],
          rows)


def load_baseline(path: str):
    """Another version of ``lrgen/ops/triton_scan.py`` (e.g. ``git show REV:lrgen/ops/triton_scan.py``) as a module."""
    spec = importlib.util.spec_from_file_location("baseline_triton_scan", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def baseline_table(args):
    """The selective scan of this tree against ``--baseline`` on the same length-major inputs: forward and backward
    medians, and the largest relative difference of any gradient."""
    b, d, n, L = args.batch, args.channels, args.state, args.tokens // args.batch
    x = ssm_inputs(b, d, n, L, getattr(torch, args.dtype), "length_major")
    rows, grads = [], {}
    for name, scan in (("baseline", load_baseline(args.baseline).selective_scan_triton),
                       ("this tree", selective_scan_triton)):
        leaves = [t.detach().requires_grad_() for t in x]
        y, _ = scan(*leaves[:8], True, leaves[8])
        dy = torch.randn(y.shape, device=y.device, generator=torch.Generator(y.device).manual_seed(1)).to(y.dtype)
        fwd = bench(lambda: scan(*x[:8], True, x[8]))
        bwd = bench(lambda: torch.autograd.grad(y, leaves, dy, retain_graph=True))
        grads[name] = torch.autograd.grad(y, leaves, dy)
        rows.append([name, f"{fwd:.3f}", f"{bwd:.3f}"])
    base_bwd = float(rows[0][2])
    rows[0].append("1.00×")
    rows[1].append(f"{base_bwd / float(rows[1][2]):.2f}×")
    names = ["u", "delta", "A", "B", "C", "D", "z", "bias", "state"]
    diffs = [((g1.float() - g0.float()).abs().max() / g0.float().abs().max().clamp_min(1e-30)).item()
             for g0, g1 in zip(grads["baseline"], grads["this tree"])]
    worst = max(range(len(diffs)), key=diffs.__getitem__)
    table(f"Selective scan against {args.baseline}, length_major, {b} × {L:,} × {d} × {n}, {args.dtype} "
          f"(largest relative gradient difference {diffs[worst]:.1e}, in d{names[worst]})",
          ["kernel", "fwd ms", "bwd ms", "bwd speed-up"], rows)


def lru_conv_table(args, bw):
    b, L, d = args.batch, args.tokens // args.batch, args.channels
    dtype = getattr(torch, args.dtype)
    ref_len = min(L, args.ref_tokens // b)
    rows = []
    a = torch.rand(b, L, d, device="cuda").to(dtype)
    x = torch.randn(b, L, d, device="cuda").to(dtype)
    s = torch.randn(b, d, device="cuda")
    ms = bench(lambda: linear_scan_triton(a, x, s))
    ref = bench(lambda: linear_scan_ref(a[:, :ref_len], x[:, :ref_len], s), rep_ms=1) * L / ref_len
    gbs = 3 * a.numel() * a.element_size() / (ms * 1e-3)
    rows.append(["RG-LRU linear scan (b, l, d)", f"{ms:.2f}", f"{gbs / 1e9:,.0f}", f"{gbs / bw:.0%}", f"{ref / ms:.0f}×"])
    w, bias = torch.randn(d, 4, device="cuda"), torch.randn(d, device="cuda")
    st = torch.randn(b, d, 3, device="cuda")
    for layout in ("length_major", "channels_first"):
        xc = x.transpose(1, 2) if layout == "length_major" else x.transpose(1, 2).contiguous()
        ms = bench(lambda: causal_conv1d_triton(xc, w, bias, st))
        ref = bench(lambda: causal_conv1d_ref(xc, w, bias, st))
        gbs = 2 * xc.numel() * xc.element_size() / (ms * 1e-3)
        rows.append([f"causal conv1d width 4 ({layout})", f"{ms:.2f}", f"{gbs / 1e9:,.0f}", f"{gbs / bw:.0%}",
                     f"{ref / ms:.1f}×"])
    table(f"RG-LRU scan and causal conv1d, {b} × {L:,} tokens × {d} channels, {args.dtype}",
          ["kernel", "ms", "GB/s", "of copy BW", "speed-up vs reference"], rows)


def table(title, header, rows):
    print(f"\n{title}\n")
    print_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1 << 20, help="batch × length")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--state", type=int, default=16)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--ref-tokens", type=int, default=8192, help="tokens the PyTorch reference is timed on")
    parser.add_argument("--sweep", action="store_true", help="try tile shapes first and keep the fastest")
    parser.add_argument("--sweep-backward", action="store_true", help="only the backward's sweep, then the tables")
    parser.add_argument("--baseline", default=None,
                        help="another version of lrgen/ops/triton_scan.py to time against (only that table)")
    args = parser.parse_args()
    torch.manual_seed(0)
    props = torch.cuda.get_device_properties(0)
    bw, mufu = copy_bandwidth(), mufu_throughput()
    print(f"device: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}, "
          f"triton {triton.__version__}; measured copy bandwidth {bw / 1e9:,.0f} GB/s (read + write), "
          f"ex2 throughput {mufu / 1e12:.2f} T/s")
    if args.baseline:
        baseline_table(args)
        return
    if args.sweep:
        sweep(args)
    elif args.sweep_backward:
        sweep_backward(args)
    if args.sweep or args.sweep_backward:
        ts = triton_scan
        print(f"settings used below: BLOCK_D={ts.BLOCK_D} NUM_WARPS={ts.NUM_WARPS} UNROLL={ts.UNROLL} "
              f"PROGRAMS_PER_SM={ts.PROGRAMS_PER_SM}")
    scan_table(args, bw, mufu)
    lru_conv_table(args, bw)


if __name__ == "__main__":
    main()
