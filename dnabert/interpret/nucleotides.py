"""From scores per k-mer token to scores per nucleotide: DNABERT's covering-k-mer rule."""

from __future__ import annotations

import numpy as np
import torch

from dnabert.models.embedding import nucleotide_average
from dnabert.tokenization import EncodedBatch


def spread_to_nucleotides(kmer_scores: torch.Tensor, n_kmers: torch.Tensor, k: int,
                          normalise: bool = True) -> torch.Tensor:
    """(B, K) k-mer scores -> (B, K + k - 1): each nucleotide gets the mean over the k-mers covering it, then
    (with `normalise`) each row is divided by its L2 norm, as DNABERT does. Past a row's last k-mer: zeros."""
    kmers = kmer_scores.shape[1]
    values = nucleotide_average(kmer_scores.float().unsqueeze(-1), n_kmers, k, kmers + k - 1).squeeze(-1)
    if normalise:
        values = values / values.norm(dim=1, keepdim=True).clamp(min=torch.finfo(values.dtype).tiny)
    return values


def nucleotide_rows(token_scores: torch.Tensor, encoded: EncodedBatch, lengths: list[int], k: int,
                    normalise: bool = True) -> list[np.ndarray]:
    """Per sequence, a float32 array of its length from per-token scores of the model's input rows.

    `token_scores` is (rows, tokens) over `[CLS] k-mers [SEP] [PAD]...`; only the real k-mers are read. A sequence
    split into several rows (long-sequence models) has its chunks joined before spreading; nucleotides that no
    k-mer covers (past a truncated input's end, or a sequence shorter than k) are NaN.
    """
    token_scores = token_scores.detach().float().cpu()  # spread on the CPU, whatever device scored the tokens
    owner = torch.from_numpy(encoded.sequence_index)
    n_rows = len(owner)
    rows_per_sequence = torch.bincount(owner, minlength=len(lengths))
    within = torch.arange(n_rows) - (torch.cumsum(rows_per_sequence, 0) - rows_per_sequence)[owner]
    row_kmers = torch.from_numpy(encoded.attention_mask).sum(1) - 2
    budget = token_scores.shape[1] - 2  # a sequence split into chunks fills whole rows, so this is each chunk's span
    first = within * budget
    n_kmers = torch.zeros(len(lengths), dtype=torch.long).index_add_(0, owner, row_kmers)
    kmer_scores = token_scores.new_zeros(len(lengths), max(int(n_kmers.max()) if len(lengths) else 0, 1))
    column = torch.arange(budget)
    valid = column[None, :] < row_kmers[:, None]
    targets = (first[:, None] + column[None, :])[valid]
    kmer_scores[owner[:, None].expand(-1, budget)[valid], targets] = token_scores[:, 1:-1][valid]
    nucleotides = spread_to_nucleotides(kmer_scores, n_kmers, k, normalise).numpy()
    arrays = []
    for row, length, count in zip(nucleotides, lengths, n_kmers.tolist()):
        scored = count + k - 1 if count else 0
        values = np.full(length, np.nan, dtype=np.float32)
        values[:scored] = row[:scored]
        arrays.append(values)
    return arrays
