"""What a masked-k-mer model learned beyond k-mer statistics: its accuracy on hidden nucleotides, next to
order-m Markov models of the training sequence predicting the same nucleotides from the same visible ones.

A nucleotide is hidden when every k-mer covering it was changed in the model's input
(`dnabert.data.masking.hidden_nucleotides`). The model's call for it is the base with the highest mean
probability over those k-mers' predictions (each masked k-mer's softmax over the 4**k k-mers, summed to the
base at that nucleotide's offset). The baseline is exact inference in an order-m Markov chain fitted on the
training sequence: the posterior of each hidden base given every visible base of its window (in practice the m
on either side of each hidden run, which separate it from the rest), for each m asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from dnabert.data.masking import covering
from dnabert.tokenization import AMBIGUOUS, NUM_SPECIAL

PSEUDOCOUNT = 0.5
"""Added to every (m+1)-mer count before the transition probabilities are formed."""
CHUNK_CELLS = 1 << 24
"""Forward-backward works on this many (segment x position x state) cells at a time (64 MB of float32)."""


def nucleotide_probabilities(logits: torch.Tensor, k: int) -> torch.Tensor:
    """(N, vocab) masked-k-mer logits -> (N, k, 4): each position's base probabilities under the k-mer softmax."""
    kmers = logits.float()[:, NUM_SPECIAL:].softmax(-1).view(-1, *([4] * k))
    return torch.stack([kmers.sum(dim=[1 + d for d in range(k) if d != o]) for o in range(k)], dim=1)


def predicted_nucleotides(token_probabilities: torch.Tensor, k: int) -> torch.Tensor:
    """(B, T, k, 4) per-token base probabilities (zero where not predicted) -> (B, nucleotides) best base each,
    summing the predictions of every k-mer covering a nucleotide."""
    by_offset = torch.diagonal(covering(token_probabilities, k), dim1=2, dim2=3)  # (B, nucleotides, 4, k)
    return by_offset.sum(-1).argmax(-1)


