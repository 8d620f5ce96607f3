#!/usr/bin/env bash
# Oct4 vs MafK ChIP-seq peaks (200 nt, hg19): random init and human-pretrained init, 3 seeds each, against k-mer
# and one-hot logistic regression. Needs experiments/pretrain_human/run.sh first for the pretrained init.
# Extra arguments are train.py overrides.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python experiments/finetune_study.py \
  --train ../shared/data/tfbs_oct4_vs_mafk_hg19/train.tsv --test ../shared/data/tfbs_oct4_vs_mafk_hg19/test.tsv \
  --task classify --init random=random --init pretrained=experiments/pretrain_human/results/run/checkpoints/last.hf \
  --seeds 1 2 3 --out experiments/tfbs_oct4_mafk/results -- model=small trainer=bf16 trainer.max_epochs=1 \
  data.max_tokens=200 "$@"
