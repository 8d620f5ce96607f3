#!/usr/bin/env bash
# Build .gpu-site/ (ignored by git, carried to the device machine): the pure-Python packages dnabert needs that the
# GPU image lacks, copied from this checkout's .venv (they are the versions the tests here run).
set -euo pipefail
cd "$(dirname "$0")/../.."
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -rf .gpu-site && mkdir .gpu-site
for package in hydra omegaconf antlr4; do
    cp -r "$site/$package" .gpu-site/
done
find .gpu-site -name __pycache__ -prune -exec rm -rf {} +
du -sh .gpu-site
