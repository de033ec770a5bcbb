#!/usr/bin/env bash
# One GPU session's worth of measurements for docs/benchmarks.md: the GPU tests, the engine, score-vcf and the
# predict example. Run from the repository root on a CUDA machine; DATA holds 20.fa.gz(+.fai,.gzi) and the chr20 VCF.
# Usage: benchmarks/gpu_benchmarks.sh DATA OUT
set -uo pipefail
DATA=$1
OUT=$2
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
log() { echo "[$(date -u +%H:%M:%S)] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"

log "GPU tests"
timeout 200 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_engine.py tests/test_caduceus.py \
    tests/test_predict.py tests/test_pretrain_gpu.py 2>&1 | tail -n 15

log "engine: full vs streamed, caduceus-ps-131k, bf16"
timeout 150 python3 benchmarks/bench_engine.py --device cuda --preset caduceus-ps-131k \
    --lengths 1k,16k,131k,1M --chunk-size 65536 --dtype bfloat16 --max-seconds 30

log "score-vcf: wt-marginal over the chr20 VCF and llr local vs exact at 1 Mbp"
timeout 200 python3 benchmarks/bench_score_vcf.py --vcf "$DATA/chr20_1-4Mb.sites.vcf.gz" --genome "$DATA/20.fa.gz" \
    --model caduceus-ps-131k --context 1Mbp --device cuda --dtype bfloat16 --llr-variants 500 --exact-variants 5 \
    --span-variants 0 --json "$OUT/bench_score_vcf.json"

log "predict example with the bundled model"
printf '20\t1000000\t1050000\n' > /tmp/example.bed
timeout 60 python3 -m lrgen predict /tmp/example.bed --genome "$DATA/20.fa.gz" --model caduceus-ps-demo \
    --context 16kb -o "$OUT/example.logprob.bw"
timeout 60 python3 benchmarks/plot_predict_example.py "$OUT/example.logprob.bw" "$DATA/20.fa.gz" \
    20:1,000,001-1,050,000 -o "$OUT/predict_example.png" --label "log p(ref), caduceus-ps-demo"
log "done"
