#!/usr/bin/env bash
# Records the golden outputs of tests/test_golden_outputs.py with the lrgen on PATH (run from the repository root):
#   bash tests/data/golden/make.sh [LRGEN]
# First recorded with lrgen 0.1.0 (git 88ca4b4); recorded again with 'python -m lrgen' when the bundled model became
# the 7.7M-parameter Caduceus-PS (its weights set every value).
set -euo pipefail
LRGEN=${1:-lrgen}
OUT=tests/data/golden
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export LRGEN_BACKEND=reference
D=examples/data
G=$D/chr20_1-1.2Mb.fa.gz
printf '20\t999999\t1012000\n' > "$TMP/r12k.bed"
printf '20\t999999\t1002500\n' > "$TMP/r2k.bed"
printf '20\t1000000\t1003000\n' > "$TMP/p3k.bed"
$LRGEN score-vcf $D/example.vcf.gz --genome $G --model caduceus-ps-demo --context 1kb --regions "$TMP/r12k.bed" \
    --score wt-marginal -o "$TMP/wtm.vcf.gz" --tsv $OUT/wtm.tsv
$LRGEN score-vcf $D/example.vcf.gz --genome $G --model caduceus-ps-demo --context 1kb --regions "$TMP/r2k.bed" \
    --recompute-span 256 --embedding-span 128 --score llr --score embedding -o "$TMP/llr.vcf" --tsv $OUT/llr.tsv
$LRGEN predict "$TMP/p3k.bed" --genome $G --model caduceus-ps-demo --context 1kb -o "$TMP/logprob.bw"
zcat "$TMP/wtm.vcf.gz" | grep -v '^##lrgen_command' > $OUT/wtm.vcf
grep -v '^##lrgen_command' "$TMP/llr.vcf" > $OUT/llr.vcf
python3 - "$TMP/logprob.bw" > $OUT/logprob.intervals <<'PY'
import sys, pyBigWig
with pyBigWig.open(sys.argv[1]) as bw:
    for chrom in bw.chroms():
        for s, e, v in bw.intervals(chrom) or ():
            print(f"{chrom}\t{s}\t{e}\t{v.hex()}")
PY
