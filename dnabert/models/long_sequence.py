"""DNABERT-XL: sequences longer than one BERT window, as 510-k-mer chunks whose embeddings are aggregated.

Each chunk is its own `[CLS] k-mers [SEP]` row (position ids restart, as in DNABERT); `chunk_owner` says
which sequence of the batch a row belongs to (rows of one sequence are consecutive). The chunk [CLS]
embeddings are combined by mean, max, attention pooling, a bidirectional LSTM/GRU (final states of both
directions summed, as DNABERT's `dnalong`), or concatenation of the first `max_chunks` (`dnalongcat`).
Registered with the Auto classes, so `AutoModelForSequenceClassification` loads it once dnabert is imported.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, BertModel, BertPreTrainedModel
from transformers.loss.loss_utils import ForSequenceClassificationLoss
from transformers.modeling_outputs import SequenceClassifierOutput

from dnabert.errors import DnabertError

AGGREGATIONS = ("mean", "max", "attention", "lstm", "gru", "concat")


class DNABertLongConfig(BertConfig):
    """BertConfig plus how chunk embeddings are aggregated."""

    model_type = "dnabert-long"

    def __init__(self, chunk_aggregation: str = "mean", max_chunks: int = 8, **kwargs):
        super().__init__(**kwargs)
        if chunk_aggregation not in AGGREGATIONS:
            raise DnabertError(f"chunk_aggregation={chunk_aggregation!r}: use one of {', '.join(AGGREGATIONS)}")
        self.chunk_aggregation = chunk_aggregation
        self.max_chunks = max_chunks


class BertForLongSequenceClassification(BertPreTrainedModel):
    """A BERT encoder applied per chunk, an aggregator over chunks, dropout and a linear head."""

    config_class = DNABertLongConfig

    def __init__(self, config: DNABertLongConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.bert = BertModel(config)
        mode = config.chunk_aggregation
        if mode == "attention":
            self.chunk_scores = nn.Linear(hidden, 1)
        elif mode in ("lstm", "gru"):
            self.rnn = getattr(nn, mode.upper())(hidden, hidden, batch_first=True, bidirectional=True)
        elif mode == "concat":
            self.project = nn.Sequential(nn.Linear(config.max_chunks * hidden, hidden), nn.ReLU())
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(hidden, config.num_labels)
        self.post_init()

    def aggregate(self, chunks: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(batch, chunks, hidden) embeddings with a presence mask -> (batch, hidden)."""
        mode = self.config.chunk_aggregation
        weights = present.unsqueeze(-1).to(chunks.dtype)
        if mode == "mean":
            return (chunks * weights).sum(1) / weights.sum(1).clamp(min=1)
        if mode == "max":
            return chunks.masked_fill(~present.unsqueeze(-1), torch.finfo(chunks.dtype).min).amax(1)
        if mode == "attention":
            scores = self.chunk_scores(chunks).squeeze(-1).masked_fill(~present, torch.finfo(chunks.dtype).min)
            return (scores.softmax(-1).unsqueeze(-1) * chunks).sum(1)
        if mode == "concat":
            return self.project((chunks * weights)[:, : self.config.max_chunks].flatten(1))
        packed = pack_padded_sequence(chunks, present.sum(1).cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        final = state[0] if isinstance(state, tuple) else state
        return final.sum(0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, chunk_owner: torch.Tensor,
                labels: torch.Tensor | None = None, **kwargs) -> SequenceClassifierOutput:
        pooled = self.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        batch = int(chunk_owner.max()) + 1
        counts = torch.bincount(chunk_owner, minlength=batch)
        width = max(int(counts.max()), self.config.max_chunks if self.config.chunk_aggregation == "concat" else 1)
        first_row = torch.cumsum(counts, 0) - counts
        within = torch.arange(len(chunk_owner), device=pooled.device) - first_row[chunk_owner]
        chunks = pooled.new_zeros(batch, width, pooled.shape[-1])
        chunks[chunk_owner, within] = pooled
        present = torch.arange(width, device=pooled.device)[None, :] < counts[:, None]
        logits = self.classifier(self.dropout(self.aggregate(chunks, present)))
        loss = None if labels is None else ForSequenceClassificationLoss(labels, logits, self.config)
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(DNABertLongConfig.model_type, DNABertLongConfig)
AutoModelForSequenceClassification.register(DNABertLongConfig, BertForLongSequenceClassification)
