"""Linear probes: a frozen encoder's mean-pooled hidden states (chosen layers) into an L2 logistic regression.

`LinearProbe` fits the regression on standardised features by L-BFGS, its penalty chosen by cross-validation on
the training rows only. `BertForProbeClassification` is the fitted probe as a Hugging Face model (frozen encoder,
pooling, standardisation and the linear layer), registered with the Auto classes so that `dnabert predict` and
`AutoModelForSequenceClassification` load it once dnabert is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    BertPreTrainedModel,
)
from transformers.loss.loss_utils import ForSequenceClassificationLoss
from transformers.modeling_outputs import SequenceClassifierOutput

from dnabert.data.finetuning import LabelledSplit
from dnabert.errors import DnabertError
from dnabert.models.inputs import batches, encode_batch
from dnabert.models.metrics import task_metrics
from dnabert.problems import metric_inputs
from dnabert.tokenization import NUM_SPECIAL, UNK_ID

PENALTIES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
"""L2 penalties (on the mean cross-entropy, standardised features) tried by cross-validation."""


def kmer_mean(states: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T, H) hidden states over each row's k-mer tokens (no `[CLS]`, `[SEP]` or padding)."""
    weights = ((input_ids >= NUM_SPECIAL) | (input_ids == UNK_ID)).unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1)


def pooled_layers(encoder: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  layers: Sequence[int]) -> torch.Tensor:
    """Mean-pooled hidden states of `layers` (0 = embeddings, -1 = last), concatenated: (B, len(layers) x H)."""
    output = encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return torch.cat([kmer_mean(output.hidden_states[layer].float(), input_ids) for layer in layers], dim=-1)


@torch.no_grad()
def encoder_features(encoder: BertModel, sequences: Sequence[str], layers: Sequence[int], batch_size: int = 64,
                     max_tokens: int = 512) -> np.ndarray:
    """(N, len(layers) x H) mean-pooled features of raw sequences (each truncated to `max_tokens`), encoder in eval
    mode (its training mode is restored afterwards)."""
    training = encoder.training
    encoder.eval()
    parts = []
    for _, batch in batches(sequences, batch_size):
        _, inputs = encode_batch(encoder, batch, max_tokens)
        parts.append(pooled_layers(encoder, inputs["input_ids"], inputs["attention_mask"], layers))
    encoder.train(training)
    return torch.cat(parts).double().numpy()


def check_layers(layers: Sequence[int], num_hidden_layers: int) -> list[int]:
    """Layer indices as a list, each within the encoder's embeddings (0) .. last layer (-1 or num_hidden_layers)."""
    layers = list(layers)
    if not layers or any(not -num_hidden_layers - 1 <= layer <= num_hidden_layers for layer in layers):
        raise DnabertError(f"probe layers {layers}: choose from 0 (embeddings) to {num_hidden_layers} "
                           f"(or -1 for the last layer)")
    return layers


@dataclass
class LinearProbe:
    """A fitted multinomial logistic regression on standardised features."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    penalty: float

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, num_classes: int, penalties: Sequence[float] = PENALTIES,
            folds: int = 5, seed: int = 0) -> LinearProbe:
        """Fit on (N, F) features and integer labels; the penalty with the lowest cross-validated log loss wins."""
        if len(np.unique(labels)) < 2:
            raise DnabertError("the probe's training rows hold a single class; a probe needs at least two")
        mean, scale = features.mean(0), features.std(0) + 1e-6
        x = torch.from_numpy((features - mean) / scale).double()
        y = torch.from_numpy(labels).long()
        fold = np.random.default_rng(seed).permutation(len(labels)) % max(2, min(folds, len(labels)))
        losses = []
        for penalty in penalties:
            held_losses = []
            for part in np.unique(fold):
                train, held = torch.from_numpy(fold != part), torch.from_numpy(fold == part)
                weight, bias = _fit_regression(x[train], y[train], num_classes, penalty)
                held_losses.append(nn.functional.cross_entropy(x[held] @ weight.T + bias, y[held]).item())
            losses.append(np.mean(held_losses))
        best = float(penalties[int(np.argmin(losses))])
        weight, bias = _fit_regression(x, y, num_classes, best)
        return cls(mean.astype(np.float32), scale.astype(np.float32), weight.float().numpy(), bias.float().numpy(),
                   best)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(N, classes) logits of (N, F) features."""
        return ((features - self.mean) / self.scale) @ self.weight.T + self.bias


