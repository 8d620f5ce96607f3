"""Raw sequences into model inputs, for every inference path: one encoding and one batching loop."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from tqdm.auto import tqdm

from dnabert.models.long_sequence import DNABertLongConfig
from dnabert.tokenization import EncodedBatch, batch_kmer_ids, nucleotides_read

Item = TypeVar("Item")


def model_reach(model, max_tokens: int = 512) -> int | None:
    """Nucleotides of one sequence the model reads (None: a long-sequence model that reads every chunk; one that
    concatenates its first `max_chunks` chunks reads those only)."""
    tokens = min(max_tokens, model.config.max_position_embeddings)
    if not isinstance(model.config, DNABertLongConfig):
        return nucleotides_read(model.config.k, tokens)
    if model.config.chunk_aggregation != "concat":
        return None
    return nucleotides_read(model.config.k, model.config.max_chunks * (tokens - 2) + 2)  # chunks share no k-mer


def encode_batch(model, sequences: list[str], max_tokens: int = 512) -> tuple[EncodedBatch, dict]:
    """Token ids of a batch and the keyword inputs of `model` (any DNABERT model or encoder): long-sequence models
    get every chunk, others the first `max_tokens` tokens (at most the model's positions)."""
    long = isinstance(model.config, DNABertLongConfig)
    max_tokens = min(max_tokens, model.config.max_position_embeddings)
    encoded = batch_kmer_ids(list(sequences), model.config.k, max_tokens, "split" if long else "truncate")
    return encoded, encoded.tensors(chunks=long)


def batches(items: Sequence[Item], batch_size: int, desc: str = "", progress: bool = False
            ) -> Iterator[tuple[int, Sequence[Item]]]:
    """(index of the first item, items) of consecutive batches; a progress bar named `desc` when `progress`."""
    for first in tqdm(range(0, len(items), batch_size), desc=desc, unit="batch", disable=not progress):
        yield first, items[first : first + batch_size]
