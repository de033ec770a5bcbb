#!/usr/bin/env bash
# The training-throughput measurements of docs/benchmarks.md (issue 16) in one GPU call: the fused BiMamba tests,
# caduceus-ps-50m fused against unfused at 12 kbp, a profile of the fused step, the loss curves of both paths,
# the 1 Mbp forward that must not regress, a backward-scan launch sweep, and (unless QUICK=1) hawk/ntv2 with
# --compile and the pretraining GPU tests.
# Run from the repository root on a CUDA machine; DATA holds a few small FASTA genomes.
# Usage: [QUICK=1] benchmarks/gpu_training.sh DATA OUT
set -uo pipefail
DATA=$(cd "$1" && pwd)
OUT=$2
QUICK=${QUICK:-0}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
log() { echo "[$(date -u +%H:%M:%S)] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
cd benchmarks

log "GPU tests: fused BiMamba against unfused"
timeout 90 python3 -m pytest -q -m gpu -p no:cacheprovider ../tests/test_bimamba.py 2>&1 | tail -n 5

log "caduceus-ps-50m at 12 kbp: unfused (before) and fused"
timeout 150 python3 bench_train.py --models caduceus-ps-50m --start-batch 4 --max-batch 8 --steps 3

log "profile of the fused step, batch 8"
timeout 70 python3 profile_train.py --model caduceus-ps-50m --context 12kbp --batch 8 --steps 2

log "loss curves: unfused and fused from the same seed"
FASTA=$(for f in "$DATA"/*.fa.gz; do printf -- '--fasta %s ' "$f"; done)
timeout 120 python3 train_curve.py $FASTA --model caduceus-ps-131k --context 2kb --batch-size 32 --steps 100 \
    --eval-every 25 --device cuda --work-dir /tmp/train-curve 2>&1 | grep -v "━"

log "1 Mbp forward, caduceus-ps-131k (must stay <= 0.80 s / 4.1 GB)"
timeout 60 python3 bench_forward.py --models caduceus-ps-131k --chunk-sizes 131072 --repeats 3 --no-full

log "selective-scan backward launch sweep at the training shape (4 x 12,000 x 1024 x 16)"
timeout 120 python3 bench_kernels.py --sweep-backward --tokens 48000 --batch 4 --channels 1024

log "ntv2-50m, eager and --compile, batch 8 and 16"
timeout 100 python3 bench_train.py --models ntv2-50m --compile --start-batch 8 --max-batch 16 --steps 3
[ "$QUICK" = 1 ] && { log "done (quick)"; exit 0; }

log "hawk-50m, eager and --compile"
timeout 150 python3 bench_train.py --models hawk-50m --compile --start-batch 4 --max-batch 16 --steps 3
log "GPU tests: pretraining (compiled by default, --batch-size auto)"
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider ../tests/test_pretrain_gpu.py 2>&1 | tail -n 8
log "done"
