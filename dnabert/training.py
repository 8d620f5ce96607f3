"""One training run from a composed config: data, module, callbacks, loggers and trainer, then fit and test."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from dnabert.atomic import write_json_atomic
from dnabert.cluster import requeue_at_step_boundary
from dnabert.errors import DnabertError
from dnabert.models.checkpoints import ModelStart, unreadable
from dnabert.provenance import record_provenance, resolved_config


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
    L.seed_everything(cfg.seed, workers=True)
    datamodule, module = data_and_module(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    # a callback configured as a partial is one that reads the run's data (callbacks.schedule: its size)
    callbacks = [c(data=datamodule) if isinstance(c, functools.partial) else c for c in callbacks]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    output = Path(cfg.paths.output_dir)
    record_provenance(config, output, loggers)
    try:
        with requeue_at_step_boundary():  # under submitit: last.ckpt at the step the time-limit signal ends
            trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    except pickle.UnpicklingError as error:  # the resumed checkpoint holds more than weights: never unpickled
        raise unreadable(Path(trainer.ckpt_path), error) from None
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    if cfg.data.get("test"):
        # the best checkpoint's weights (debug=fast_dev_run writes none: the weights as they are), on validation
        # (what a study selects on) and on test (scored once, never read to choose)
        best = None if trainer.fast_dev_run else "best"
        if best and not getattr(trainer.checkpoint_callback, "best_model_path", ""):
            raise DnabertError(f"the run ended at step {trainer.global_step} without a validation, so there is no best "
                               "checkpoint to score on the test split; give validation rows (data.val, or "
                               "data.val_fraction above 0) and trainer.limit_val_batches above 0")
        for stage, evaluate in (("val", trainer.validate), ("test", trainer.test)):
            results = evaluate(module, datamodule=datamodule, ckpt_path=best)[0]
            if trainer.is_global_zero:
                write_json_atomic(output / f"{stage}_metrics.json", {name: float(v) for name, v in results.items()})
    if trainer.is_global_zero:
        write_json_atomic(output / "metrics.json", metrics)
    return metrics.get(cfg.optimized_metric)
