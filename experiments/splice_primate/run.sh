#!/usr/bin/env bash
# Primate splice junctions (3 classes, 60 nt, StatLog split): human-pretrained vs random init, 3 seeds each,
# against k-mer and one-hot logistic regression, in one run. Needs experiments/pretrain_human/run.sh first.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python experiments/finetune_study.py \
  --train ../shared/data/splice_primate/train.tsv --test ../shared/data/splice_primate/test.tsv --task splice \
  --init pretrained=experiments/pretrain_human/results/run/checkpoints/last.hf --init random=random \
  --seeds 1 2 3 --out experiments/splice_primate/results -- model=small "$@"
