"""Groups of labelled sequences that overlap (share a stretch of sequence on either strand).

Windows cut from one genome often overlap: nearby TSSs, alternative splice sites, neighbouring peaks. A validation
split drawn row by row then holds sequence the model trained on, and model selection rewards memorising it. Whole
overlap groups go to one side instead.
"""

from __future__ import annotations

import numpy as np

from dnabert.tokenization import codes_to_text, nucleotide_codes, reverse_complement_text


def overlap_groups(sequences: list[str], length: int) -> np.ndarray:
    """A group id per sequence: sequences sharing any `length`-nt stretch (either strand) share a group.

    Stretches with an ambiguous base are ignored (runs of N would join unrelated sequences).
    """
    parent = np.arange(len(sequences))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[str, int] = {}
    for index, sequence in enumerate(sequences):
        forward = codes_to_text(nucleotide_codes(sequence))
        for strand in (forward, reverse_complement_text(forward)):
            for start in range(len(strand) - length + 1):
                word = strand[start:start + length]
                other = first_seen.setdefault(word, index)
                if other != index and "N" not in word:
                    parent[root(index)] = root(other)
    return np.array([root(i) for i in range(len(sequences))])


def grouped_holdout(groups: np.ndarray, n_holdout: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of about `n_holdout` rows made of whole groups in random order (groups too big to fit are skipped)."""
    ids, sizes = np.unique(groups, return_counts=True)
    taken, total = [], 0
    for position in rng.permutation(len(ids)):
        if total + sizes[position] <= n_holdout:
            taken.append(ids[position])
            total += sizes[position]
        if total == n_holdout:
            break
    return np.flatnonzero(np.isin(groups, taken))
