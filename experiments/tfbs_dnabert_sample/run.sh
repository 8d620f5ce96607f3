#!/usr/bin/env bash
# DNABERT's own TFBS sample (1,000 x 101 nt, read in its 6-mer format), stratified 3-fold cross-validation per
# seed: random init and human-pretrained init, 3 seeds each, then random init for 10 epochs at lr 5e-4 with the
# checkpoint chosen on validation accuracy (the calibration lever), with k-mer logistic regression on the same folds.
# Needs experiments/pretrain_human/run.sh first for the pretrained init. Extra arguments are train.py overrides.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python experiments/finetune_study.py \
  --cv ../shared/data/tfbs_dnabert_sample/dnabert_format_6mer.tsv --folds 3 --task tfbs \
  --init random=random --init pretrained=experiments/pretrain_human/results/run/checkpoints/last.hf \
  --init "random-10ep-lr5e-4-valacc=random trainer.max_epochs=10 task.optimizer.lr=5e-4 \
callbacks.model_checkpoint.monitor=val/accuracy callbacks.model_checkpoint.mode=max" \
  --seeds 1 2 3 --out experiments/tfbs_dnabert_sample/results -- model=small trainer=bf16 trainer.max_epochs=5 "$@"
