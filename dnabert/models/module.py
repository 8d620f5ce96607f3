"""What both training modules share: the model's config saved in every checkpoint, AdamW and the LR schedule."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from torch import nn
from transformers import BertConfig

from dnabert.models.checkpoints import store_config
from dnabert.models.optim import configure_optimization


class DnabertModule(L.LightningModule):
    """A LightningModule around one HF model (`self.model`, built from `self.config`) trained by the config's
    partial optimizer and scheduler; its checkpoints carry the config, so they load without the run's files."""

    config: BertConfig
    model: nn.Module | None

    def __init__(self, optimizer: Callable, scheduler: Callable | None = None):
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def configure_optimizers(self) -> dict:
        return configure_optimization(self, self.model, self.optimizer_factory, self.scheduler_factory)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        store_config(checkpoint, self.config)
