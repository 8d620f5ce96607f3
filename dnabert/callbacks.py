"""Lightning callbacks: HF directories beside checkpoints, and per-step noise seeding for exact resume."""

from __future__ import annotations

import shutil

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from dnabert.models.hf_export import hf_directory_of, save_hf_directory


class HFModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that also writes (and prunes) a plain HF directory beside every `.ckpt` file.

    `last.ckpt` is always the latest state: Lightning 2.6 refreshes it only when a top-k checkpoint is saved,
    which would make a restart resume from an older step. The LightningModule exposes its model as `.model`.
    """

    def _refresh_last(self, trainer: L.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            save_hf_directory(trainer.lightning_module.model, hf_directory_of(filepath))

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            shutil.rmtree(hf_directory_of(filepath), ignore_errors=True)


class StepSeed(Callback):
    """Seed torch before every training micro-batch from (seed, micro-batch, rank).

    Dropout noise then depends only on where training is, so a run resumed from a checkpoint continues
    exactly as an uninterrupted one would, and data-parallel ranks draw different noise.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        accumulate = trainer.accumulate_grad_batches
        micro_batch = trainer.global_step * accumulate + batch_idx % accumulate
        torch.manual_seed(hash((self.seed, micro_batch, trainer.global_rank)) % 2**63)
