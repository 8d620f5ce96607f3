#!/usr/bin/env bash
# Fly core promoters vs distal upstream windows (300 nt, dm3, chr2L held out as test): random init and a
# human-pretrained init (cross-organism: the model from experiments/pretrain_human/run.sh, pretrained on human
# chr22 only), 3 seeds each, and a tiny model (weight decay 0.1) from random weights, against k-mer and one-hot
# logistic regression and a one-hot CNN. Extra arguments are train.py overrides.
# Then a tiny model pretrained on fly upstream sequence (pretrain_fly: every chromosome but chr2L, about 40 minutes
# on one thread), fine-tuned the same way; four single-seed probes (results/probes5); and the tiny random-init row
# with 6-mers and with 5-mers over seeds 1-9, scored one model at a time, as deep ensembles of 3 seeds per k and as
# ensembles pooling both k's models of the same seeds (results/tiny_ensemble).
set -euo pipefail
cd "$(dirname "$0")/../.."
fly=experiments/promoter_dm3/results/fly_pretrain
if [ ! -f $fly/run/checkpoints/last.hf/config.json ]; then
  .venv/bin/python experiments/promoter_dm3/fly_corpus.py ../shared/data/promoter_dm3/dm3_upstream2000.fa.gz \
    $fly/dm3_upstream2000_no_chr2L.fa
  .venv/bin/python train.py experiment=pretrain_fly data.genome=$fly/dm3_upstream2000_no_chr2L.fa \
    paths.output_dir=$fly/run logger=csv
fi
# the lever row: model=tiny for 5 epochs at lr 5e-4, weight decay 0.1, the checkpoint chosen on validation AUROC,
# validation once per epoch (479 steps)
tiny="model=tiny task.optimizer.weight_decay=0.1 task.optimizer.lr=5e-4 trainer.max_steps=-1 \
trainer.val_check_interval=479 callbacks.model_checkpoint.monitor=val/auroc callbacks.model_checkpoint.mode=max"
study() {
  .venv/bin/python experiments/finetune_study.py --train ../shared/data/promoter_dm3/core_vs_distal_train.tsv \
    --test ../shared/data/promoter_dm3/core_vs_distal_test.tsv --task prom300 "$@"
}
common="model=small trainer=bf16 trainer.max_steps=100 trainer.val_check_interval=100 \
trainer.check_val_every_n_epoch=null data.val_fraction=0.05"
study --init random=random --init pretrained=experiments/pretrain_human/results/run/checkpoints/last.hf \
  --init "random-tiny-wd0.1-valauroc=random $tiny" \
  --init "fly-pretrained-tiny-wd0.1-valauroc=$fly/run/checkpoints/last.hf $tiny" \
  --seeds 1 2 3 --cnn-epochs 8 --out experiments/promoter_dm3/results -- $common "$@"
# single-seed probes: a wider tiny model (hidden 128), hidden dropout 0.3, validation held out in whole groups of
# windows that share 50 nt (6-mers and 5-mers)
study --init "random-tiny-h128=random $tiny model.config.hidden_size=128 model.config.intermediate_size=512" \
  --init "random-tiny-drop0.3=random $tiny model.config.hidden_dropout_prob=0.3" \
  --init "random-tiny-valoverlap50=random $tiny data.val_overlap=50" \
  --init "random-tiny-k5-valoverlap50=random $tiny model.k=5 data.val_overlap=50" \
  --seeds 1 --out experiments/promoter_dm3/results/probes5 -- $common "$@"
# tiny 6-mers and tiny 5-mers over seeds 1-9: one model at a time, 3 ensembles of 3 seeds per k, and 3 ensembles that
# pool both k's models of the same 3 seeds (6 models each)
study --init "random-tiny-wd0.1-valauroc=random $tiny" --init "random-tiny-k5=random $tiny model.k=5" \
  --seeds $(seq 1 9) --ensemble 3 --ensemble-inits \
  --out experiments/promoter_dm3/results/tiny_ensemble -- $common "$@"
