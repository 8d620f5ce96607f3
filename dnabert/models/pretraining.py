"""Masked-k-mer pretraining of a `transformers` BertForMaskedLM (DNABERT's objective)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, Metric
from transformers import BertForMaskedLM

from dnabert.data.masking import IGNORE_INDEX, SpanMasking, hidden_nucleotides, nucleotides_of
from dnabert.errors import DnabertError
from dnabert.models.checkpoints import ModelStart
from dnabert.models.hidden_nucleotides import (
    HiddenNucleotideAccuracy,
    LocalBaseline,
    nucleotide_probabilities,
    predicted_nucleotides,
)
from dnabert.models.module import DnabertModule
from dnabert.tokenization import vocab_size


class KmerFrequencyBaseline(Metric):
    """Accuracy of always predicting the most frequent masked k-mer (a no-context baseline)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.add_state("counts", default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, labels: torch.Tensor) -> None:
        self.counts += torch.bincount(labels, minlength=self.counts.numel())

    def compute(self) -> torch.Tensor:
        return self.counts.max() / self.counts.sum().clamp(min=1)


class MaskedKmerModule(DnabertModule):
    """BertForMaskedLM trained on masked k-mers; logs loss, masked-token accuracy, perplexity, and how well it
    recovers hidden nucleotides next to local k-mer statistics of the training sequence (`baseline_orders`)."""

    def __init__(
        self,
        start: ModelStart,
        masking: SpanMasking,
        optimizer: Callable,
        scheduler: Callable | None = None,
        max_tokens: int = 512,
        training_sequence: Callable[[], str] | None = None,
        attn_implementation: str = "sdpa",
        baseline_orders: list[int] = (2, 3, 4),
    ):
        super().__init__(optimizer, scheduler)
        config = start.config
        if config.vocab_size != vocab_size(config.k):
            raise DnabertError(f"model: vocab_size={config.vocab_size} does not fit k={config.k} (expected 4**k + 5)")
        if max_tokens > config.max_position_embeddings:
            raise DnabertError(f"data.max_tokens={max_tokens} exceeds the model's max_position_embeddings="
                               f"{config.max_position_embeddings}; lower data.max_tokens")
        self.config = config
        self.model = start.build(BertForMaskedLM, attn_implementation=attn_implementation)
        self.masking = masking
        self.training_sequence = training_sequence
        self.val_loss = MeanMetric()
        self.val_accuracy = MeanMetric()
        self.val_baseline = KmerFrequencyBaseline(config.vocab_size)
        self.val_hidden = HiddenNucleotideAccuracy(baseline_orders)

    def setup(self, stage: str) -> None:
        if self.val_hidden.baseline is None and self.val_hidden.orders and self.training_sequence is not None:
            self.val_hidden.baseline = LocalBaseline(self.training_sequence(), self.val_hidden.orders)

    def masked_predictions(self, batch: dict[str, torch.Tensor], step: int
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits at the masked positions of a batch, the true k-mer ids there, the masked-position flags and the
        model's input."""
        inputs, labels = self.masking(batch["input_ids"], batch["noise"], step)
        hidden = self.model.bert(input_ids=inputs, attention_mask=batch["attention_mask"]).last_hidden_state
        selected = labels != IGNORE_INDEX
        self.count_flops(batch["attention_mask"], int(selected.sum()))
        return self.model.cls(hidden[selected]), labels[selected], selected, inputs

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, targets, _, _ = self.masked_predictions(batch, self.global_step)
        # mean over masked tokens; a micro-batch of short windows may have none: loss 0, not NaN
        loss = F.cross_entropy(logits.float(), targets, reduction="sum") / max(len(targets), 1)
        size = len(batch["input_ids"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/accuracy", (logits.argmax(-1) == targets).float().mean(), batch_size=size)
        self.log("train/mask_rate", float(self.masking.rate_at(self.global_step)), batch_size=size)
        self.log("train/hidden_per_span", float(self.masking.hidden_per_span(self.global_step)), batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits, targets, selected, inputs = self.masked_predictions(batch, self.global_step)
        loss = F.cross_entropy(logits.float(), targets, reduction="none")
        self.val_loss.update(loss)
        self.val_accuracy.update((logits.argmax(-1) == targets).float())
        self.val_baseline.update(targets)
        k = self.config.k
        ids = batch["input_ids"]
        token_probabilities = logits.new_zeros(*ids.shape, k, 4, dtype=torch.float32)
        token_probabilities[selected] = nucleotide_probabilities(logits, k)
        self.val_hidden.update(nucleotides_of(ids, k), hidden_nucleotides(ids, inputs, k),
                               predicted_nucleotides(token_probabilities, k))

    def on_validation_epoch_end(self) -> None:
        loss = self.val_loss.compute()
        self.log_dict({
            "val/loss": loss,
            "val/perplexity": loss.exp(),
            "val/accuracy": self.val_accuracy.compute(),
            "val/kmer_frequency_baseline": self.val_baseline.compute(),
        }, prog_bar=True, sync_dist=False)
        self.log_dict({f"val/{name}": value for name, value in self.val_hidden.compute().items()}, sync_dist=False)
        for metric in (self.val_loss, self.val_accuracy, self.val_baseline, self.val_hidden):
            metric.reset()
