"""DNABERT's attention scores per nucleotide, batch by batch in flat memory.

The rule (Ji et al. 2021, `--do_visualize`): last layer, the attention the `[CLS]` query pays to each k-mer,
summed over heads; each nucleotide gets the mean over the k-mers covering it; each sequence's vector is L2
normalised. Only real k-mers are scored (no `[CLS]`, `[SEP]` or padding). Instead of asking the model for every
attention matrix (B x layers x heads x L x L), a hook keeps the last layer's input and only the `[CLS]` row of
its attention is recomputed: O(heads x L) per sequence, with the fast sdpa kernels left on for everything else.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from dnabert.errors import DnabertError
from dnabert.interpret.nucleotides import nucleotide_rows
from dnabert.models.inputs import batches, encode_batch, to_numpy
from dnabert.problems import output_values


def cls_attention(model, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, last-layer attention of the `[CLS]` query summed over heads, (rows, tokens)) in one forward pass."""
    if getattr(model.config, "position_embedding_type", "absolute") != "absolute":
        raise DnabertError(f"position_embedding_type={model.config.position_embedding_type}: attention scores need "
                           "absolute position embeddings (DNABERT's)")
    attention = model.bert.encoder.layer[-1].attention.self
    captured = {}

    def keep_input(module, args, kwargs):
        captured["hidden"] = args[0] if args else kwargs["hidden_states"]

    handle = attention.register_forward_pre_hook(keep_input, with_kwargs=True)
    try:
        logits = model(**inputs).logits
    finally:
        handle.remove()
    hidden = captured["hidden"]
    rows, tokens, _ = hidden.shape
    heads, size = attention.num_attention_heads, attention.attention_head_size
    query = attention.query(hidden[:, 0]).view(rows, heads, 1, size)
    keys = attention.key(hidden).view(rows, tokens, heads, size).transpose(1, 2)
    scores = (query @ keys.transpose(-1, -2)).squeeze(2).float() * attention.scaling
    scores = scores.masked_fill(~inputs["attention_mask"].bool()[:, None, :], float("-inf"))
    return logits, scores.softmax(-1).sum(1)


@torch.no_grad()
def attention_batches(model, sequences: list[str], batch_size: int = 64, max_tokens: int = 512,
                      progress: bool = True) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
    """Per batch: nucleotide attention per sequence (as `nucleotide_attention`) and the model's outputs
    (probabilities or values, as `dnabert predict` writes them)."""
    k = model.config.k
    for _, batch in batches(sequences, batch_size, "attention", progress):
        encoded, inputs = encode_batch(model, batch, max_tokens)
        logits, token_scores = cls_attention(model, inputs)
        yield (nucleotide_rows(token_scores, encoded, [len(s) for s in batch], k),
               to_numpy(output_values(logits, model.config.problem_type)))


def nucleotide_attention(model, sequences: list[str], batch_size: int = 64, max_tokens: int = 512,
                         progress: bool = True) -> Iterator[list[np.ndarray]]:
    """Per batch, one float32 array per sequence of length len(sequence): DNABERT's nucleotide attention scores.

    Nucleotides past what the model reads (inputs longer than `max_tokens` for single-window models) are NaN.
    """
    for scores, _ in attention_batches(model, sequences, batch_size, max_tokens, progress):
        yield scores


@torch.no_grad()
def attention_maps(model, sequence: str, max_tokens: int = 512) -> np.ndarray:
    """Every layer's and head's attention over the first window of one sequence: (layers, heads, tokens, tokens)."""
    _, inputs = encode_batch(model, [sequence], max_tokens)
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        outputs = model.bert(input_ids=inputs["input_ids"][:1], attention_mask=inputs["attention_mask"][:1],
                             output_attentions=True)
    finally:
        model.set_attn_implementation(previous)
    return to_numpy(torch.stack(outputs.attentions)[:, 0])
