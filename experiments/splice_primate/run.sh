#!/usr/bin/env bash
# Primate splice junctions (3 classes, 60 nt, StatLog split): human-pretrained vs random init (full fine-tuning),
# and LoRA / frozen-probe fine-tuning of the pretrained model, 3 seeds each, against k-mer and one-hot logistic
# regression, in one run; then the levers toward 0.96 (20 epochs at lr 5e-4, k = 3, the checkpoint chosen on
# validation accuracy, hidden dropout 0.3); then model=tiny with 3-mers (20 / 30 / 60 epochs at lr 1e-3, weight
# decay 0.1), 5 seeds each (results/tiny_probes), and the 30-epoch one over 15 seeds, scored one model at a time and
# as 3 deep ensembles of 5 seeds (results/tiny_ensemble). Needs experiments/pretrain_human/run.sh first.
set -euo pipefail
cd "$(dirname "$0")/../.."
pretrained=experiments/pretrain_human/results/run/checkpoints/last.hf
long="trainer.max_epochs=20 task.optimizer.lr=5e-4"
by_accuracy="callbacks.model_checkpoint.monitor=val/accuracy callbacks.model_checkpoint.mode=max"
study() {
  .venv/bin/python experiments/finetune_study.py \
    --train ../shared/data/splice_primate/train.tsv --test ../shared/data/splice_primate/test.tsv --task splice "$@"
}
study --init pretrained=$pretrained --init random=random \
  --init "pretrained-lora=$pretrained finetune=lora task.optimizer.lr=1e-3" \
  --init "pretrained-frozen-probe=$pretrained finetune=frozen_probe task.optimizer.lr=1e-3" \
  --init "random-20ep-lr5e-4=random $long" \
  --init "random-k3-20ep-lr5e-4-valacc=random model.k=3 $long $by_accuracy" \
  --init "random-k3-20ep-lr5e-4-valacc-drop0.3=random model.k=3 model.config.hidden_dropout_prob=0.3 $long $by_accuracy" \
  --seeds 1 2 3 --cnn-epochs 20 --out experiments/splice_primate/results -- model=small "$@"
tiny="model=tiny model.k=3 model.config.hidden_dropout_prob=0.3 task.optimizer.lr=1e-3 $by_accuracy"
study --init "random-tiny-k3-20ep-lr1e-3-valacc-drop0.3=random $tiny trainer.max_epochs=20" \
  --init "random-tiny-k3-30ep-lr1e-3-valacc-drop0.3=random $tiny trainer.max_epochs=30" \
  --init "random-tiny-k3-60ep-lr1e-3-valacc-drop0.3=random $tiny trainer.max_epochs=60" \
  --init "random-tiny-k3-30ep-lr1e-3-valacc-drop0.3-wd0.1=random $tiny trainer.max_epochs=30 \
task.optimizer.weight_decay=0.1" \
  --seeds 1 2 3 4 5 --out experiments/splice_primate/results/tiny_probes -- "$@"
study --init "random-tiny-k3-30ep-lr1e-3-valacc-drop0.3=random $tiny trainer.max_epochs=30" \
  --seeds $(seq 1 15) --ensemble 5 --out experiments/splice_primate/results/tiny_ensemble -- "$@"
