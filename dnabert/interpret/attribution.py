"""Integrated gradients per nucleotide through a one-hot input, and TF-MoDISco's hypothetical contributions.

A DNABERT model reads k-mer tokens, so its gradient reaches nucleotides through a soft k-mer embedding: the k-mer
at position t is embedded as the sum over all 4^k k-mers of the product of their bases' weights x[t + j, base_j]
times that k-mer's word embedding (on a one-hot x, exactly the model's own embedding; k-mers with an N stay
`[UNK]`, constant). Gradients are integrated (midpoint rule) along the straight line from the uniform baseline (0.25
per base; 0 at N) to the one-hot input. Hypothetical contributions, what each base would contribute at each position
(TF-MoDISco's input), are the path-averaged gradients centred over the four bases: with this baseline
(e_b - 0.25) . g = g_b - mean(g). Contributions are hypothetical x one-hot, in logit units and signed; summed over a
sequence they equal f(input) - f(baseline) up to the integration error.

On that line every position holds b = (1 - a) / 4 on each base plus a on the base present (a from 0 to 1), so the
soft embedding is a polynomial in a and b whose coefficients are sums of the embedding table over the k-mers that
agree with the one present on a subset of positions (`KmerSums`, computed once per model). Embeddings and their
gradients then cost a few gathers per k-mer instead of a product over all 4^k k-mers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dnabert.atomic import open_npy_atomic
from dnabert.errors import DnabertError
from dnabert.models.inputs import batches, to_numpy
from dnabert.models.long_sequence import DNABertLongConfig
from dnabert.problems import output_values
from dnabert.tokenization import CLS_ID, PAD_ID, SEP_ID, UNK_ID, kmer_ids_from_codes, nucleotide_codes

BASES = "ACGT"
"""Column order of one-hot inputs and hypothetical contributions (TF-MoDISco's and MEME's)."""

KMER_BUDGET = 4096
"""k-mers per gradient pass: bounds the gathered table sums (k-mers x k x 4 x k x hidden floats)."""


BASE_INDEX = np.full(256, -1, dtype=np.int64)
for _index, _base in enumerate(BASES):
    BASE_INDEX[ord(_base)] = BASE_INDEX[ord(_base.lower())] = _index
"""Byte -> column of BASES (either case), -1 for any other letter."""


def base_indexes(sequence: str) -> np.ndarray:
    """Each nucleotide's column in BASES (0-3), -1 for any other letter (N)."""
    return BASE_INDEX[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]


def one_hot(sequence: str) -> np.ndarray:
    """(length, 4) float32 one-hot in ACGT column order; any other letter (N) is all zeros."""
    indexes = base_indexes(sequence)
    return (indexes[:, None] == np.arange(4)[None, :]).astype(np.float32)


def kmer_token_ids(k: int) -> torch.Tensor:
    """Token id of every k-mer in ACGT base-4 order (first base most significant): the soft embedding's rows."""
    digits = np.stack(np.meshgrid(*[nucleotide_codes(BASES)] * k, indexing="ij"), axis=-1).reshape(-1, k)
    return torch.from_numpy(kmer_ids_from_codes(digits, k)[:, 0])


@dataclass
class KmerSums:
    """Sums of a k-mer embedding table (rows in ACGT base-4 order) over the k-mers agreeing with k-mer o on a set S
    of positions, added up by |S|: `forward[o, m]` over all S of size m; `gradient[o, j, m]` over S of size m
    without j, agreeing on S and j."""

    forward: torch.Tensor
    gradient: torch.Tensor
    k: int

    @classmethod
    def of(cls, table: torch.Tensor, k: int) -> KmerSums:
        """The sums of `table` (4^k x hidden)."""
        hidden = table.shape[1]
        grid = table.detach().reshape((4,) * k + (hidden,))
        forward = table.new_zeros(4**k, k + 1, hidden)
        gradient = table.new_zeros(4**k, k, k, hidden)
        for kept in itertools.product((False, True), repeat=k):
            free = tuple(j for j in range(k) if not kept[j])
            summed = (grid.sum(dim=free, keepdim=True) if free else grid).expand_as(grid).reshape(4**k, hidden)
            forward[:, sum(kept)] += summed
            for j in range(k):
                if kept[j]:
                    gradient[:, j, sum(kept) - 1] += summed
        return cls(forward, gradient, k)


