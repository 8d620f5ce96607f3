"""Masking strategies: DNABERT's k-token spans, wider spans and RandomMask hide the nucleotides they claim, never
mask specials and keep the rate; 80/10/10 as configured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnabert.data.masking import IGNORE_INDEX, RandomMask, SpanMasking, hidden_nucleotides
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
    centres = eligible & (noise[..., 0] < masking.centre_probability(0))
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


@pytest.mark.parametrize("schedule", [[[0, 0.0]], [[0, 1.5]], [[10, 0.15]], [], [[0]], {0: 0.0}])
def test_bad_schedule_is_a_user_error(schedule):
    with pytest.raises(DnabertError, match="masking.schedule"):
        SpanMasking(6, vocab_size(6), schedule)


def strategies(k: int) -> dict[str, SpanMasking]:
    """One of each strategy: DNABERT's rule, spans hiding 4 nucleotides, RandomMask widening from 1 to 5."""
    return {"dnabert": SpanMasking(k, vocab_size(k), {0: 0.15}),
            "span": SpanMasking(k, vocab_size(k), {0: 0.15}, span_length=k + 3),
            "random_mask": RandomMask(k, vocab_size(k), {0: 0.15}, {0: 1, 100: 5})}


def isolated_spans(masked: torch.Tensor, centres: torch.Tensor, hidden: torch.Tensor, k: int,
                   lone: int) -> list[tuple[int, int]]:
    """(tokens, hidden nucleotides) of each masked run made by a single centre's span, away from the row's ends and
    from other runs by at least `lone` tokens (the k-mers of a run starting at slot a cover nucleotides a ..
    a + tokens + k - 2, so each run is compared with the nucleotides under it)."""
    found = []
    for row in range(masked.shape[0]):
        flags = masked[row, 1:].int().tolist()  # k-mer slots from column 1
        runs, start = [], None
        for i, flag in enumerate(flags + [0]):
            if flag and start is None:
                start = i
            elif not flag and start is not None:
                runs.append((start, i))
                start = None
        n_kmers = len(flags) - 1  # the last column is [SEP]
        for (a, b), before, after in zip(runs, [None] + runs[:-1], runs[1:] + [None]):
            crowded = (before and a - before[1] < lone) or (after and after[0] - b < lone)
            if a < lone or b > n_kmers - lone or crowded:
                continue
            if int(centres[row, 1 + a : 1 + b].sum()) != 1:  # overlapping spans: one run, several centres
                continue
            found.append((b - a, int(hidden[row, a : b + k - 1].sum())))
    return found


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_each_strategy_hides_the_nucleotides_it_claims_keeps_the_rate_and_avoids_specials(k):
    ids, noise = batch(k, [515] * 160, seed=10 + k)
    eligible = ids >= NUM_SPECIAL
    for name, masking in strategies(k).items():
        for step in (0, 100):
            corrupted, labels = masking(ids, noise, step)
            masked = labels != IGNORE_INDEX
            assert not (masked & ~eligible).any(), name
            assert abs(masked.sum().item() / eligible.sum().item() - 0.15) < 0.01, (name, step)
            everything_masked = torch.where(masked, MASK_ID, ids)  # 80/10/10 aside: what the spans hide
            centres = eligible & (noise[..., 0] < masking.centre_probability(step))
            spans = isolated_spans(masked, centres, hidden_nucleotides(ids, everything_masked, k), k, lone=k + 10)
            assert len(spans) > 50, (name, len(spans))
            low, high = masking.hidden_range_at(step)
            for tokens, hidden in spans:
                assert tokens - k + 1 == hidden, (name, tokens, hidden)  # span_length - k + 1 nucleotides
                assert low <= hidden <= high, (name, step, hidden)
            mean = np.mean([hidden for _, hidden in spans])
            assert abs(mean - masking.hidden_per_span(step)) < 0.35, (name, step, mean)
    assert strategies(k)["random_mask"].hidden_range_at(100) == (1, 5)


def test_corrupted_tokens_decide_what_is_hidden():
    """A nucleotide is hidden only when every k-mer covering it was changed: a masked k-mer left unchanged (the 10 %)
    still shows its bases."""
    k = 3
    ids = torch.from_numpy(batch_kmer_ids(["ACGTACGT"], k).input_ids)  # [CLS] ACG CGT GTA TAC ACG CGT [SEP]
    corrupted = ids.clone()
    corrupted[0, 2:5] = MASK_ID  # CGT GTA TAC: only the T at position 3 has no unmasked k-mer over it
    assert hidden_nucleotides(ids, corrupted, k)[0].tolist() == [False] * 3 + [True] + [False] * 4
    corrupted[0, 3] = ids[0, 3]  # GTA kept as it was: it shows the T
    assert not hidden_nucleotides(ids, corrupted, k).any()
    corrupted[0, 1:4] = MASK_ID  # ACG CGT GTA at the row's start: A, C and G have no other k-mer
    corrupted[0, 4] = ids[0, 4]
    assert hidden_nucleotides(ids, corrupted, k)[0].tolist() == [True, True, True] + [False] * 5


@pytest.mark.parametrize("make", [
    lambda: SpanMasking(6, vocab_size(6), {0: 0.15}, span_length=4),
    lambda: RandomMask(6, vocab_size(6), {0: 0.15}, {0: 0}),
    lambda: RandomMask(6, vocab_size(6), {0: 0.15}, {100: 3}),
])
def test_bad_strategy_settings_are_user_errors(make):
    with pytest.raises(DnabertError, match="task.masking"):
        make()


@pytest.mark.parametrize("k", [3, 6])
def test_spans_longer_than_the_window_mask_only_inside_it(k):
    """A window of 5 k-mers under spans of up to 12 hidden nucleotides (RandomMask late in training): the span's
    reach past both ends is cut, nothing else changes (it once failed with a shape error)."""
    ids, noise = batch(k, [k + 4] * 64 + [515] * 4, seed=3)
    short = ids[:64, :7]  # the short windows alone: [CLS] + 5 k-mers + [SEP]
    wide = RandomMask(k, vocab_size(k), [[0, 0.5]], [[0, 12]])
    for inputs, draws in ((short, noise[:64, : short.shape[1]]), (ids, noise)):
        corrupted, labels = wide(inputs, draws, 0)
        masked = labels != IGNORE_INDEX
        assert masked.any() and not (masked & (inputs < NUM_SPECIAL)).any()
        assert torch.equal(corrupted[~masked], inputs[~masked])
