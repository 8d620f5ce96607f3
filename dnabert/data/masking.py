"""DNABERT's contiguous span masking for masked-k-mer pretraining.

Each selected centre expands to a run of `span_length` adjacent tokens (k by default, offsets
-floor((k-1)/2) .. +ceil((k-1)/2) as in DNABERT); special tokens are never masked; each masked token becomes
`[MASK]` (80 %), a random id from the whole vocabulary (10 %) or stays (10 %). The rate is the fraction of
tokens to mask, and may change with the training step (DNABERT: 15 % then 20 %).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from dnabert.errors import DnabertError
from dnabert.tokenization import MASK_ID, NUM_SPECIAL

IGNORE_INDEX = -100
NOISE_CHANNELS = 3
"""Uniform noise per token: centre draw, replacement action, random replacement id."""


class SpanMasking:
    """Turns token ids plus per-token uniform noise into masked inputs and MLM labels."""

    def __init__(
        self,
        span_length: int,
        vocab_size: int,
        schedule: Mapping[int, float],
        mask_token_fraction: float = 0.8,
        random_token_fraction: float = 0.1,
    ):
        if span_length < 1:
            raise DnabertError(f"masking.span_length={span_length}: must be at least 1")
        if not schedule or any(not 0 < rate < 1 for rate in schedule.values()):
            raise DnabertError(f"masking.schedule={dict(schedule)}: give {{step: rate}} with rates between 0 and 1")
        if min(schedule) != 0:
            raise DnabertError(f"masking.schedule={dict(schedule)}: the first entry must start at step 0")
        if mask_token_fraction < 0 or random_token_fraction < 0 or mask_token_fraction + random_token_fraction > 1:
            raise DnabertError("masking: mask_token_fraction + random_token_fraction must lie between 0 and 1")
        self.span_length = span_length
        self.vocab_size = vocab_size
        self.schedule = sorted((int(step), float(rate)) for step, rate in schedule.items())
        self.mask_token_fraction = mask_token_fraction
        self.random_token_fraction = random_token_fraction

    def rate_at(self, step: int) -> float:
        """Target fraction of masked tokens at a training step."""
        return [rate for start, rate in self.schedule if start <= step][-1]

    def centre_probability(self, rate: float) -> float:
        """Per-token centre probability whose spans cover `rate` of the tokens (overlaps accounted for)."""
        return 1.0 - (1.0 - rate) ** (1.0 / self.span_length)

    def __call__(self, input_ids: torch.Tensor, noise: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked input ids and labels (-100 where not masked) for a batch; `noise` is uniform (B, L, 3)."""
        eligible = input_ids >= NUM_SPECIAL
        centres = eligible & (noise[..., 0] < self.centre_probability(self.rate_at(step)))
        left = (self.span_length - 1) // 2
        masked = torch.zeros_like(centres)
        width = input_ids.shape[1]
        for offset in range(-left, self.span_length - left):
            if offset >= 0:
                masked[:, offset:] |= centres[:, : width - offset]
            else:
                masked[:, :offset] |= centres[:, -offset:]
        masked &= eligible
        labels = torch.where(masked, input_ids, IGNORE_INDEX)
        action = noise[..., 1]
        to_mask = masked & (action < self.mask_token_fraction)
        to_random = masked & ~to_mask & (action < self.mask_token_fraction + self.random_token_fraction)
        random_ids = (noise[..., 2] * self.vocab_size).long().clamp_(max=self.vocab_size - 1)
        corrupted = torch.where(to_mask, MASK_ID, input_ids)
        corrupted = torch.where(to_random, random_ids, corrupted)
        return corrupted, labels
