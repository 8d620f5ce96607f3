#!/usr/bin/env bash
# DNABERT-viz motifs of the fine-tuned Oct4-vs-MafK model with each class as positives, matched to JASPAR 2024
# (TOMTOM); expected: Oct4-Sox2 (MA0142.1) from the Oct4 peaks, MAFK (MA0496.4) from the MafK peaks.
#   experiments/motif_oct4_mafk/run.sh [MODEL]   (default: the model of experiments/tfbs_oct4_mafk)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-experiments/tfbs_oct4_mafk/results/tiny-seed2/checkpoints/best.hf}
DATA=${DATA:-../shared/data/tfbs_oct4_vs_mafk_hg19/train.tsv}
# this model's attention never falls near 0 (min/mean about 0.76), so DNABERT's "> 10 x min" keeps no position
SET=${SET:-min_factor=3}
OUT=experiments/motif_oct4_mafk/results
for run in "oct4 1 MA0142.1" "mafk 0 MA0496.4"; do
  set -- $run
  nice -n 10 .venv/bin/python -m dnabert.cli motifs "$MODEL" --input "$DATA" --positive "$2" --out "$OUT/$1" \
    --set "$SET" --quiet
done
{
  printf 'positives\texpected\tmotif\tjaspar_id\tjaspar_name\tp_value\tq_value\trank\tmotifs\tmotifs_at_q<0.01\n'
  for run in "oct4 MA0142.1" "mafk MA0496.4"; do
    set -- $run
    motifs=$(grep -c '^MOTIF' "$OUT/$1/motifs.meme" || true)
    known=$(awk -F'\t' '$8 == 1 && $5 < 0.01' "$OUT/$1/jaspar_matches.tsv" | wc -l)
    best=$(awk -F'\t' -v id="$2" '$2 == id' "$OUT/$1/jaspar_matches.tsv" | sort -t$'\t' -g -k5,5 | head -1 |
           cut -f1-5,8)
    [ -n "$best" ] || best=$(printf 'none\t-\t-\t-\t-\t-')
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$best" "$motifs" "$known"
  done
} | tee "$OUT/summary.tsv"
