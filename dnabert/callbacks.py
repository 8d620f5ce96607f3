"""Lightning callbacks: HF directories beside checkpoints, a checkpoint on SIGTERM, a stop on a non-finite loss, a
validation after the last step, per-step noise seeding for exact resume, the data-size schedule, a linear probe
that measures transfer during pretraining, and throughput (tokens/s, MFU) while training."""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar, ThroughputMonitor
from lightning.pytorch.callbacks.throughput_monitor import _plugin_to_compute_dtype
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from peft import PeftModel

from dnabert.data.finetuning import LabelledDataModule
from dnabert.errors import DnabertError
from dnabert.models.checkpoints import hf_directory_of, in_encoder, model_weights, save_hf_directory
from dnabert.models.linear_probe import check_layers, probe_scores
from dnabert.models.parameter_efficient import save_lora_directory
from dnabert.provenance import run_provenance


class HFModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that also writes (and prunes) a plain HF directory beside every `.ckpt` file.

    With `tie_break` (a metric where lower is better, e.g. `val/loss`), a checkpoint that ties the best score
    replaces it when its tie-break value is lower: small validation sets give few distinct AUROC values, and
    their ties are otherwise decided by order. `last.ckpt` is always the latest state: Lightning 2.6 refreshes it
    only when a top-k checkpoint is saved, which would make a restart resume from an older step. On SIGTERM
    (Lightning stops after the current batch) it is written at the current step, so the same command resumes
    there. The LightningModule exposes its model as `.model`.
    """

    def __init__(self, *args, tie_break: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tie_break = tie_break
        self.best_tie_break: float | None = None
        self._provenance: dict | None = None  # the run's provenance.json, read at the first export (it is fixed then)

    def check_monitor_top_k(self, trainer: L.Trainer, current: torch.Tensor | None = None) -> bool:
        better = super().check_monitor_top_k(trainer, current)
        if self.tie_break is None or current is None or self.save_top_k != 1:
            return better
        value = float(trainer.callback_metrics[self.tie_break])
        if not better and self.best_k_models:
            tied = bool(current == self.best_k_models[self.kth_best_model_path])
            better = trainer.strategy.reduce_boolean_decision(
                tied and (self.best_tie_break is None or value < self.best_tie_break))
        if better:
            self.best_tie_break = value
        return better

    def state_dict(self) -> dict:
        return {**super().state_dict(), "best_tie_break": self.best_tie_break}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.best_tie_break = state_dict.get("best_tie_break")

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
                validation = {name: float(value) for name, value in trainer.callback_metrics.items()
                              if name.startswith("val/")}
                if self._provenance is None:
                    self._provenance = run_provenance(Path(filepath).parents[1])
                save_hf_directory(model, directory, model_weights(weights), self._provenance, validation)

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            shutil.rmtree(hf_directory_of(filepath), ignore_errors=True)


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar, reading `Step 120/400` on runs that end at `trainer.max_steps` (where the epoch
    count is open: `Epoch 0/-2`), and without the `v_num` column."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs not in (None, -1) or trainer.max_steps in (None, -1):
            return super()._get_train_description(current_epoch)
        return f"Step {trainer.global_step}/{trainer.max_steps}"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args, **kwargs) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id,
                                 description=self._get_train_description(trainer.current_epoch))

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


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


class ValidateAtEnd(Callback):
    """Validate after the last training step when the schedule would not (a `trainer.max_steps` that ends inside an
    epoch, a last epoch between validation epochs), so the final weights compete for `best` and the test split is
    scored on a validated checkpoint."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        last_step = 0 < trainer.max_steps <= trainer.global_step
        last_batch = (trainer.fit_loop.epoch_loop.batch_progress.is_last_batch and trainer.max_epochs not in (None, -1)
                      and trainer.current_epoch + 1 >= trainer.max_epochs)
        if (last_step or last_batch) and trainer.enable_validation:
            # the loop's own test then validates after this batch: every batch is a check now, and none follows
            trainer.check_val_every_n_epoch, trainer.val_check_batch = None, 1


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


