#!/usr/bin/env bash
# The demo behind `make demo` (about 3 minutes on a 2-core CPU, measured): score the real variants of a 20 kb
# stretch of human chr20 (160 of the bundled example VCF's 478) with the bundled pretrained Caduceus-PS model, write
# its per-base log-probability track over the same stretch to bigWig, draw the track with the variants' scores (PNG;
# needs the `plot` extra) and end with the scored VCF summed up.
# Usage: examples/demo.sh [BIN_DIR]   (BIN_DIR holds the `lrgen` executable; default: PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
LRGEN=${BIN:+$BIN/}lrgen
DATA=examples/data
GENOME=$DATA/chr20_1-1.2Mb.fa.gz
MODEL=caduceus-ps-demo
OUT=${DEMO_OUT:-demo-output}
mkdir -p "$OUT"

echo "== lrgen info --models"
"$LRGEN" info --models

printf '20\t1000000\t1020000\n' > "$OUT/region.bed"
echo "== score-vcf, every variant of 20:1,000,001-1,020,000: wt-marginal (one unmasked pass per 16 kb window)"
"$LRGEN" score-vcf "$DATA/example.vcf.gz" --genome "$GENOME" --model "$MODEL" --context 16kb \
    --regions "$OUT/region.bed" --score wt-marginal -o "$OUT/example.wt-marginal.vcf.gz" \
    --tsv "$OUT/example.wt-marginal.tsv"

echo "== score-vcf, the first 2 kb: masked-marginal llr and embedding distance, local recomputation"
printf '20\t999999\t1002000\n' > "$OUT/first-2kb.bed"
"$LRGEN" score-vcf "$DATA/example.vcf.gz" --genome "$GENOME" --model "$MODEL" --context 4kb \
    --regions "$OUT/first-2kb.bed" --recompute-span 256 --embedding-span 256 --score llr --score embedding \
    -o "$OUT/example.llr.vcf.gz" --tsv "$OUT/example.llr.tsv"
echo "-- first rows of $OUT/example.llr.tsv"
head -n 6 "$OUT/example.llr.tsv" | column -t -s $'\t'

echo "== predict: per-base log p(reference) over 20:1,000,001-1,020,000 to bigWig"
"$LRGEN" predict "$OUT/region.bed" --genome "$GENOME" --model "$MODEL" --context 4kb -o "$OUT/example.logprob.bw"

echo "== plot: the track, and the variants' wt-marginal scores along it -> $OUT/example.png"
"$LRGEN" plot --bigwig "$OUT/example.logprob.bw" --vcf "$OUT/example.wt-marginal.vcf.gz" --regions "$OUT/region.bed" \
    -o "$OUT/example.png" || echo "(no figure: see the line above)"

echo "== outputs in $OUT/"
ls -l "$OUT"

echo "== stats: the scored VCF summed up"
"$LRGEN" stats "$OUT/example.wt-marginal.vcf.gz"
