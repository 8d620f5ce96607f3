"""Fine-tuning: a `transformers` BertForSequenceClassification on labelled DNA, with whole-split metrics."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import nn
from torchmetrics import MeanMetric
from transformers import BertForSequenceClassification, PreTrainedModel

from dnabert.errors import DnabertError
from dnabert.models.checkpoints import ModelStart, config_from_dict
from dnabert.models.linear_probe import PENALTIES, LinearProbe
from dnabert.models.long_sequence import (
    BertForLongSequenceClassification,
    DNABertLongConfig,
)
from dnabert.models.metrics import task_metrics
from dnabert.models.module import DnabertModule
from dnabert.models.parameter_efficient import full
from dnabert.problems import LabelInfo, metric_inputs

STAGES = ("val", "test")


class SequenceClassifier(DnabertModule):
    """Classification (binary/multi-class), multi-label or regression head on a DNABERT encoder.

    The encoder starts from `start` (random, a dnabert .ckpt or a Hugging Face directory such as a published
    DNABERT), the head predicts `labels`; `finetune` then chooses which weights train
    (`dnabert.models.parameter_efficient`), and `gradient_checkpointing` trades compute for activation memory. The
    saved model is a plain HF BertForSequenceClassification with `id2label`.
    """

    def __init__(
        self,
        start: ModelStart,
        labels: LabelInfo,
        optimizer: Callable,
        scheduler: Callable | None = None,
        max_tokens: int = 512,
        overflow: str = "truncate",
        hidden_dropout_prob: float | None = None,
        chunk_aggregation: str | None = None,
        max_chunks: int = 8,
        attn_implementation: str = "sdpa",
        finetune: Callable[[PreTrainedModel], nn.Module] = full,
        gradient_checkpointing: bool = False,
    ):
        super().__init__(optimizer, scheduler)
        if (chunk_aggregation is None) != (overflow != "split"):
            raise DnabertError("long sequences need both data.overflow=split and task.chunk_aggregation "
                               "(mean, max, attention, lstm, gru or concat); set both or neither")
        if max_tokens > start.config.max_position_embeddings:
            raise DnabertError(f"data.max_tokens={max_tokens} exceeds the model's "
                               f"max_position_embeddings={start.config.max_position_embeddings}")
        updates = {} if hidden_dropout_prob is None else {"hidden_dropout_prob": hidden_dropout_prob}
        self.config = start.updated(
            **updates, num_labels=labels.num_labels, problem_type=labels.problem_type,
            id2label=dict(enumerate(labels.names)), label2id={name: i for i, name in enumerate(labels.names)},
        )
        self.model_class = BertForSequenceClassification
        if chunk_aggregation is not None:
            values = {**self.config.to_dict(), "chunk_aggregation": chunk_aggregation, "max_chunks": max_chunks,
                      "model_type": DNABertLongConfig.model_type}
            self.config = config_from_dict(values)
            self.model_class = BertForLongSequenceClassification
        self.start: ModelStart | None = start
        self.label_info = labels
        self.attn_implementation = attn_implementation
        self.finetune = finetune
        self.gradient_checkpointing = gradient_checkpointing
        self.model: nn.Module | None = None
        self.metrics = nn.ModuleDict()
        self.predicted_counts: torch.Tensor | None = None
        """Validation rows predicted as each class in the current (then the last) validation pass."""

    def configure_model(self) -> None:
        if self.model is not None:
            return
        model = self.start.build(self.model_class, self.config, self.attn_implementation)
        self.start = None  # built: a checkpoint's weights are not kept twice
        if self.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model = self.finetune(model)
        task_type, num_labels = self.label_info.task_type, self.label_info.num_labels
        self.metrics = nn.ModuleDict({stage: task_metrics(task_type, num_labels) for stage in STAGES})
        # the mean loss over a split's rows, summed over ranks before dividing: every row counts once under DDP
        self.losses = nn.ModuleDict({stage: MeanMetric() for stage in STAGES})

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        self.count_flops(batch["attention_mask"], len(batch["input_ids"]))
        output = self.model(**batch)
        return output.loss, output.logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def _evaluate(self, stage: str, batch: dict[str, torch.Tensor]) -> None:
        loss, logits = self._loss(batch)
        self.losses[stage].update(loss.detach(), weight=len(batch["labels"]))
        targets = batch["labels"] if self.label_info.task_type != "multilabel" else batch["labels"].long()
        if self.label_info.task_type == "regression" and targets.shape[-1] == 1:
            targets = targets.squeeze(-1)
        self.metrics[stage].update(metric_inputs(self.label_info.task_type, logits.float()), targets)
        if stage == "val" and self.label_info.task_type == "classification":
            counts = torch.bincount(logits.argmax(-1), minlength=logits.shape[-1])
            self.predicted_counts = counts if self.predicted_counts is None else self.predicted_counts + counts

    def on_validation_epoch_start(self) -> None:
        self.predicted_counts = None

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def _log_metrics(self, stage: str) -> None:
        values = {"loss": self.losses[stage].compute(), **self.metrics[stage].compute()}  # synced over ranks
        # the same value on every rank: sync_dist only states it (Lightning warns about epoch values without it)
        self.log_dict({f"{stage}/{name}": value.float().mean() for name, value in values.items()}, prog_bar=False,
                      sync_dist=True)
        self.metrics[stage].reset()
        self.losses[stage].reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")
        if self.predicted_counts is not None:
            gathered = self.all_gather(self.predicted_counts)
            self.predicted_counts = gathered.reshape(-1, len(self.predicted_counts)).sum(0)

    def on_fit_end(self) -> None:
        """Say so in one line when the last validation pass put every row in one class (the run learned nothing)."""
        counts = self.predicted_counts
        if counts is None or (counts > 0).sum() != 1 or not self.trainer.is_global_zero:
            return
        name = self.config.id2label[int(counts.argmax())]
        print(f"dnabert: warning: every validation sequence ({int(counts.sum())}) was predicted as class '{name}': the "
              "model does not separate the classes yet; train longer (callbacks.schedule.min_steps), raise "
              "task.optimizer.lr, or start from a pretrained model.init", file=sys.stderr)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")


class ProbeClassifier(SequenceClassifier):
    """`finetune=frozen_probe`: a logistic regression on the frozen encoder's mean-pooled hidden states.

    One pass over the training rows collects their features; before validation the regression is fitted on them
    (`LinearProbe`, the penalty chosen by `folds`-fold cross-validation on the training rows only) and training
    stops. The saved model is `BertForProbeClassification` (encoder, pooling, standardisation, linear layer).
    """

    def __init__(self, *args, penalties: list[float] = PENALTIES, folds: int = 5, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False
        self.penalties, self.folds, self.seed = list(penalties), folds, seed
        self.features: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def configure_model(self) -> None:
        super().configure_model()
        self.config = self.model.config

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.model.eval()  # frozen and deterministic: no dropout in the features
        with torch.no_grad():
            self.features.append(self.model.features(batch["input_ids"], batch["attention_mask"]))
        self.labels.append(batch["labels"])

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        if not self.features:
            return
        features, labels = (self.all_gather(torch.cat(parts)) for parts in (self.features, self.labels))
        if self.trainer.world_size > 1:
            features, labels = features.flatten(0, 1), labels.flatten(0, 1)
        probe = LinearProbe.fit(features.double().cpu().numpy(), labels.cpu().numpy(), self.config.num_labels,
                                self.penalties, self.folds, seed=self.seed)
        self.model.set_probe(probe)
        # the fit is this run's one optimizer step: it advances global_step, so checkpoints are written for it
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        progress.increment_completed()
        self.log("probe/penalty", probe.penalty)
        self.features, self.labels = [], []
        self.trainer.should_stop = True  # fitted in one pass: no further epochs

    def configure_optimizers(self) -> None:
        return None
