"""One training run from a composed config: data, module, callbacks, loggers and trainer, then fit and test."""

from __future__ import annotations

import functools
import pickle
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from dnabert.atomic import write_json_atomic
from dnabert.cluster import requeue_at_step_boundary
from dnabert.console import quiet_third_party
from dnabert.errors import DnabertError
from dnabert.models.checkpoints import ModelStart, hf_directory_of, unreadable
from dnabert.models.model_card import write_model_card
from dnabert.provenance import record_provenance, resolved_config, run_provenance
from dnabert.summary import run_summary


def data_and_module(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The run's data (tokenized with the model's k) and task module (given the model's start and what the data
    says: labels, token budget), with `model.init` read once."""
    start = ModelStart.read(cfg.model.init, instantiate(cfg.model.config))
    datamodule = instantiate(cfg.data, k=start.k)
    # objects, not config values: given to the partial the config makes
    module = instantiate(cfg.task, _partial_=True)(start=start, **datamodule.model_inputs())
    return datamodule, module


def train(cfg: DictConfig) -> float | None:
    """Build data, module, callbacks, loggers and trainer from the config; fit; return the optimised metric."""
    config = resolved_config(cfg)  # missing values and batch sizes that do not divide fail here, before any work
    quiet_third_party()
    if cfg.get("threads"):  # results depend on it: part of the run's identity
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True)
    datamodule, module = data_and_module(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    # a callback configured as a partial is one that reads the run's data (callbacks.schedule: its size)
    callbacks = [c(data=datamodule) if isinstance(c, functools.partial) else c for c in callbacks]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    output = Path(cfg.paths.output_dir)
    record_provenance(config, output, loggers)
    started = time.monotonic()
    try:
        with requeue_at_step_boundary():  # under submitit: last.ckpt at the step the time-limit signal ends
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from(cfg.ckpt_path, trainer))
    except pickle.UnpicklingError as error:  # the resumed checkpoint holds more than weights: never unpickled
        raise unreadable(Path(trainer.ckpt_path), error) from None
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    if cfg.data.get("test") or cfg.data.get("folds"):  # a test file, or a cross-validation fold
        # the best checkpoint's weights (debug=fast_dev_run writes none: the weights as they are), on validation
        # (what a study selects on) and on test (scored once, never read to choose)
        best = None if trainer.fast_dev_run else "best"
        if best and not getattr(trainer.checkpoint_callback, "best_model_path", ""):
            raise DnabertError(f"the run ended at step {trainer.global_step} without a validation, so there is no best "
                               "checkpoint to score on the test split; give validation rows (data.val, or "
                               "data.val_fraction above 0) and trainer.limit_val_batches above 0")
        scores = {}
        for stage, evaluate in (("val", trainer.validate), ("test", trainer.test)):
            results = evaluate(module, datamodule=datamodule, ckpt_path=best)[0]
            scores[stage] = {name: float(value) for name, value in results.items()}
            if trainer.is_global_zero:
                write_json_atomic(output / f"{stage}_metrics.json", scores[stage])
        if best and trainer.is_global_zero:  # the best model's card, now with its test score
            best_hf = hf_directory_of(trainer.checkpoint_callback.best_model_path)
            if (best_hf / "config.json").is_file():
                config = ModelStart.read(str(best_hf)).config
                write_model_card(best_hf, config, config.k, module.model.num_parameters(), run_provenance(output),
                                 scores["val"] | scores["test"])
    if trainer.is_global_zero:
        write_json_atomic(output / "metrics.json", metrics)
        print(run_summary(trainer, metrics, time.monotonic() - started, output))
    return metrics.get(cfg.optimized_metric)


def resume_from(ckpt_path: str | None, trainer: L.Trainer) -> str | None:
    """`ckpt_path=last` resumes from the run's last.ckpt where there is one (Lightning says so) and starts afresh where
    there is none, without Lightning's warning that it found nothing; any other value goes to Lightning as it is."""
    if ckpt_path != "last":
        return ckpt_path
    dirpath = getattr(trainer.checkpoint_callback, "dirpath", None)
    last = Path(dirpath) / "last.ckpt" if dirpath else None
    return str(last) if last is not None and last.is_file() else None
