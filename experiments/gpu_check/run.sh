#!/usr/bin/env bash
# The GPU check as the device machine runs it, from the project root:
#     experiments/gpu_check/carry.sh                       # here, once: the packages the GPU image lacks
#     device run: bash experiments/gpu_check/run.sh        # carry: [".gpu-site"]; about 5 minutes on one H200
# python3 there is the image's own, with CUDA torch; dnabert runs from the checkout, the pure-Python packages the
# image lacks (hydra-core, omegaconf, antlr4) from .gpu-site. The table is printed and written to $OUT (the device
# tool's folder that comes back) or experiments/gpu_check/record/. `run.sh --dry-run` runs the CPU path.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD:$PWD/.gpu-site${PYTHONPATH:+:$PYTHONPATH}"
python="${PYTHON:-python3}"
"$python" experiments/gpu_check/check.py --out "${OUT:-experiments/gpu_check/record}" "$@"
