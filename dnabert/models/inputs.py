"""Raw sequences into model inputs, for every inference path: one encoding, one batching loop, the device and
precision inference runs in, and outputs back as numpy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from dnabert.errors import DnabertError
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
    return encoded, {name: tensor.to(model.device) for name, tensor in encoded.tensors(chunks=long).items()}


def inference_device(name: str) -> torch.device:
    """`--device`: auto (the GPU where there is one, else the CPU), cpu or cuda (refused without a GPU)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise DnabertError("--device cuda: this machine has no CUDA GPU that torch can use "
                           f"(torch {torch.__version__}); use --device cpu, or auto")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def inference_precision(device: torch.device, precision: str) -> AbstractContextManager:
    """`--precision`: fp32, or bf16 autocast (matmuls in bf16, weights kept in fp32) on `device`."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Model outputs (any device, any float dtype) as a float32 numpy array."""
    return tensor.detach().float().cpu().numpy()


def batches(items: Sequence[Item], batch_size: int, desc: str = "", progress: bool = False
            ) -> Iterator[tuple[int, Sequence[Item]]]:
    """(index of the first item, items) of consecutive batches; a progress bar named `desc` when `progress`."""
    for first in tqdm(range(0, len(items), batch_size), desc=desc, unit="batch", disable=not progress):
        yield first, items[first : first + batch_size]
