#!/usr/bin/env bash
# Primate splice junctions (3 classes, 60 nt, StatLog split): human-pretrained vs random init (full fine-tuning),
# and LoRA / frozen-probe fine-tuning of the pretrained model, 3 seeds each, against k-mer and one-hot logistic
# regression, in one run. Needs experiments/pretrain_human/run.sh first for the pretrained init.
set -euo pipefail
cd "$(dirname "$0")/../.."
pretrained=experiments/pretrain_human/results/run/checkpoints/last.hf
.venv/bin/python experiments/finetune_study.py \
  --train ../shared/data/splice_primate/train.tsv --test ../shared/data/splice_primate/test.tsv --task splice \
  --init pretrained=$pretrained --init random=random \
  --init "pretrained-lora=$pretrained finetune=lora task.optimizer.lr=1e-3" \
  --init "pretrained-frozen-probe=$pretrained finetune=frozen_probe task.optimizer.lr=1e-3" \
  --seeds 1 2 3 --out experiments/splice_primate/results -- model=small "$@"
