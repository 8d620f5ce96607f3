"""Integrated-gradients attributions per nucleotide (captum), spread from k-mers like the attention scores.

Gradients are integrated along the straight line from an all-`[PAD]` input (with `[CLS]`, `[SEP]` and the
attention mask kept) to the real one, at the word embeddings. Token attributions sum to the target's logit minus
its logit at that baseline (completeness); per nucleotide, each base gets the mean over the k-mers covering it,
left in logit units and signed (not L2 normalised, so attributions stay comparable across sequences).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients

from dnabert.errors import DnabertError
from dnabert.interpret.nucleotides import nucleotide_rows
from dnabert.models.inputs import batches, encode_batch, to_numpy
from dnabert.models.long_sequence import DNABertLongConfig
from dnabert.problems import output_values
from dnabert.tokenization import CLS_ID, PAD_ID, SEP_ID


def pad_baseline(input_ids: torch.Tensor) -> torch.Tensor:
    """The same rows with every k-mer replaced by `[PAD]` (`[CLS]`, `[SEP]` and padding kept)."""
    keep = (input_ids == CLS_ID) | (input_ids == SEP_ID)
    return torch.where(keep, input_ids, torch.full_like(input_ids, PAD_ID))


def token_attributions(model, inputs: dict, target: int, steps: int = 50,
                       internal_batch_size: int | None = None) -> torch.Tensor:
    """Integrated gradients of output `target` per input token (summed over the embedding), (rows, tokens)."""

    def target_logits(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    method = LayerIntegratedGradients(target_logits, model.bert.embeddings.word_embeddings)
    attributions = method.attribute(inputs["input_ids"], baselines=pad_baseline(inputs["input_ids"]),
                                    additional_forward_args=(inputs["attention_mask"],), target=target,
                                    n_steps=steps, internal_batch_size=internal_batch_size)
    return attributions.sum(-1).detach().float()


def attribution_batches(model, sequences: list[str], target: int, steps: int = 50, batch_size: int = 64,
                        max_tokens: int = 512, progress: bool = True) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
    """Per batch: integrated-gradients attributions of output `target` per nucleotide (float32 arrays of each
    sequence's length, NaN where the model reads nothing) and the model's outputs on the real inputs."""
    if isinstance(model.config, DNABertLongConfig):
        raise DnabertError("attribute: long-sequence (chunked) models are not supported; use `dnabert attention`, "
                           "or a single-window model")
    k = model.config.k
    for _, batch in batches(sequences, batch_size, "attribute", progress):
        encoded, inputs = encode_batch(model, batch, max_tokens)
        token_scores = token_attributions(model, inputs, target, steps, batch_size)
        with torch.no_grad():
            values = to_numpy(output_values(model(**inputs).logits, model.config.problem_type))
        yield nucleotide_rows(token_scores, encoded, [len(s) for s in batch], k, normalise=False), values
