"""One training run from a composed config: data, module, callbacks, loggers and trainer, then fit and test."""

from __future__ import annotations

import pickle
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from dnabert.atomic import write_json_atomic
from dnabert.models.checkpoints import unreadable
from dnabert.provenance import record_provenance, resolved_config


def train(cfg: DictConfig) -> float | None:
    """Instantiate data, module, callbacks, loggers and trainer from the config; fit; return the optimised metric."""
    config = resolved_config(cfg)  # missing values and batch sizes that do not divide fail here, before any work
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.task)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    output = Path(cfg.paths.output_dir)
    record_provenance(config, output, loggers)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    except pickle.UnpicklingError as error:  # the resumed checkpoint holds more than weights: never unpickled
        raise unreadable(Path(trainer.ckpt_path), error) from None
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    if cfg.data.get("test"):
        # the best checkpoint's weights (debug=fast_dev_run writes none: the weights as they are)
        results = trainer.test(module, datamodule=datamodule, ckpt_path=None if trainer.fast_dev_run else "best")[0]
        if trainer.is_global_zero:
            write_json_atomic(output / "test_metrics.json", {name: float(v) for name, v in results.items()})
    if trainer.is_global_zero:
        write_json_atomic(output / "metrics.json", metrics)
    return metrics.get(cfg.optimized_metric)
