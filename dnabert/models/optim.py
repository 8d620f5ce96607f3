"""Optimisation shared by every module: AdamW groups without decay on bias/LayerNorm, linear warm-up/decay."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from dnabert.errors import DnabertError


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weights, none on biases and LayerNorm parameters."""
    no_decay = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    decay, plain = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (plain if name.endswith("bias") or id(parameter) in no_decay else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def linear_schedule(optimizer: Optimizer, total_steps: int, warmup: float = 0.1,
                    decay_steps: int | None = None) -> LambdaLR:
    """Linear warm-up to the peak LR, then linear decay to 0 at `decay_steps` (default: the run's total steps).

    `warmup` below 1 is a fraction of the decay horizon (DNABERT fine-tuning: 0.1), otherwise a step count.
    """
    horizon = int(decay_steps or total_steps)
    if horizon <= 0 or warmup < 0:
        raise DnabertError(f"scheduler: decay over {horizon} steps with warm-up {warmup} is not possible")
    warmup_steps = int(warmup * horizon) if warmup < 1 else int(warmup)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (horizon - step) / max(1, horizon - warmup_steps))

    return LambdaLR(optimizer, factor)


def configure_optimization(module: L.LightningModule, model: nn.Module, optimizer: Callable,
                           scheduler: Callable | None) -> dict:
    """Lightning's `configure_optimizers` result for `model` from the config's partial optimizer/scheduler."""
    weight_decay = getattr(optimizer, "keywords", {}).get("weight_decay", 0.0)
    try:
        built = optimizer(parameter_groups(model, weight_decay))
    except ValueError as error:
        raise DnabertError(f"task.optimizer: {error}; fix the value in the config") from error
    if scheduler is None:
        return {"optimizer": built}
    schedule = scheduler(built, total_steps=module.trainer.estimated_stepping_batches)
    return {"optimizer": built, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
