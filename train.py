"""Train a DNABERT model from a checkout: `python train.py ...` runs `python -m dnabert.train ...` (see README.md)."""

from dnabert.train import run

if __name__ == "__main__":
    run()
