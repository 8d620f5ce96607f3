#!/usr/bin/env bash
# Motifs of the fine-tuned Oct4-vs-MafK model with each class as positives, by both `dnabert motifs` methods with
# their defaults (no per-set settings), matched to JASPAR 2024 (TOMTOM); expected: Oct4-Sox2 (MA0142.1) from the
# Oct4 peaks, MAFK (MA0496.4) from the MafK peaks.
#   experiments/motif_oct4_mafk/run.sh [MODEL]   (default: the model of experiments/tfbs_oct4_mafk)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-experiments/tfbs_oct4_mafk/results/tiny-seed2/checkpoints/best.hf}
DATA=${DATA:-../shared/data/tfbs_oct4_vs_mafk_hg19/train.tsv}
OUT=experiments/motif_oct4_mafk/results
RECORD=experiments/motif_oct4_mafk/table.md
for method in attention modisco; do
  for run in "oct4 1" "mafk 0"; do
    set -- $run
    [ -f "$OUT/$method/$1/jaspar_matches.tsv" ] ||
      nice -n 10 .venv/bin/python -m dnabert.cli motifs "$MODEL" --input "$DATA" --positive "$2" \
        --out "$OUT/$method/$1" --method "$method" --quiet
  done
done
{
  echo '| method | positives (vs the other class) | expected | discovered motif | its match | TOMTOM p | TOMTOM q | rank among its matches | motifs | motifs matching JASPAR (rank 1, q < 0.01) |'
  echo '|---|---|---|---|---|---:|---:|---:|---:|---:|'
  for method in attention modisco; do
    for run in "oct4 Oct4 Oct4-Sox2 MA0142.1" "mafk MafK MAFK MA0496.4"; do
      set -- $run
      dir="$OUT/$method/$1"
      motifs=$(grep -c '^MOTIF' "$dir/motifs.meme" || true)
      known=$(awk -F'\t' '$8 == 1 && $5 < 0.01' "$dir/jaspar_matches.tsv" | wc -l)
      best=$(awk -F'\t' -v id="$4" '$2 == id' "$dir/jaspar_matches.tsv" | sort -t$'\t' -g -k5,5 | head -1 |
             awk -F'\t' '{printf "`%s` | %s %s | %s | %s | %s", $1, $2, $3, $4, $5, $8}')
      [ -n "$best" ] || best='none | - | - | - | -'
      printf '| %s | %s peaks | %s %s | %s | %s | %s |\n' "$method" "$2" "$3" "$4" "$best" "$motifs" "$known"
    done
  done
} | tee "$RECORD"
