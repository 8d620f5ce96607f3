"""Span masking for masked-k-mer pretraining, and which nucleotides a masked input hides.

With overlapping k-mers, a run of `s` adjacent masked tokens hides only `s - k + 1` nucleotides: every other
base of the run is shown by an unmasked neighbour. DNABERT masks runs of exactly k tokens, so each span hides
one nucleotide. The strategies here differ only in how long a span is:

- `SpanMasking` with `span_length = k` is DNABERT's rule (offsets -floor((k-1)/2) .. +ceil((k-1)/2) around
  each centre); `span_length = k + h - 1` hides h nucleotides per span.
- `RandomMask` (the idea of Liang et al. 2023, arXiv 2310.07644) widens the hidden region as training goes:
  each span hides a uniformly drawn 1 .. `max_hidden` nucleotides, `max_hidden` following a step schedule.

Specials are never masked; each masked token becomes `[MASK]` (80 %), a random id from the whole vocabulary
(10 %) or stays (10 %). The rate (fraction of tokens masked, after overlaps) may change with the step
(DNABERT: 15 % then 20 %) and does not depend on the span length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from dnabert.errors import DnabertError
from dnabert.tokenization import MASK_ID, NUM_SPECIAL, UNK_ID

IGNORE_INDEX = -100
NOISE_CHANNELS = 3
"""Uniform noise per token: centre draw (which also picks the span's length), replacement action, random id."""


StepSchedule = Sequence[Sequence[float]] | Mapping[int, float]
"""`[[first step, value], ...]` (what the configs hold: a list replaces the default on the command line), or a
`{first step: value}` mapping."""


def step_schedule(name: str, schedule: StepSchedule, valid, requirement: str) -> list[tuple[int, float]]:
    """A step schedule as sorted (first step, value) pairs, checked to start at step 0 with every value `valid`."""
    pairs = list(schedule.items()) if isinstance(schedule, Mapping) else [tuple(pair) for pair in schedule or []]
    shown = [list(pair) for pair in pairs]
    if not pairs or any(len(pair) != 2 or not valid(pair[1]) for pair in pairs):
        raise DnabertError(f"{name}={shown}: give [[first step, value], ...] with {requirement}")
    if min(int(step) for step, _ in pairs) != 0:
        raise DnabertError(f"{name}={shown}: the first entry must start at step 0")
    return sorted((int(step), value) for step, value in pairs)


def value_at(schedule: list[tuple[int, float]], step: int):
    """The value of a sorted step schedule in force at `step`."""
    return [value for start, value in schedule if start <= step][-1]


class SpanMasking:
    """Spans of `span_length` adjacent tokens (k by default: DNABERT) around random centres."""

    name = "span"

    def __init__(
        self,
        k: int,
        vocab_size: int,
        schedule: StepSchedule,
        span_length: int | None = None,
        mask_token_fraction: float = 0.8,
        random_token_fraction: float = 0.1,
    ):
        span_length = k if span_length is None else span_length
        if span_length < k:
            raise DnabertError(f"task.masking.span_length={span_length} is shorter than k={k}: a span hides "
                               f"span_length - k + 1 nucleotides, so use at least {k} (k + h - 1 hides h)")
        self.rates = step_schedule("task.masking.schedule", schedule, lambda rate: 0 < rate < 1,
                                   "rates between 0 and 1")
        if mask_token_fraction < 0 or random_token_fraction < 0 or mask_token_fraction + random_token_fraction > 1:
            raise DnabertError("task.masking: mask_token_fraction + random_token_fraction must lie between 0 and 1")
        self.k = k
        self.span_length = span_length
        self.vocab_size = vocab_size
        self.mask_token_fraction = mask_token_fraction
        self.random_token_fraction = random_token_fraction

    def rate_at(self, step: int) -> float:
        """Target fraction of masked tokens at a training step."""
        return float(value_at(self.rates, step))

    def hidden_range_at(self, step: int) -> tuple[int, int]:
        """Fewest and most nucleotides one span hides at a training step (drawn uniformly in between)."""
        hidden = self.span_length - self.k + 1
        return hidden, hidden

    def hidden_per_span(self, step: int) -> float:
        """Mean number of nucleotides one span hides at a training step (before overlaps)."""
        low, high = self.hidden_range_at(step)
        return (low + high) / 2

    def centre_probability(self, step: int) -> float:
        """Per-token centre probability whose spans cover the step's rate of the tokens (overlaps accounted for)."""
        rate = self.rate_at(step)
        low, high = self.hidden_range_at(step)
        lengths = torch.arange(low, high + 1, dtype=torch.float64) + self.k - 1
        left = torch.div(lengths - 1, 2, rounding_mode="floor")
        offsets = torch.arange(-int(left.max()), int((lengths - 1 - left).max()) + 1, dtype=torch.float64)
        covers = ((offsets[:, None] >= -left) & (offsets[:, None] <= lengths - 1 - left)).double().mean(1)
        if low == high:  # one length: closed form, 1 - (1 - p) ** L = rate
            return 1.0 - (1.0 - rate) ** (1.0 / float(lengths[0]))
        low_p, high_p = 0.0, 1.0
        for _ in range(60):  # covered fraction 1 - prod(1 - p * covers) grows with p: bisect
            p = (low_p + high_p) / 2
            low_p, high_p = (p, high_p) if 1 - torch.prod(1 - p * covers) < rate else (low_p, p)
        return (low_p + high_p) / 2

    def __call__(self, input_ids: torch.Tensor, noise: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked input ids and labels (-100 where not masked) for a batch; `noise` is uniform (B, L, 3)."""
        eligible = input_ids >= NUM_SPECIAL
        probability = self.centre_probability(step)
        draw = noise[..., 0]
        centres = eligible & (draw < probability)
        low, high = self.hidden_range_at(step)
        # a centre's draw is uniform below `probability`, so it also picks the span's length uniformly
        pick = (draw / probability * (high - low + 1)).long().clamp_(max=high - low)
        lengths = low + self.k - 1 + pick
        left = torch.div(lengths - 1, 2, rounding_mode="floor")
        right = lengths - 1 - left
        masked = torch.zeros_like(centres)
        width = input_ids.shape[1]
        longest = high + self.k - 1
        for offset in range(-((longest - 1) // 2), longest - (longest - 1) // 2):
            if abs(offset) >= width:  # a span longer than the window: the part past its ends masks nothing
                continue
            reach = centres & (left >= -offset) & (right >= offset)
            if offset >= 0:
                masked[:, offset:] |= reach[:, : width - offset]
            else:
                masked[:, :offset] |= reach[:, -offset:]
        masked &= eligible
        labels = torch.where(masked, input_ids, IGNORE_INDEX)
        action = noise[..., 1]
        to_mask = masked & (action < self.mask_token_fraction)
        to_random = masked & ~to_mask & (action < self.mask_token_fraction + self.random_token_fraction)
        random_ids = (noise[..., 2] * self.vocab_size).long().clamp_(max=self.vocab_size - 1)
        corrupted = torch.where(to_mask, MASK_ID, input_ids)
        corrupted = torch.where(to_random, random_ids, corrupted)
        return corrupted, labels


class RandomMask(SpanMasking):
    """RandomMask's curriculum: each span hides 1 .. `max_hidden` nucleotides, `max_hidden` widening by step."""

    name = "random_mask"

    def __init__(self, k: int, vocab_size: int, schedule: StepSchedule, max_hidden: StepSchedule,
                 mask_token_fraction: float = 0.8, random_token_fraction: float = 0.1):
        super().__init__(k, vocab_size, schedule, None, mask_token_fraction, random_token_fraction)
        self.max_hidden = step_schedule("task.masking.max_hidden", max_hidden,
                                        lambda h: isinstance(h, int) and h >= 1, "whole numbers of nucleotides >= 1")

    def hidden_range_at(self, step: int) -> tuple[int, int]:
        return 1, int(value_at(self.max_hidden, step))


def kmer_slots(input_ids: torch.Tensor) -> torch.Tensor:
    """Which token positions hold a k-mer (a real one or `[UNK]`), as opposed to `[CLS]`, `[SEP]`, `[PAD]`."""
    return (input_ids >= NUM_SPECIAL) | (input_ids == UNK_ID)


def covering(token_values: torch.Tensor, k: int) -> torch.Tensor:
    """(B, T, ...) per-token values -> (B, nucleotides, k, ...): for nucleotide j, the value of k-mer slot j - o at
    offset o (zero or False where that slot lies outside the row).

    Token column t + 1 holds the k-mer starting at nucleotide t (column 0 is `[CLS]`, the last is `[SEP]`/`[PAD]`).
    """
    kmers = token_values[:, 1:-1]
    edge = kmers.new_zeros((kmers.shape[0], k - 1, *kmers.shape[2:]))
    padded = torch.cat([edge, kmers, edge], dim=1)
    width = kmers.shape[1] + k - 1
    return torch.stack([padded[:, k - 1 - o : k - 1 - o + width] for o in range(k)], dim=2)


def hidden_nucleotides(input_ids: torch.Tensor, corrupted: torch.Tensor, k: int) -> torch.Tensor:
    """(B, nucleotides) True where every k-mer covering a nucleotide was changed in the model's input.

    A changed token is `[MASK]` or a random k-mer; an unchanged one (unmasked, or masked but kept) shows its
    bases, so a nucleotide counts as hidden only when nothing in the input shows it.
    """
    present = kmer_slots(input_ids)
    shows = present & (corrupted == input_ids)
    return covering(present, k).any(-1) & ~covering(shows, k).any(-1)


def nucleotides_of(input_ids: torch.Tensor, k: int) -> torch.Tensor:
    """(B, nucleotides) codes (A,T,C,G = 0..3) read off the k-mer ids; -1 where no real k-mer covers a base (N)."""
    real = input_ids >= NUM_SPECIAL
    index = (input_ids - NUM_SPECIAL).clamp(min=0)
    digits = torch.stack([(index // 4 ** (k - 1 - o)) % 4 for o in range(k)], dim=-1)  # (B, T, k)
    bases = torch.diagonal(covering(digits, k), dim1=2, dim2=3)  # nucleotide j: digit o of the k-mer at j - o
    real_slots = covering(real, k)
    first = real_slots.float().argmax(-1, keepdim=True)  # any real k-mer covering j gives its base
    return torch.where(real_slots.any(-1), bases.gather(-1, first).squeeze(-1), -1)
