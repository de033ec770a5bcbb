#!/usr/bin/env bash
# The demo behind `make demo`: score the bundled example VCF (478 real sites on human chr20) with the bundled
# pretrained Caduceus-PS model, then write its log-probability track over the same region to bigWig.
# Usage: examples/demo.sh [BIN_DIR]   (BIN_DIR holds the `lrgen` executable; default: PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
LRGEN=${BIN:+$BIN/}lrgen
DATA=examples/data
OUT=${DEMO_OUT:-demo-output}
mkdir -p "$OUT"

echo "== lrgen info"
"$LRGEN" info

echo "== lrgen score-vcf: masked-marginal LLR and embedding distance, 4 kbp context, both strands"
"$LRGEN" score-vcf "$DATA/example.vcf.gz" --genome "$DATA/chr20_1-1.2Mb.fa.gz" --model caduceus-ps-demo \
    --context 4kb --score llr --score embedding -o "$OUT/example.scored.vcf.gz" --tsv "$OUT/example.scored.tsv"

echo "== the first scored alleles"
head -n 6 "$OUT/example.scored.tsv" | column -t -s $'\t'

echo "== lrgen predict: per-base log p(reference) over 20:1,000,000-1,060,000 to bigWig"
printf '20\t1000000\t1060000\n' > "$OUT/region.bed"
"$LRGEN" predict "$OUT/region.bed" --genome "$DATA/chr20_1-1.2Mb.fa.gz" --model caduceus-ps-demo \
    --context 16kb -o "$OUT/example.logprob.bw"

echo "== outputs in $OUT/"
ls -l "$OUT"
