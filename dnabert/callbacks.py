"""Lightning callbacks: HF directories beside checkpoints, a checkpoint on SIGTERM, a stop on a non-finite loss,
and per-step noise seeding for exact resume."""

from __future__ import annotations

import shutil
import sys

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from peft import PeftModel

from dnabert.errors import DnabertError
from dnabert.models.hf_export import hf_directory_of, save_hf_directory
from dnabert.models.parameter_efficient import save_lora_directory

MODEL_PREFIX = "model."
"""Keys of the LightningModule's state dict that belong to its HF model (`module.model`)."""


class HFModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that also writes (and prunes) a plain HF directory beside every `.ckpt` file.

    `last.ckpt` is always the latest state: Lightning 2.6 refreshes it only when a top-k checkpoint is saved,
    which would make a restart resume from an older step. On SIGTERM (Lightning stops after the current batch)
    it is written at the current step, so the same command resumes there. The LightningModule exposes its
    model as `.model`.
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

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        if isinstance(exception, SIGTERMException) and self.save_last and trainer.state.fn == TrainerFn.FITTING:
            self._refresh_last(trainer)
            if trainer.is_global_zero:
                print(f"dnabert: stopped by SIGTERM at step {trainer.global_step}; saved {self.last_model_path}: "
                      "run the same command to resume", file=sys.stderr)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        weights = trainer.strategy.lightning_module_state_dict()  # every rank: FSDP gathers the full weights here
        if trainer.is_global_zero:
            model, directory = trainer.lightning_module.model, hf_directory_of(filepath)
            if isinstance(model, PeftModel):  # finetune=lora: the merged model, and the adapter in adapter/
                save_lora_directory(model, directory)
            else:
                weights = {k.removeprefix(MODEL_PREFIX): v for k, v in weights.items() if k.startswith(MODEL_PREFIX)}
                save_hf_directory(model, directory, weights)

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            shutil.rmtree(hf_directory_of(filepath), ignore_errors=True)


class FiniteLoss(Callback):
    """Stop training with one line when a loss is NaN or infinite, before its backward pass.

    No update of that step reaches the weights, so the checkpoints on disk stay the last good state. The
    decision is reduced over ranks, so every data-parallel process stops together.
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss).all()), all=True):
            return
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") or "no checkpoint yet"
        raise DnabertError(f"training loss is {loss.item()} at step {trainer.global_step} (NaN or infinite): "
                           f"stopped before the update; last checkpoint: {last}")


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
