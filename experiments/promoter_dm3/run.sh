#!/usr/bin/env bash
# Fly core promoters vs distal upstream windows (300 nt, dm3, chr2L held out as test): random init and a
# human-pretrained init (cross-organism: the model from experiments/pretrain_human/run.sh, pretrained on human
# chr22 only), 3 seeds each, against k-mer logistic regression. Extra arguments are train.py overrides.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python experiments/finetune_study.py \
  --train ../shared/data/promoter_dm3/core_vs_distal_train.tsv --test ../shared/data/promoter_dm3/core_vs_distal_test.tsv \
  --task prom300 --init random=random --init pretrained=experiments/pretrain_human/results/run/checkpoints/last.hf \
  --seeds 1 2 3 --out experiments/promoter_dm3/results -- model=small trainer=bf16 \
  trainer.max_steps=100 trainer.val_check_interval=100 trainer.check_val_every_n_epoch=null data.val_fraction=0.05 "$@"
