"""DNABERT span masking: runs of k around centres, specials never masked, rate and 80/10/10 as configured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnabert.data.masking import IGNORE_INDEX, SpanMasking
from dnabert.errors import DnabertError
from dnabert.tokenization import MASK_ID, NUM_SPECIAL, batch_kmer_ids, vocab_size


def batch(k: int, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    sequences = ["".join(rng.choice(list("ACGT"), n)) for n in lengths]
    ids = torch.from_numpy(batch_kmer_ids(sequences, k).input_ids)
    noise = torch.from_numpy(rng.random(ids.shape + (3,), dtype=np.float32))
    return ids, noise


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_spans_are_k_long_around_centres_and_avoid_special_tokens(k):
    masking = SpanMasking(k, vocab_size(k), {0: 0.15})
    ids, noise = batch(k, [515, 300, 40, 515])
    _, labels = masking(ids, noise, step=0)
    masked = labels != IGNORE_INDEX
    eligible = ids >= NUM_SPECIAL
    assert not (masked & ~eligible).any()
    assert (labels[masked] == ids[masked]).all()
    left = (k - 1) // 2
    centres = eligible & (noise[..., 0] < masking.centre_probability(0.15))
    expected = torch.zeros_like(masked)
    for row, column in centres.nonzero().tolist():
        expected[row, max(column - left, 0) : column - left + k] = True
    assert torch.equal(masked, expected & eligible)
    # every run not touching a sequence edge is a union of whole k-long spans
    for row in masked.int().tolist():
        runs = "".join(map(str, row)).replace("0", " ").split()
        interior = runs[1:-1]
        assert all(len(run) >= k for run in interior)


@pytest.mark.parametrize("k,rate", [(3, 0.15), (6, 0.15), (6, 0.20), (4, 0.25)])
def test_masked_fraction_matches_configured_rate(k, rate):
    masking = SpanMasking(k, vocab_size(k), {0: rate})
    ids, noise = batch(k, [515] * 64, seed=k)
    corrupted, labels = masking(ids, noise, step=0)
    masked = labels != IGNORE_INDEX
    eligible = ids >= NUM_SPECIAL
    fraction = masked.sum().item() / eligible.sum().item()
    assert abs(fraction - rate) < 0.01, fraction
    replaced_by_mask = (corrupted[masked] == MASK_ID).float().mean().item()
    unchanged = (corrupted[masked] == ids[masked]).float().mean().item()
    assert abs(replaced_by_mask - 0.8) < 0.02 and 0.08 < unchanged < 0.12
    assert (corrupted[~masked] == ids[~masked]).all()


def test_schedule_switches_rate_at_the_given_step():
    masking = SpanMasking(6, vocab_size(6), {0: 0.15, 100_000: 0.20})
    assert masking.rate_at(0) == 0.15 and masking.rate_at(99_999) == 0.15 and masking.rate_at(100_000) == 0.20
    ids, noise = batch(6, [515] * 32)
    early = (masking(ids, noise, 10)[1] != IGNORE_INDEX).sum()
    late = (masking(ids, noise, 120_000)[1] != IGNORE_INDEX).sum()
    assert late > early


@pytest.mark.parametrize("schedule", [{0: 0.0}, {0: 1.5}, {10: 0.15}, {}])
def test_bad_schedule_is_a_user_error(schedule):
    with pytest.raises(DnabertError, match="masking.schedule"):
        SpanMasking(6, vocab_size(6), schedule)