def _fit_regression(x: torch.Tensor, y: torch.Tensor, num_classes: int, penalty: float
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias minimising mean cross-entropy + penalty/2 x |W|^2 (L-BFGS, float64)."""
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=500, tolerance_grad=1e-7,
                                  line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(x @ weight.T + bias, y) + penalty / 2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return weight.detach(), bias.detach()


def probe_scores(encoder: BertModel, train: LabelledSplit, val: LabelledSplit, num_classes: int,
                 layers: Sequence[int] = (-1,), max_rows: int | None = None, seed: int = 0,
                 batch_size: int = 64) -> dict[str, float]:
    """Validation metrics of a `LinearProbe` of `encoder` fitted on (at most `max_rows`, a seeded draw of) `train`."""
    rows = np.sort(np.random.default_rng(seed).permutation(len(train))[:max_rows])
    features = {name: encoder_features(encoder, sequences, layers, batch_size)
                for name, sequences in (("train", [train.sequences[i] for i in rows]), ("val", val.sequences))}
    probe = LinearProbe.fit(features["train"], train.labels[rows].ravel(), num_classes, seed=seed)
    metrics = task_metrics("classification", num_classes)
    logits = torch.from_numpy(probe.logits(features["val"]))
    metrics.update(metric_inputs("classification", logits), torch.from_numpy(val.labels.ravel()))
    return {name: float(value) for name, value in metrics.compute().items()}


class DNABertProbeConfig(BertConfig):
    """BertConfig plus the hidden layers whose mean-pooled states a linear probe reads."""

    model_type = "dnabert-probe"

    def __init__(self, probe_layers: Sequence[int] = (-1,), **kwargs):
        super().__init__(**kwargs)
        self.probe_layers = list(probe_layers)


class BertForProbeClassification(BertPreTrainedModel):
    """A frozen BERT encoder, mean pooling over k-mer tokens of the probe layers, standardisation, a linear layer."""

    config_class = DNABertProbeConfig

    def __init__(self, config: DNABertProbeConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        width = len(config.probe_layers) * config.hidden_size
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_scale", torch.ones(width))
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()
        self.bert.requires_grad_(False)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled (not yet standardised) features of a batch, (B, layers x hidden)."""
        return pooled_layers(self.bert, input_ids, attention_mask, self.config.probe_layers)

    def set_probe(self, probe: LinearProbe) -> None:
        """Take a fitted probe's standardisation and weights."""
        with torch.no_grad():
            self.feature_mean.copy_(torch.from_numpy(probe.mean))
            self.feature_scale.copy_(torch.from_numpy(probe.scale))
            self.classifier.weight.copy_(torch.from_numpy(probe.weight))
            self.classifier.bias.copy_(torch.from_numpy(probe.bias))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None,
                **kwargs) -> SequenceClassifierOutput:
        standardised = (self.features(input_ids, attention_mask) - self.feature_mean) / self.feature_scale
        logits = self.classifier(standardised)
        loss = None if labels is None else ForSequenceClassificationLoss(labels, logits, self.config)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def frozen_probe(model: BertPreTrainedModel, layers: Sequence[int] = (-1,)) -> BertForProbeClassification:
    """The probe model on `model`'s encoder (its weights), reading the mean-pooled states of `layers`."""
    if getattr(model.config, "chunk_aggregation", None) is not None:
        raise DnabertError("finetune=frozen_probe reads one window per sequence: use it without "
                           "data.overflow=split and task.chunk_aggregation")
    if model.config.problem_type != "single_label_classification":
        raise DnabertError(f"finetune=frozen_probe fits a logistic regression: it needs a classification task, "
                           f"not {model.config.problem_type}")
    layers = check_layers(layers, model.config.num_hidden_layers)
    config = DNABertProbeConfig(**{**model.config.to_dict(), "model_type": DNABertProbeConfig.model_type,
                                   "probe_layers": layers})
    probe = BertForProbeClassification(config)
    probe.bert.load_state_dict(model.bert.state_dict(), strict=False)  # the pooler stays behind
    return probe


AutoConfig.register(DNABertProbeConfig.model_type, DNABertProbeConfig)
AutoModelForSequenceClassification.register(DNABertProbeConfig, BertForProbeClassification)
