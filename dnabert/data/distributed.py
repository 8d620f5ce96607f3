"""How evaluation rows are dealt to ranks: each row once over all ranks, never padded with repeats."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset


def evaluation_sampler(dataset: Dataset, trainer: L.Trainer | None) -> UnrepeatedDistributedSampler | None:
    """On more than one rank, a sampler giving each rank its share of `dataset` in input order, every row once
    (Lightning's own would pad the last ranks with repeated rows, counted twice in the metrics); else None."""
    if trainer is None or trainer.world_size == 1:
        return None
    return UnrepeatedDistributedSampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank,
                                        shuffle=False)
