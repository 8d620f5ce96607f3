"""Groups of labelled sequences that overlap (share a stretch of sequence on either strand).

Windows cut from one genome often overlap: nearby TSSs, alternative splice sites, neighbouring peaks. A validation
split drawn row by row then holds sequence the model trained on, and model selection rewards memorising it. Whole
overlap groups go to one side instead.
"""

from __future__ import annotations

import numpy as np

from dnabert.tokenization import AMBIGUOUS, nucleotide_codes, reverse_complement

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: the rolling hash works modulo 2**64


def _stretch_hashes(codes: np.ndarray, length: int) -> np.ndarray:
    """A 64-bit hash of each `length`-nt stretch starting at every position of `codes` (n - length + 1 values)."""
    count = len(codes) - length + 1
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(length):
            hashes = hashes * _MULTIPLIER + codes[offset : offset + count].astype(np.uint64) + np.uint64(1)
    return hashes


def overlap_groups(sequences: list[str], length: int) -> np.ndarray:
    """A group id per sequence: sequences that share a `length`-nt stretch (either strand) are in one group, and
    so, transitively, are sequences linked through others. Stretches with an ambiguous base are ignored (runs of N
    would join unrelated sequences). Vectorised numpy: about 50 bytes of memory per nucleotide.
    """
    codes = [nucleotide_codes(sequence) for sequence in sequences]
    joined = np.concatenate(codes) if codes else np.zeros(0, dtype=np.uint8)
    starts = np.cumsum([0] + [len(c) for c in codes])
    if len(joined) < length:
        return np.arange(len(sequences))
    canonical = _stretch_hashes(joined, length)
    # the reverse strand of the stretch at p is the stretch at n - length - p of the reverse complement
    np.minimum(canonical, _stretch_hashes(reverse_complement(joined), length)[::-1], out=canonical)
    position = np.arange(len(canonical), dtype=np.int64)
    owner = np.repeat(np.arange(len(codes), dtype=np.int32), np.diff(starts))[: len(canonical)]
    ambiguous = np.concatenate([[0], np.cumsum(joined == AMBIGUOUS, dtype=np.int32)])
    valid = (position + length <= starts[1:][owner]) & (ambiguous[position + length] == ambiguous[position])
    canonical, owner = canonical[valid], owner[valid]
    del position, ambiguous, valid
    order = np.argsort(canonical, kind="stable")
    canonical, owner = canonical[order], owner[order]
    same = (canonical[1:] == canonical[:-1]) & (owner[1:] != owner[:-1])
    pairs = np.unique(np.stack([owner[:-1][same], owner[1:][same]], axis=1), axis=0)
    parent = np.arange(len(sequences))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    return np.array([root(i) for i in range(len(sequences))])


def grouped_holdout(groups: np.ndarray, n_holdout: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to `n_holdout` rows made of whole groups taken in random order; a group too big for what is
    left is passed over (so small groups are slightly more likely to be held out)."""
    ids, sizes = np.unique(groups, return_counts=True)
    taken, total = [], 0
    for position in rng.permutation(len(ids)):
        if total + sizes[position] <= n_holdout:
            taken.append(ids[position])
            total += sizes[position]
        if total == n_holdout:
            break
    return np.flatnonzero(np.isin(groups, taken))
