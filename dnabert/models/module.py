"""What both training modules share: the model's config saved in every checkpoint, AdamW and the LR schedule, and the
matmul FLOPs of each batch (for Lightning's ThroughputMonitor)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertEmbeddings, BertEncoder

from dnabert.models.checkpoints import store_config
from dnabert.models.optim import configure_optimization


def matmul_flops(encoder: int, head: int, config: BertConfig, lengths: torch.Tensor, head_positions: int,
                 backward: bool = True) -> float:
    """Matmul FLOPs of one step on sequences of `lengths` real tokens: 2 per `encoder` parameter per token, 4 x layers
    x hidden x sequence length per token for attention scores and their weighted sum, 2 per `head` parameter at each
    of `head_positions`; three times that with the backward pass (weights' gradients included). Padding, embedding
    lookups, norms and softmax are not counted."""
    squares = float((lengths.double() ** 2).sum())
    forward = (2 * encoder * float(lengths.sum()) + 4 * config.num_hidden_layers * config.hidden_size * squares
               + 2 * head * head_positions)
    return 3 * forward if backward else forward


class DnabertModule(L.LightningModule):
    """A LightningModule around one HF model (`self.model`, built from `self.config`) trained by the config's
    partial optimizer and scheduler; its checkpoints carry the config, so they load without the run's files."""

    config: BertConfig
    model: nn.Module | None
    flops_per_batch: float | None = None
    """Matmul FLOPs of the latest batch (`count_flops`): what ThroughputMonitor turns into FLOP/s and MFU."""

    def __init__(self, optimizer: Callable, scheduler: Callable | None = None):
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    @functools.cached_property
    def matmul_weights(self) -> tuple[int, int]:
        """Weights of the model's encoder and of its head (every weight outside encoder and embeddings; a decoder
        tied to the word embeddings counted), counted once: the model's shape does not change while it trains."""
        parts = {name + ".": module for name, module in self.model.named_modules()
                 if isinstance(module, (BertEncoder, BertEmbeddings))}
        counts = {"encoder": 0, "head": 0}
        for name, weight in self.model.named_parameters(remove_duplicate=False):
            part = next((module for prefix, module in parts.items() if name.startswith(prefix)), None)
            if not isinstance(part, BertEmbeddings):
                counts["encoder" if part is not None else "head"] += weight.numel()
        return counts["encoder"], counts["head"]

    def count_flops(self, attention_mask: torch.Tensor, head_positions: int) -> None:
        """`flops_per_batch` of this batch (`matmul_flops` of `matmul_weights` at `head_positions`; the backward pass
        counted in training)."""
        self.flops_per_batch = matmul_flops(*self.matmul_weights, self.config, attention_mask.sum(1), head_positions,
                                            backward=self.training)

    def configure_optimizers(self) -> dict:
        return configure_optimization(self, self.model, self.optimizer_factory, self.scheduler_factory)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        store_config(checkpoint, self.config)