class LocalBaseline:
    """Local k-mer statistics of a training sequence, predicting hidden bases from the visible ones around them.

    A hidden run of h <= `longest_run` bases with m visible bases on either side is predicted from counts of the
    (2m + h)-mers with those flanks (for h = 1: the (2m+1)-mer table); other runs (longer, or at a window's edge)
    by exact inference in an order-m Markov chain.
    """

    def __init__(self, sequence: np.ndarray, orders: Sequence[int], longest_run: int = 12):
        orders = sorted(set(int(m) for m in orders))
        if not orders or orders[0] < 1:
            raise ValueError(f"baseline orders must be positive, not {orders}")
        top = orders[-1] + 1
        counts = kmer_counts(sequence, top)
        self.sequence = sequence
        self.longest_run = longest_run
        self.flank_codes: dict[int, np.ndarray] = {}
        self.tables: dict[tuple[int, int, int], np.ndarray] = {}
        self.orders = orders
        self.transitions: dict[int, np.ndarray] = {}
        self.initial: dict[int, np.ndarray] = {}
        for m in orders:
            grams = counts.reshape(4 ** (top - m - 1), 4 ** (m + 1)).sum(0).reshape(4**m, 4) + PSEUDOCOUNT
            self.transitions[m] = (grams / grams.sum(1, keepdims=True)).astype(np.float32)
            self.initial[m] = (grams.sum(1) / grams.sum()).astype(np.float32)

    def predict(self, codes: np.ndarray, hidden: np.ndarray, order: int) -> np.ndarray:
        """(B, W) codes (-1 unknown) and hidden flags -> (B, W) predicted base at hidden positions, -1 elsewhere."""
        predicted = self.markov(codes, hidden, order)
        m = order
        known = (codes >= 0) & ~hidden
        flat_hidden = np.pad(hidden, ((0, 0), (0, 1))).ravel()
        flat_known = np.pad(known, ((0, 0), (0, 1))).ravel()
        flat_codes = np.pad(codes, ((0, 0), (0, 1)), constant_values=-1).ravel().astype(np.int64)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], flat_hidden.astype(np.int8), [0]])))
        starts, ends = edges[::2], edges[1::2]
        runs = ends - starts
        width = flat_codes.size
        flanked = (runs <= self.longest_run) & (starts >= m) & (ends + m <= width)
        for offset in range(1, m + 1):
            flanked &= flat_known[np.clip(starts - offset, 0, width - 1)]
            flanked &= flat_known[np.clip(ends - 1 + offset, 0, width - 1)]
        flat_predicted = np.pad(predicted, ((0, 0), (0, 1)), constant_values=-1).ravel()
        for h in np.unique(runs[flanked]):
            first = starts[flanked & (runs == h)]
            left = sum(flat_codes[first - m + j] * 4 ** (m - 1 - j) for j in range(m))  # int64: no overflow
            right = sum(flat_codes[first + h + j] * 4 ** (m - 1 - j) for j in range(m))
            flanks = left * 4**m + right
            for i in range(h):
                flat_predicted[first + i] = self.table(m, int(h), i)[flanks].argmax(-1)
        return flat_predicted.reshape(codes.shape[0], -1)[:, :-1]

    def table(self, m: int, h: int, i: int) -> np.ndarray:
        """(4**(2m), 4) training counts of each base at offset i of a hidden run of h between m-base flanks."""
        key = (m, h, i)
        if key not in self.tables:
            if m not in self.flank_codes:
                self.flank_codes[m] = kmer_index(self.sequence, m)
            codes = self.flank_codes[m]
            n = len(self.sequence) - 2 * m - h + 1
            left, right = codes[:n], codes[m + h : m + h + n]
            base = self.sequence[m + i : m + i + n].astype(np.int64)
            valid = (left >= 0) & (right >= 0) & (base < AMBIGUOUS)
            index = (left[valid].astype(np.int64) * 4**m + right[valid]) * 4 + base[valid]
            self.tables[key] = np.bincount(index, minlength=4 ** (2 * m + 1)).reshape(-1, 4).astype(np.int32)
        return self.tables[key]

    def markov(self, codes: np.ndarray, hidden: np.ndarray, order: int) -> np.ndarray:
        """Predictions of the order-m Markov chain for every hidden base (exact posterior given its row)."""
        m = order
        batch, width = codes.shape
        known = (codes >= 0) & ~hidden
        # each row framed by m free positions on the left and m + 1 on the right; segments never cross rows
        framed = np.full((batch, width + 2 * m + 1), -1, dtype=np.int8)
        framed[:, m : m + width] = np.where(known, codes, -1)
        scored = np.zeros(framed.shape, dtype=bool)
        scored[:, m : m + width] = hidden
        # a hidden run plus m positions either side: m consecutive known bases separate it from the rest of its row
        reach = np.cumsum(np.pad(scored, ((0, 0), (2 * m + 1, 0))), axis=1)
        inside = (reach[:, 2 * m + 1 :] - reach[:, : -2 * m - 1]) > 0
        inside = np.roll(inside, -m, axis=1)
        inside[:, -1] = False
        flat_inside, flat_codes, flat_scored = inside.ravel(), framed.ravel(), scored.ravel()
        edges = np.flatnonzero(np.diff(np.concatenate([[0], flat_inside.astype(np.int8), [0]])))
        starts, ends = edges[::2], edges[1::2]
        predicted = np.full(flat_codes.shape, -1, dtype=np.int64)
        lengths = ends - starts
        for bucket in np.unique((lengths + 7) // 8 * 8):
            chosen = np.flatnonzero((lengths + 7) // 8 * 8 == bucket)
            positions = starts[chosen, None] + np.arange(bucket)[None, :]
            valid = positions < ends[chosen, None]
            positions = np.where(valid, positions, 0)
            segment = np.where(valid, flat_codes[positions], -1)
            marginals = self._posterior(segment, m)
            best = marginals.argmax(-1)
            take = valid & flat_scored[positions]
            predicted[positions[take]] = best[take]
        return predicted.reshape(framed.shape)[:, m : m + width]

    def _posterior(self, segments: np.ndarray, m: int) -> np.ndarray:
        """(S, L) codes (-1 free) whose first m positions start the chain -> (S, L, 4) posterior base marginals."""
        results = []
        step = max(1, CHUNK_CELLS // (segments.shape[1] * 4**m))
        for first in range(0, len(segments), step):
            results.append(self._forward_backward(segments[first : first + step], m))
        return np.concatenate(results)

    def _forward_backward(self, segments: np.ndarray, m: int) -> np.ndarray:
        """Exact posterior marginals of an order-m chain over states of m bases, for a chunk of segments."""
        count, length = segments.shape
        states = 4**m
        transition = self.transitions[m].reshape(4, 4 ** (m - 1), 4)
        allowed = np.where(segments[..., None] >= 0, np.arange(4) == segments[..., None], True).astype(np.float32)
        # the first state: m bases drawn from the chain's m-mer frequencies, constrained by what is known
        alpha = np.empty((length, count, states), dtype=np.float32)
        first = np.broadcast_to(self.initial[m], (count, states)).copy().reshape(count, *([4] * m))
        for position in range(m):
            shape = [count] + [1] * m
            shape[1 + position] = 4
            first *= allowed[:, position].reshape(shape)
        alpha[m - 1] = normalised(first.reshape(count, states))
        for t in range(m, length):
            moved = np.einsum("sfr,frx->srx", alpha[t - 1].reshape(count, 4, -1), transition)
            alpha[t] = normalised((moved * allowed[:, t, None, :]).reshape(count, states))
        marginals = np.zeros((count, length, 4), dtype=np.float32)
        beta = np.ones((count, states), dtype=np.float32)
        for t in range(length - 1, m - 2, -1):
            joint = normalised(alpha[t] * beta)
            marginals[:, t] = joint.reshape(count, -1, 4).sum(1)
            if t == m - 1:  # the first state also holds the bases before it
                joint = joint.reshape(count, *([4] * m))
                for position in range(m - 1):
                    marginals[:, position] = joint.sum(axis=tuple(1 + d for d in range(m) if d != position))
                break
            carried = beta.reshape(count, -1, 4) * allowed[:, t, None, :]
            beta = normalised(np.einsum("frx,srx->sfr", transition, carried).reshape(count, states))
        return marginals


def normalised(values: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (forward-backward keeps its numbers in range this way)."""
    return values / np.maximum(values.sum(-1, keepdims=True), 1e-30)


def kmer_index(sequence: np.ndarray, width: int) -> np.ndarray:
    """Index (A,T,C,G code order) of the `width`-mer starting at each position; -1 where it holds an ambiguous code."""
    n = max(len(sequence) - width + 1, 0)
    index = np.zeros(n, dtype=np.int32 if width < 16 else np.int64)
    ambiguous = np.zeros(n, dtype=bool)
    for j in range(width):
        part = sequence[j : j + n]
        index = index * 4 + (part & 3)
        ambiguous |= part >= AMBIGUOUS
    index[ambiguous] = -1
    return index


def kmer_counts(sequence: np.ndarray, width: int) -> np.ndarray:
    """Counts of every `width`-mer (A,T,C,G code order) in a code array; k-mers with an ambiguous code are skipped."""
    index = kmer_index(sequence, width)
    return np.bincount(index[index >= 0], minlength=4**width).astype(np.float64)


class HiddenNucleotideAccuracy(Metric):
    """Accuracy on hidden nucleotides of the model and of each Markov baseline order, over a whole split."""

    full_state_update = False

    def __init__(self, orders: Sequence[int]):
        super().__init__()
        self.orders = sorted(set(int(m) for m in orders))
        self.baseline: LocalBaseline | None = None
        self.add_state("model_correct", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("baseline_correct", default=torch.zeros(len(self.orders), dtype=torch.long),
                       dist_reduce_fx="sum")
        self.add_state("hidden", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("bases", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, truth: torch.Tensor, hidden: torch.Tensor, predicted: torch.Tensor) -> None:
        """`truth` codes (-1 for N), `hidden` flags and the model's `predicted` bases, each (B, nucleotides)."""
        scored = hidden & (truth >= 0)
        self.model_correct += (scored & (predicted == truth)).sum()
        self.hidden += scored.sum()
        self.bases += (truth >= 0).sum()
        if self.baseline is not None:
            codes, flags = truth.cpu().numpy(), scored.cpu().numpy()
            for i, m in enumerate(self.orders):
                guess = self.baseline.predict(codes, flags, m)
                self.baseline_correct[i] += int((flags & (guess == codes)).sum())

    def compute(self) -> dict[str, torch.Tensor]:
        total = self.hidden.clamp(min=1).double()
        values = {"hidden_accuracy": self.model_correct / total, "hidden_fraction": self.hidden / self.bases.clamp(1)}
        if self.baseline is not None:
            accuracy = self.baseline_correct / total
            best = int(accuracy.argmax())
            values.update(local_baseline=accuracy[best], local_baseline_order=torch.tensor(float(self.orders[best])))
        return {name: value.float() for name, value in values.items()}