def kmer_indexes(codes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) base codes (0-3 in ACGT order, -1: none) -> each k-mer's row in ACGT base-4 order (B, L - k + 1),
    and whether all its bases are known."""
    windows = codes.unfold(1, k, 1)
    place = 4 ** torch.arange(k - 1, -1, -1, device=codes.device)
    return (windows.clamp(min=0) * place).sum(-1), (windows >= 0).all(-1)


def path_gradients(head: Callable[[torch.Tensor], torch.Tensor], codes: torch.Tensor, n_kmers: torch.Tensor,
                   sums: KmerSums, unknown: torch.Tensor, target: int, steps: int) -> torch.Tensor:
    """Gradients of head(k-mer embeddings)[:, target] with respect to the (B, L, 4) base weights, averaged over
    `steps` midpoints of the line from the uniform baseline to the one-hot `codes` (ACGT 0-3, -1 none). `head` maps
    (B, L - k + 1, hidden) soft embeddings of the k-mers to outputs; the first n_kmers[b] of row b are read, and
    k-mers with an unknown base are `unknown`, constant."""
    k = sums.k
    index, known = kmer_indexes(codes, k)
    kmers = index.shape[1]
    read = known & (torch.arange(kmers, device=codes.device)[None, :] < n_kmers[:, None])
    forward = sums.forward[index]  # (B, T, k + 1, hidden)
    place = 4 ** torch.arange(k - 1, -1, -1, device=codes.device)
    digits = index[..., None] // place % 4
    mutated = index[..., None, None] + (torch.arange(4, device=codes.device) - digits[..., None]) * place[:, None]
    gradient = sums.gradient[mutated, torch.arange(k, device=codes.device)[:, None]]  # (B, T, k, 4, k, hidden)
    total = torch.zeros(*codes.shape, 4, device=codes.device)
    powers = torch.arange(k + 1, device=codes.device)
    for step in range(steps):
        a = (step + 0.5) / steps
        b = (1 - a) / 4
        embedded = torch.einsum("btmh,m->bth", forward, a**powers * b ** (k - powers))
        embedded = torch.where(known[..., None], embedded, unknown).requires_grad_(True)
        (outer,) = torch.autograd.grad(head(embedded)[:, target].sum(), embedded)
        by_base = torch.einsum("btjcmh,bth,m->btjc", gradient, outer, a ** powers[:-1] * b ** (k - 1 - powers[:-1]))
        by_base = by_base * read[..., None, None]
        for j in range(k):
            total[:, j : j + kmers] += by_base[:, :, j]
    return total / steps


def hypothetical_contributions(gradients: torch.Tensor) -> torch.Tensor:
    """Path-averaged gradients centred over the bases (last axis): each base's contribution were it there."""
    return gradients - gradients.mean(-1, keepdim=True)


