#!/usr/bin/env bash
# One GPU session's measurements for the kernel work (issue 5), for docs/benchmarks.md: the kernel and compile GPU
# tests, the kernels against the reference with bandwidth, the 1M-token forward of the Caduceus presets, and the
# training table with and without --compile. Run from the repository root on a CUDA machine (about 8 minutes on
# an H100). Usage: benchmarks/gpu_kernels.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
log() { echo "[$(date -u +%H:%M:%S)] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
git rev-parse --short HEAD 2>/dev/null

log "GPU tests: kernels and --compile"
timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_ops_gpu.py tests/test_compiled.py tests/test_graphs.py 2>&1 | tail -n 5

log "kernels: selective scan (fwd, bwd), RG-LRU scan, conv against the reference and the copy bandwidth"
timeout 150 python3 benchmarks/bench_kernels.py

log "forward over 1M tokens"
timeout 120 python3 benchmarks/bench_forward.py --models caduceus-ps-131k,caduceus-ph-131k \
    --chunk-sizes 65536,131072 --repeats 3 --graphs
timeout 150 python3 benchmarks/bench_forward.py --models caduceus-ps-50m --chunk-sizes 65536,131072 --repeats 2 \
    --no-full --graphs

log "training at 12 kbp, eager and --compile"
timeout 240 python3 benchmarks/bench_train.py --steps 2 --max-batch 8 --compile
