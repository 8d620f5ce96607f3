"""Train a DNABERT model: `python train.py [model=..] [task=..] [data=..] [trainer=..] [key=value ...]`."""

from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig
from transformers.utils.logging import disable_progress_bar

from dnabert.config import register_resolvers
from dnabert.errors import report_errors
from dnabert.training import train

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; user errors end as one `dnabert: ...` line."""
    disable_progress_bar()  # transformers' bar at every HF export would interleave with Lightning's
    return report_errors(lambda: train(cfg))


if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # config errors reach report_errors instead of Hydra's own report
    report_errors(main)
