"""Train a DNABERT model: `python -m dnabert.train [model=..] [task=..] [data=..] [trainer=..] [key=value ...]`.

The configs are conf/ at the checkout's top, shipped inside the package, so an installed dnabert trains from any
directory.
"""

from __future__ import annotations

import os
import warnings

import hydra
from omegaconf import DictConfig
from transformers.utils.logging import disable_progress_bar

from dnabert.cluster import sbatch_refusals_said
from dnabert.config import CONF_DIR, register_resolvers
from dnabert.errors import report_errors
from dnabert.training import train

register_resolvers()
# conf/hydra/launcher/submitit_slurm.yaml extends the plugin's schema of the same name, on purpose: the name users
# know (`hydra/launcher=submitit_slurm`) with dnabert's defaults; Hydra warns about that pattern on every launch
warnings.filterwarnings("ignore", message="\n'hydra/launcher/submitit_slurm' is validated against ConfigStore schema",
                        category=UserWarning)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; user errors end as one `dnabert: ...` line."""
    disable_progress_bar()  # transformers' bar at every HF export would interleave with Lightning's
    return report_errors(lambda: train(cfg))


def run() -> None:
    """Command-line entry: Hydra's config errors reach `report_errors` as one `dnabert:` line too."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    report_errors(lambda: sbatch_refusals_said(main))


if __name__ == "__main__":
    run()
