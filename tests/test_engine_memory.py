"""Peak memory of a streamed pass against the whole-sequence forward at 100k+ tokens (CPU, separate processes).

Each pass runs in a fresh Python process; the peak resident set size after a short warm-up pass is the baseline
(``VmHWM`` of /proc/self/status, the process's own high-water mark: ``ru_maxrss`` is carried over from the parent
across fork and exec, so a large pytest process would hide the pass), and the pass's cost is how far the peak rises above it. Separate processes keep one measurement's
freed-but-retained memory out of the other's, and glibc is told to map every block over 64 KiB on its own, so
freed memory leaves the RSS at once. Measured on caduceus-ps-tiny at 100k tokens: full forward 390-400 MiB,
streamed (chunk 2048) 138-141 MiB (ratio 0.35-0.36); the projections to ``2·d_inner`` and the scan's float32
working copies exist for the whole sequence in the full pass and for one chunk in the streamed one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

LENGTH = 100_000
CHUNK = 2048
PRESET = "caduceus-ps-tiny"

_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from lrgen import load_model
    from lrgen.engine import stream
    torch.manual_seed(0)
    torch.set_num_threads(1)
    mode, preset, length, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    model = load_model(preset).eval()
    ids = torch.randint(7, 11, (1, length))

    def run(x):
        with torch.no_grad():
            return model(x) if mode == "full" else stream(model, x, chunk_size=chunk)

    def peak_kib():
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

    run(ids[:, :chunk])  # warm-up: thread pools, allocator caches
    before = peak_kib()
    out = run(ids)
    after = peak_kib()
    print((after - before) * 1024, out.numel() * out.element_size())
    """
)


def peak_rises(*modes: str) -> list[tuple[int, int]]:
    """Per mode, the bytes by which its pass raised the peak RSS and the bytes of its output; the processes run
    side by side, one thread each."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, mode, PRESET, str(LENGTH), str(CHUNK)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MALLOC_MMAP_THRESHOLD_": str(64 * 1024)},
        )
        for mode in modes
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        rise, output = out.split()
        results.append((int(rise), int(output)))
    return results


@pytest.mark.slow  # two 100k-token passes through the pure-PyTorch kernels, side by side: 20 s or more
def test_streamed_peak_is_a_fraction_of_the_full_forward():
    (full, output), (streamed, _) = peak_rises("full", "stream")
    print(f"peak rise at {LENGTH} tokens: full {full / 2**20:.0f} MiB, streamed {streamed / 2**20:.0f} MiB")
    assert full > 4 * output  # the full pass holds far more than its output
    assert streamed < 0.5 * full
