"""Embeddings from any DNABERT encoder: per sequence ([CLS] or mean), per k-mer token, or per nucleotide."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import BertModel

from dnabert.atomic import open_npy_atomic, write_text_atomic, written_atomic
from dnabert.errors import DnabertError
from dnabert.models.checkpoints import ModelStart
from dnabert.models.inputs import batches, encode_batch, to_numpy
from dnabert.tokenization import NUM_SPECIAL

POOLINGS = ("cls", "mean", "tokens", "nucleotide")


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> BertModel:
    """The BERT encoder of a pretrained or fine-tuned model (HF directory or .ckpt), in eval mode on `device`."""
    return ModelStart.read(path).build(BertModel).eval().to(device)


def nucleotide_average(token_states: torch.Tensor, n_kmers: torch.Tensor, k: int, width: int) -> torch.Tensor:
    """Per-nucleotide embedding: the mean over the k-mers covering each base (B, kmers, H) -> (B, width, H)."""
    batch, kmers, hidden = token_states.shape
    valid = (torch.arange(kmers, device=token_states.device)[None, :] < n_kmers[:, None]).to(token_states.dtype)
    summed = token_states.new_zeros(batch, kmers + k - 1, hidden)
    counts = token_states.new_zeros(batch, kmers + k - 1, 1)
    for offset in range(k):
        summed[:, offset : offset + kmers] += token_states * valid.unsqueeze(-1)
        counts[:, offset : offset + kmers] += valid.unsqueeze(-1)
    result = summed / counts.clamp(min=1)
    return torch.nn.functional.pad(result, (0, 0, 0, max(0, width - result.shape[1])))[:, :width]


def embed_to_file(encoder: BertModel, names: list[str], sequences: list[str], out: Path, pooling: str,
                  batch_size: int = 64, max_tokens: int = 512, progress: bool = True) -> tuple[int, ...]:
    """Write embeddings with the sequences' names: `.npz` (arrays `names` and `embeddings`), or `.npy` with the names
    one per line in `<out>.names.txt` beside it; filled batch by batch through a memory-mapped file (flat memory).
    Returns the embeddings' shape."""
    out = Path(out)
    if out.suffix.lower() != ".npz":
        shape = embed_to_npy(encoder, sequences, out, pooling, batch_size, max_tokens, progress)
        write_text_atomic(out.with_suffix(".names.txt"), "".join(f"{name}\n" for name in names))
        return shape
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.tmp-") as work:
        shape = embed_to_npy(encoder, sequences, Path(work) / "embeddings.npy", pooling, batch_size, max_tokens,
                             progress)
        embeddings = np.load(Path(work) / "embeddings.npy", mmap_mode="r")
        with written_atomic(out) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, names=np.array(names, dtype=str), embeddings=embeddings)
    return shape


@torch.no_grad()
def embed_to_npy(encoder: BertModel, sequences: list[str], out: Path, pooling: str, batch_size: int = 64,
                 max_tokens: int = 512, progress: bool = True) -> tuple[int, ...]:
    """Write embeddings as a .npy, batch by batch into a memory-mapped file (flat memory); returns its shape.

    cls/mean: (N, H); tokens: (N, max k-mers, H) zero-padded; nucleotide: (N, max nt, H) zero-padded.
    Sequences longer than the model takes are truncated to `max_tokens`.
    """
    if pooling not in POOLINGS:
        raise DnabertError(f"--pooling {pooling}: use one of {', '.join(POOLINGS)}")
    k, hidden = encoder.config.k, encoder.config.hidden_size
    kmers_max = max_tokens - 2
    lengths = np.array([len(s) for s in sequences])
    widths = {"cls": None, "mean": None, "tokens": int(min(lengths.max() - k + 1, kmers_max)),
              "nucleotide": int(min(lengths.max(), kmers_max + k - 1))}
    shape = (len(sequences), hidden) if widths[pooling] is None else (len(sequences), widths[pooling], hidden)
    with open_npy_atomic(out, shape) as array:
        for start, batch in batches(sequences, batch_size, "embed", progress):
            _, inputs = encode_batch(encoder, batch, max_tokens)
            ids, mask = inputs["input_ids"], inputs["attention_mask"]
            states = encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            tokens = states[:, 1:-1]
            kmer_mask = (ids[:, 1:-1] >= NUM_SPECIAL) | (ids[:, 1:-1] == 1)
            n_kmers = mask.sum(1) - 2
            if pooling == "cls":
                values = states[:, 0]
            elif pooling == "mean":
                weights = kmer_mask.unsqueeze(-1).float()
                values = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1)
            elif pooling == "tokens":
                values = torch.nn.functional.pad(tokens * kmer_mask.unsqueeze(-1), (0, 0, 0, widths["tokens"]))
                values = values[:, : widths["tokens"]]
            else:
                values = nucleotide_average(tokens, n_kmers, k, widths["nucleotide"])
            array[start : start + len(values)] = to_numpy(values)
    return shape
