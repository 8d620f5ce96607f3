#!/usr/bin/env bash
# One pretraining run of the study: pretrain.sh CORPUS STRATEGY [train.py overrides]
#   CORPUS: fly (dm3 upstream 2 kb without chr2L, written by fly_corpus.py) or human (hg19 chr22 blocks)
#   STRATEGY: dnabert | span | random_mask (task/masking)
# A tiny DNABERT-6, 6,000 steps of 32 windows on one thread (experiment=pretrain_tiny), a snapshot every 1,000 steps;
# human runs also log the linear probe callback (probe/auroc on Oct4 vs MafK validation rows every 1,000 steps).
# Rerunning the same command resumes from results/pretrain/CORPUS/STRATEGY/checkpoints/last.ckpt.
set -euo pipefail
cd "$(dirname "$0")/../.."
corpus=$1 strategy=$2
shift 2
results=experiments/pretrain_transfer/results
case $corpus in
  fly) genome=$results/fly_corpus.fa
       [ -f $genome ] || .venv/bin/python experiments/promoter_dm3/fly_corpus.py \
         ../shared/data/promoter_dm3/dm3_upstream2000.fa.gz $genome ;;
  human) genome=../shared/data/human_chr22_hg19/hg19_chr22_blocks.fa.gz
         # the linear probe callback on the human home task (Oct4 vs MafK peaks; validation rows of its training file)
         set -- callbacks=probe callbacks.linear_probe.train=../shared/data/tfbs_oct4_vs_mafk_hg19/train.tsv "$@" ;;
  *) echo "pretrain.sh: CORPUS is fly or human, not '$corpus'" >&2; exit 2 ;;
esac
out=$results/pretrain/$corpus/$strategy
OMP_NUM_THREADS=1 nice .venv/bin/python train.py experiment=pretrain_tiny data.genome=$genome task/masking=$strategy \
  paths.output_dir=$out logger=csv \
  "+callbacks.snapshots={_target_:dnabert.callbacks.HFModelCheckpoint,dirpath:'\${paths.output_dir}/snapshots',filename:'step{step}',every_n_train_steps:1000,save_top_k:-1,auto_insert_metric_name:false}" \
  "$@"