class DataSizeSchedule(Callback):
    """A fine-tuning schedule that follows the number of training rows of `data`: `trainer.max_epochs` is raised so
    that the run makes at least `min_steps` optimizer steps (a 100-row set gets as many updates as a large one),
    early stopping waits for them, and validation runs about every `val_every_steps` steps, in whole epochs (early
    stopping counts those checks). Set before the optimizer's schedule is sized from the epochs."""

    def __init__(self, data: LabelledDataModule, min_steps: int = 1000, val_every_steps: int = 100):
        if min_steps < 0 or val_every_steps < 1:
            raise DnabertError(f"callbacks.schedule: min_steps={min_steps} must be at least 0 and "
                               f"val_every_steps={val_every_steps} at least 1")
        self.data, self.min_steps, self.val_every_steps = data, min_steps, val_every_steps
        self.note: str | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.note and trainer.is_global_zero:  # said once every check has passed
            print(self.note, file=sys.stderr)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        rows = len(self.data.splits["train"])
        batches = math.ceil(rows / (self.data.batch_size * trainer.world_size))
        per_epoch = max(1, batches // trainer.accumulate_grad_batches)
        epochs = max(trainer.max_epochs, math.ceil(self.min_steps / per_epoch))
        self.note = (f"dnabert: {rows} training rows make {per_epoch} steps an epoch: up to {epochs} epochs for at "
                     f"least {self.min_steps} steps (callbacks.schedule.min_steps; callbacks.schedule=null trains "
                     f"exactly trainer.max_epochs={trainer.max_epochs})") if epochs > trainer.max_epochs else None
        trainer.fit_loop.max_epochs = epochs
        trainer.fit_loop.epoch_loop.min_steps = self.min_steps
        trainer.check_val_every_n_epoch = max(1, round(self.val_every_steps / per_epoch))


class FrozenEncoderStart(Callback):
    """Linear probing, then fine-tuning (LP-FT, Kumar et al. 2022): the encoder's weights stay frozen for the first
    `steps` optimizer steps, so the head fits the pretrained features before they move; then every weight trains.
    0 (the preset): every weight trains from the start. Full fine-tuning on one process only."""

    def __init__(self, steps: int = 0):
        if steps < 0:
            raise DnabertError(f"callbacks.frozen_encoder.steps={steps}: must be at least 0 (0: never frozen)")
        self.steps = steps
        self.frozen: list[torch.nn.Parameter] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step >= self.steps:  # nothing to freeze, or a resumed run past the frozen start
            return
        if trainer.world_size > 1:
            raise DnabertError("callbacks.frozen_encoder.steps needs one process (DDP keeps every weight training)")
        self.frozen = [p for name, p in pl_module.model.named_parameters() if in_encoder(name) and p.requires_grad]
        if not self.frozen:
            raise DnabertError("callbacks.frozen_encoder.steps: no trainable encoder weights to freeze; it needs "
                               "finetune=full")
        for parameter in self.frozen:
            parameter.requires_grad_(False)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.frozen and trainer.global_step >= self.steps:
            for parameter in self.frozen:
                parameter.requires_grad_(True)
            self.frozen = []


class TransferProbe(Callback):
    """Every `every_n_steps` optimizer steps (and before the first), fit a linear probe of the encoder being
    pretrained on a labelled set and log its validation metrics as `probe/<metric>` (e.g. `probe/auroc`).

    The probe is `LinearProbe` on the mean-pooled hidden states of `layers`, trained on at most `max_rows` training
    rows (seeded draw) and scored on the validation split (`val`, else `val_fraction` of `train`, seeded); test
    data is never read. It runs on rank 0, with the model in eval mode, between optimizer steps.
    """

    def __init__(self, train: str, val: str | None = None, val_fraction: float = 0.1, every_n_steps: int = 1000,
                 layers: list[int] = (-1,), max_rows: int = 2000, batch_size: int = 64, seed: int = 0):
        if every_n_steps < 1 or max_rows < 2:
            raise DnabertError(f"callbacks.linear_probe: every_n_steps={every_n_steps} and max_rows={max_rows} "
                               "must be at least 1 and 2")
        for key, path in (("train", train), ("val", val)):
            if path is not None and not Path(path).exists():
                raise DnabertError(f"callbacks.linear_probe.{key}={path}: file not found; give a labelled set")
        self.data_options = dict(train=train, val=val, val_fraction=val_fraction, seed=seed)
        self.data: LabelledDataModule | None = None
        self.every_n_steps, self.layers, self.max_rows = every_n_steps, list(layers), max_rows
        self.batch_size, self.seed = batch_size, seed
        self.last_step: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.data = LabelledDataModule(**self.data_options, k=pl_module.config.k)
        self.data.setup()
        check_layers(self.layers, pl_module.config.num_hidden_layers)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.probe(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self.probe(trainer, pl_module)

    def probe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Fit and score the probe at the current step (once per step, on rank 0)."""
        if not trainer.is_global_zero or self.last_step == trainer.global_step:
            return
        self.last_step = trainer.global_step
        scores = probe_scores(pl_module.model.bert, self.data.splits["train"], self.data.splits["val"],
                              self.data.label_info.num_labels, self.layers, self.max_rows, self.seed, self.batch_size)
        values = {f"probe/{name}": value for name, value in scores.items()}
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int | None = None, repeats: int = 3) -> float:
    """Measured matmul FLOP/s in `dtype` on `device`: the fastest of 5 timings of `repeats` square products (1024 on a
    CPU, 8192 on a GPU), after one untimed (a peak: the least disturbed timing)."""
    size = size or (8192 if device.type == "cuda" else 1024)
    generator = torch.Generator(device).manual_seed(0)  # its own: a run's random stream stays as it was
    a, b = (torch.randn(size, size, device=device, dtype=dtype, generator=generator) for _ in range(2))

    def timed() -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    timed()
    return 2 * size**3 * repeats / min(timed() for _ in range(5))


class Throughput(ThroughputMonitor):
    """Lightning's ThroughputMonitor on dnabert batches: per device, samples/s, real tokens/s (`items_per_sec`: the
    attention mask, no padding), FLOP/s from the module's `flops_per_batch` and MFU, logged every logging step over a
    window of `window_size` batches. MFU is against Lightning's peak table for the device; where it has none (a
    CPU), against a matmul measured at the start in the run's compute dtype, said in the log and logged as
    `device/peak_flops`."""

    def __init__(self, window_size: int = 10):
        super().__init__(batch_size_fn=lambda batch: len(batch["input_ids"]),
                         length_fn=lambda batch: int(batch["attention_mask"].sum()), window_size=max(window_size, 2))
        self.measured_peak: float | None = None
        """The matmul peak measured at the first stage (fit), kept for the validation and test that follow."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.available_flops is None:
            if self.measured_peak is None:
                device, dtype = trainer.strategy.root_device, _plugin_to_compute_dtype(trainer.precision_plugin)
                self.measured_peak = matmul_peak(device, dtype)
                rank_zero_info(f"MFU is against a {dtype} matmul measured here: {self.measured_peak / 1e9:,.1f} "
                               f"GFLOP/s on {device.type} ({torch.get_num_threads()} threads)")
                for logger in trainer.loggers:
                    logger.log_metrics({"device/peak_flops": self.measured_peak}, step=0)
            self.available_flops = self.measured_peak
            for throughput in self._throughputs.values():
                throughput.available_flops = self.measured_peak
