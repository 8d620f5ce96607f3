"""Hidden-nucleotide accuracy: the model's k-mer predictions decoded to bases, and the local k-mer baseline."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from dnabert.data.masking import hidden_nucleotides, nucleotides_of
from dnabert.models.hidden_nucleotides import (
    HiddenNucleotideAccuracy,
    LocalBaseline,
    nucleotide_probabilities,
    predicted_nucleotides,
)
from dnabert.tokenization import MASK_ID, batch_kmer_ids, kmer_vocab, vocab_size

BASE = {base: code for code, base in enumerate("ATCG")}


def logits_for(kmers: dict[str, float], k: int) -> torch.Tensor:
    """Logits over the k-mer vocabulary putting the given probabilities on the named k-mers."""
    probabilities = torch.full((vocab_size(k),), 1e-9)
    index = {token: i for i, token in enumerate(kmer_vocab(k))}
    for kmer, probability in kmers.items():
        probabilities[index[kmer]] = probability
    return probabilities.log()


def test_hand_worked_example():
    """ACGTACGT as 3-mers [CLS] ACG CGT GTA TAC ACG CGT [SEP]; CGT GTA TAC masked hide the T at position 3 only.

    CGT's prediction says {CGA: 0.6, CGT: 0.4} (position 3 is its last base: A 0.6, T 0.4), GTA's says {GTA: 1}
    (its middle base: T 1.0), TAC's {AAC: 0.7, TAC: 0.3} (its first base: A 0.7, T 0.3). Summed over the three:
    A 1.3, T 1.7, so the model calls T: right. The order-2 baseline, fitted on a sequence where CG is always
    followed by T, also calls T.
    """
    k = 3
    ids = torch.from_numpy(batch_kmer_ids(["ACGTACGT"], k).input_ids)
    corrupted = ids.clone()
    corrupted[0, 2:5] = MASK_ID
    hidden = hidden_nucleotides(ids, corrupted, k)
    truth = nucleotides_of(ids, k)
    assert truth[0].tolist() == [BASE[b] for b in "ACGTACGT"]
    assert hidden[0].nonzero().flatten().tolist() == [3]

    logits = torch.stack([logits_for({"CGA": 0.6, "CGT": 0.4}, k), logits_for({"GTA": 1.0}, k),
                          logits_for({"AAC": 0.7, "TAC": 0.3}, k)])
    marginals = nucleotide_probabilities(logits, k)
    assert torch.allclose(marginals[0, 2], torch.tensor([0.6, 0.4, 0, 0]), atol=1e-5)  # A, T, C, G
    assert torch.allclose(marginals[2, 0], torch.tensor([0.7, 0.3, 0, 0]), atol=1e-5)
    per_token = torch.zeros(*ids.shape, k, 4)
    per_token[0, 2:5] = marginals
    predicted = predicted_nucleotides(per_token, k)
    assert predicted[0, 3] == BASE["T"]

    training = np.array([BASE[b] for b in "ACGTTCGTGCGTAACGTC" * 20], dtype=np.uint8)
    baseline = LocalBaseline(training, orders=[1, 2])
    metric = HiddenNucleotideAccuracy(orders=[1, 2])
    metric.baseline = baseline
    metric.update(truth, hidden, predicted)
    values = metric.compute()
    assert values["hidden_accuracy"] == 1.0 and values["hidden_fraction"] == 1 / 8
    assert values["local_baseline"] == 1.0 and values["local_baseline_order"] == 1.0

    predicted[0, 3] = BASE["A"]  # the first k-mer's view alone would have been wrong
    metric.reset()
    metric.update(truth, hidden, predicted)
    assert metric.compute()["hidden_accuracy"] == 0.0


def test_flanked_runs_use_the_counts_of_their_flanks():
    """A run of 2 hidden bases between 2-base flanks takes the most frequent filling of GA..TC in training."""
    training = np.array([BASE[b] for b in ("GACCTC" * 5 + "GAGGTC" * 3 + "TTTT")], dtype=np.uint8)
    codes = np.array([[BASE[b] for b in "AAGAGGTCAA"]])
    hidden = np.zeros_like(codes, dtype=bool)
    hidden[0, 4:6] = True
    guess = LocalBaseline(training, orders=[2]).predict(codes, hidden, 2)
    assert guess[0, 4:6].tolist() == [BASE["C"], BASE["C"]] and (guess[0, ~hidden[0]] == -1).all()


def test_markov_posterior_is_exact():
    """Forward-backward marginals equal brute-force enumeration of the hidden bases under the fitted chain."""
    rng = np.random.default_rng(1)
    training = rng.integers(0, 4, 5000).astype(np.uint8)
    training[1::3] = training[0:-1:3][: len(training[1::3])]  # some structure to learn
    baseline = LocalBaseline(training, orders=[1, 2, 3])
    for m in (1, 2, 3):
        for _ in range(5):
            segment = rng.integers(0, 4, 11).astype(np.int8)
            hidden = sorted(rng.choice(11, 3, replace=False))
            segment[hidden] = -1
            exact = np.zeros((11, 4))
            for values in itertools.product(range(4), repeat=3):
                filled = segment.copy()
                filled[hidden] = values
                state = int(sum(int(filled[j]) * 4 ** (m - 1 - j) for j in range(m)))
                probability = baseline.initial[m][state]
                for t in range(m, 11):
                    probability *= baseline.transitions[m][state, filled[t]]
                    state = (state * 4 + int(filled[t])) % 4**m
                for position, value in zip(hidden, values):
                    exact[position, value] += probability
            exact /= exact.sum(1, keepdims=True).clip(1e-30)
            posterior = baseline._posterior(segment[None], m)[0]
            assert np.allclose(posterior[hidden], exact[hidden], atol=1e-5)


def test_the_baseline_reads_only_visible_bases():
    """Changing a hidden base does not change the baseline's call; the model's masked input carries none either."""
    rng = np.random.default_rng(3)
    training = rng.integers(0, 4, 20000).astype(np.uint8)
    codes = rng.integers(0, 4, (4, 60))
    hidden = np.zeros(codes.shape, dtype=bool)
    hidden[:, [10, 11, 30, 45]] = True
    baseline = LocalBaseline(training, orders=[2, 3])
    for m in (2, 3):
        first = baseline.predict(codes, hidden, m)
        altered = codes.copy()
        altered[hidden] = (altered[hidden] + 1) % 4
        assert np.array_equal(first, baseline.predict(altered, hidden, m))
        assert (first[hidden] >= 0).all() and (first[~hidden] == -1).all()