def model_head(model, n_kmers: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's logits from (B, T, hidden) k-mer embeddings: `[CLS]`, the first n_kmers[b] of row b, `[SEP]`,
    then `[PAD]` (masked), as the model reads the tokens of the same sequences."""
    embeddings = model.get_input_embeddings().weight.detach()
    n_kmers = n_kmers[:, None]

    def head(kmers: torch.Tensor) -> torch.Tensor:
        kmers = torch.nn.functional.pad(kmers, (0, 0, 1, 1))
        positions = torch.arange(kmers.shape[1], device=kmers.device)[None, :]
        special = torch.where(positions == 0, CLS_ID, torch.where(positions == n_kmers + 1, SEP_ID, PAD_ID))
        is_kmer = (positions > 0) & (positions <= n_kmers)
        inputs = torch.where(is_kmer[..., None], kmers, embeddings[special])
        return model(inputs_embeds=inputs, attention_mask=(positions <= n_kmers + 1).long()).logits

    return head


@dataclass
class Attributions:
    """One batch: per sequence, contributions per nucleotide (its length, NaN where the model reads nothing) and
    hypothetical contributions (read nucleotides x 4, ACGT); the model's outputs on the real inputs."""

    contributions: list[np.ndarray]
    hypothetical: list[np.ndarray]
    values: np.ndarray


def attribution_batches(model, sequences: list[str], target: int, steps: int = 50, batch_size: int = 64,
                        max_tokens: int = 512, progress: bool = True) -> Iterator[Attributions]:
    """Integrated-gradients attributions of output `target`, batch by batch (the first `max_tokens` tokens)."""
    if isinstance(model.config, DNABertLongConfig):
        raise DnabertError("integrated gradients: long-sequence (chunked) models are not supported; use "
                           "`dnabert attention` (or `dnabert motifs --method attention`), or a single-window model")
    k = model.config.k
    reach = min(max_tokens, model.config.max_position_embeddings) - 2 + k - 1
    embeddings = model.get_input_embeddings().weight.detach()
    sums = KmerSums.of(embeddings[kmer_token_ids(k).to(embeddings.device)], k)
    for _, batch in batches(sequences, batch_size, "attribute", progress):
        read = [min(len(s), reach) for s in batch]
        codes = torch.full((len(batch), max(read)), -1, dtype=torch.long)
        for row, (sequence, length) in enumerate(zip(batch, read)):
            codes[row, :length] = torch.from_numpy(base_indexes(sequence[:length]))
        codes = codes.to(embeddings.device)
        n_kmers = torch.tensor([n - k + 1 for n in read], device=embeddings.device)
        rows = max(1, KMER_BUDGET // max(codes.shape[1] - k + 1, 1))
        gradients = torch.cat([path_gradients(model_head(model, n_kmers[i : i + rows]), codes[i : i + rows],
                                              n_kmers[i : i + rows], sums, embeddings[UNK_ID], target, steps)
                               for i in range(0, len(batch), rows)])
        x = torch.nn.functional.one_hot(codes.clamp(min=0), 4) * (codes >= 0)[..., None]
        hypothetical = hypothetical_contributions(gradients).cpu()
        contributions = (hypothetical * x.cpu()).sum(-1).numpy()
        with torch.no_grad():
            index, known = kmer_indexes(codes, k)
            kmer_embeddings = torch.where(known[..., None], sums.forward[index, k], embeddings[UNK_ID])
            values = to_numpy(output_values(model_head(model, n_kmers)(kmer_embeddings), model.config.problem_type))
        scores = []
        for row, (sequence, length) in enumerate(zip(batch, read)):
            values_row = np.full(len(sequence), np.nan, dtype=np.float32)
            values_row[:length] = contributions[row, :length]
            scores.append(values_row)
        yield Attributions(scores, [h[:n] for h, n in zip(hypothetical.numpy(), read)], values)


def modisco_inputs(sequences: list[str], hypothetical: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(N, L, 4) float32 one-hot inputs and hypothetical contributions (L: the longest read; zeros past each
    sequence's read nucleotides), as TF-MoDISco takes them."""
    width = max(len(h) for h in hypothetical)
    one_hots, contributions = np.zeros((2, len(sequences), width, 4), dtype=np.float32)
    for row, (sequence, values) in enumerate(zip(sequences, hypothetical)):
        one_hots[row, : len(values)] = one_hot(sequence[: len(values)])
        contributions[row, : len(values)] = values
    return one_hots, contributions


def save_modisco_inputs(directory: Path, one_hots: np.ndarray, hypothetical: np.ndarray) -> list[Path]:
    """one_hot.npy and hypothetical.npy, N x 4 x L, the layout `modisco motifs -s one_hot.npy -a hypothetical.npy`
    reads; returns the files written."""
    written = [directory / "one_hot.npy", directory / "hypothetical.npy"]
    for path, array in zip(written, (one_hots, hypothetical)):
        with open_npy_atomic(path, (array.shape[0], 4, array.shape[1])) as stored:
            stored[:] = array.transpose(0, 2, 1)
    return written
