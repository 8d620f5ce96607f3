#!/usr/bin/env bash
# Pretrain the small human DNABERT-6 (about an hour on 2 CPU cores), then print its validation curve.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/pretrain_human/results/run
.venv/bin/python train.py experiment=pretrain_human paths.output_dir="$out" logger=csv "$@"
.venv/bin/python experiments/pretrain_human/curve.py "$out"
