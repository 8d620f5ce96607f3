"""What a training run prints: third-party notices a user cannot act on are dropped, each by the module that emits it
(the project's own warnings, and everything else, still show)."""

from __future__ import annotations

import logging
import os
import re
import warnings


def _outside_slurm() -> bool:
    return "SLURM_JOB_ID" not in os.environ


QUIET_WARNINGS = (
    # a plain local run on a machine that has SLURM installed (inside an allocation the hint is worth showing)
    ("lightning.fabric.plugins.environments.slurm", "The `srun` command is available", _outside_slurm),
    # a deprecation inside Lightning's own code, not the user's
    ("lightning.pytorch.utilities._pytree", "`isinstance(treespec, LeafSpec)` is deprecated", lambda: True),
)
"""(module, start of the message, whether to drop it here) of the warnings dropped."""


class _NoProductTips(logging.Filter):
    """Drops Lightning's '💡 Tip: ... try installing ...' lines (advertisements for other products)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_third_party() -> None:
    """Install the filters (idempotent)."""
    for module, message, drop in QUIET_WARNINGS:
        if drop():
            warnings.filterwarnings("ignore", message=re.escape(message), module=re.escape(module))
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoProductTips) for f in logger.filters):
        logger.addFilter(_NoProductTips())
