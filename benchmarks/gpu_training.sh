#!/usr/bin/env bash
# The training-throughput measurements of docs/benchmarks.md (issue 16) in two GPU calls of at most 600 s each.
# PART=1 (default): the scan and conv + SiLU backward GPU tests, the scan backward against BASELINE (another version
# of lrgen/ops/triton_scan.py, e.g. `git show main:lrgen/ops/triton_scan.py`; skipped when unset), caduceus-ps-50m
# fused against unfused at 12 kbp, a profile of the fused step, the loss curves of both paths. PART=2: the 1 Mbp
# forward that must not regress, the scan backward's launch sweep, hawk/ntv2 with --compile and a profile of the
# compiled ntv2 step, the pretraining GPU tests.
# Run from the repository root on a CUDA machine; DATA holds a few small FASTA genomes (PART=1 only).
# Usage: [PART=1|2] [BASELINE=scan_main.py] benchmarks/gpu_training.sh DATA OUT
set -uo pipefail
DATA=$(cd "$1" && pwd)
OUT=$(mkdir -p "$2" && cd "$2" && pwd)
PART=${PART:-1}
BASELINE=${BASELINE:-}
[ -n "$BASELINE" ] && BASELINE=$(realpath "$BASELINE")
export PYTHONUNBUFFERED=1
log() { echo "[$(date -u +%H:%M:%S)] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
cd benchmarks
if [ "$PART" = 1 ]; then
log "GPU tests: selective scan, conv + SiLU backward, fused BiMamba against unfused"
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider ../tests/test_ops_gpu.py ../tests/test_bimamba.py \
    -k "selective_scan_gpu or conv_silu or bimamba" 2>&1 | tail -n 4

if [ -n "$BASELINE" ]; then
    log "selective-scan backward against $BASELINE at the training shape (4 x 12,000 x 1024 x 16)"
    timeout 60 python3 bench_kernels.py --baseline "$BASELINE" --tokens 48000 --batch 4 --channels 1024 2>&1 | tail -n 6
fi

log "caduceus-ps-50m at 12 kbp: unfused (the baseline) and fused"
timeout 120 python3 bench_train.py --models caduceus-ps-50m --start-batch 4 --max-batch 8 --steps 3 2>&1 | tail -n 6

log "profile of the fused step, batch 8 (whole table in $OUT/profile_train.txt)"
timeout 60 python3 profile_train.py --model caduceus-ps-50m --context 12kbp --batch 8 --steps 2 \
    > "$OUT/profile_train.txt" 2>&1
sed -n '/CUDA time per step/,/^$/p' "$OUT/profile_train.txt"; grep -A12 "^ *Name" "$OUT/profile_train.txt" | tail -n 11

log "loss curves: unfused and fused from the same seed (about 100 s)"
FASTA=$(for f in "$DATA"/*.fa.gz; do printf -- '--fasta %s ' "$f"; done)
timeout 130 python3 train_curve.py $FASTA --model caduceus-ps-131k --context 2kb --batch-size 32 --steps 100 \
    --eval-every 25 --device cuda --work-dir /tmp/train-curve > "$OUT/train_curve.txt" 2>&1
grep -v "━" "$OUT/train_curve.txt" | tail -n 12
log "done (part 1)"
exit 0
fi

log "1 Mbp forward, caduceus-ps-131k (must stay <= 0.80 s / 4.1 GB)"
timeout 60 python3 bench_forward.py --models caduceus-ps-131k --chunk-sizes 131072 --repeats 3 --no-full
log "selective-scan backward launch sweep at the training shape"
timeout 120 python3 bench_kernels.py --sweep-backward --tokens 48000 --batch 4 --channels 1024 2>&1 | tail -n 30
log "ntv2-50m and hawk-50m, eager and --compile"
timeout 200 python3 bench_train.py --models ntv2-50m --compile --start-batch 8 --max-batch 64 --steps 3
timeout 90 python3 profile_train.py --model ntv2-50m --context 2kbp --batch 64 --compile --steps 2 2>&1 | head -n 16
timeout 150 python3 bench_train.py --models hawk-50m --compile --start-batch 4 --max-batch 16 --steps 3
log "GPU tests: pretraining (compiled by default, --batch-size auto)"
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider ../tests/test_pretrain_gpu.py 2>&1 | tail -n 8
log "done"
