"""Pretraining windows drawn from genome shards, each a pure function of (seed, split, index).

DNABERT's rule: half the windows are full length (the model's maximum number of k-mers), the rest have a
uniformly random number of k-mers between a minimum and the maximum. The number is drawn per window, or once
per group of `length_group` consecutive indices (a micro-batch), so that a batch needs no padding while each
window's length keeps the same distribution. Windows with too many N are redrawn, and a window may be
reverse-complemented. Because window `i` depends only on the seed, the group size and `i`, data-parallel
ranks that take different indices see different windows, and a resumed run sees exactly the windows it
would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dnabert.data.masking import NOISE_CHANNELS
from dnabert.errors import DnabertError
from dnabert.genome.shards import GenomeShards
from dnabert.tokenization import AMBIGUOUS, reverse_complement

SPLIT_STREAMS = {"train": 0, "val": 1}
GROUP_LENGTH_KEY = 1
"""Last seed word of a group's length draw: `[seed, stream, group, 1]` never equals a window's
`[seed, stream, index]`, which numpy seeds as `[seed, stream, index, 0]`."""


@dataclass(frozen=True)
class Regions:
    """Half-open intervals of contigs that one split samples from."""

    contig: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @property
    def total(self) -> int:
        """Total length in nucleotides."""
        return int((self.end - self.start).sum())


def holdout_regions(
    shards: GenomeShards, contigs: list[str] | None = None, fraction: float = 0.05
) -> tuple[Regions, Regions]:
    """Split a genome into (train, validation) regions.

    Named contigs are held out when given. Otherwise whole contigs are taken from the end of the file until
    `fraction` of the genome is reached; a genome with a single contig holds out its last `fraction`.
    """
    lengths = shards.lengths
    n = len(lengths)
    if contigs:
        held = np.zeros(n, dtype=bool)
        held[[shards.index_of(name) for name in contigs]] = True
        if held.all():
            raise DnabertError("data.holdout.contigs names every contig: leave at least one for training")
    elif not 0 < fraction < 1:
        raise DnabertError(f"data.holdout.fraction={fraction}: must be between 0 and 1")
    elif n == 1:
        cut = int(lengths[0] * (1 - fraction))
        zero = np.zeros(1, dtype=np.int64)
        return Regions(zero, zero, np.array([cut])), Regions(zero, np.array([cut]), lengths.copy())
    else:
        before = np.concatenate([[0], np.cumsum(lengths[::-1])[:-1]])[::-1]
        held = before < fraction * lengths.sum()
        held[0] = False
    all_contigs = np.arange(n)
    zeros = np.zeros(n, dtype=np.int64)

    def regions(mask: np.ndarray) -> Regions:
        return Regions(all_contigs[mask], zeros[mask], lengths[mask])

    return regions(~held), regions(held)


def random_starts(lengths: np.ndarray, weights: np.ndarray, length: int,
                  rng: np.random.Generator) -> Iterator[tuple[int, int]]:
    """Endless random (contig, start) of `length`-nt windows: contigs in proportion to `weights`, starts uniform."""
    probabilities = weights / weights.sum()
    while True:
        contig = int(rng.choice(len(lengths), p=probabilities))
        yield contig, int(rng.integers(0, max(1, lengths[contig] - length)))


class WindowSampler:
    """Draws window `index` of a split: nucleotide codes plus uniform masking noise for its tokens."""

    def __init__(
        self,
        shards: GenomeShards,
        regions: Regions,
        k: int,
        max_kmers: int,
        min_kmers: int = 5,
        full_length_fraction: float = 0.5,
        max_ambiguous_fraction: float = 0.05,
        reverse_complement: float = 0.0,
        seed: int = 0,
        split: str = "train",
        max_draws: int = 100,
        length_group: int = 1,
    ):
        if not 1 <= min_kmers <= max_kmers:
            raise DnabertError(f"data.min_kmers={min_kmers} must lie between 1 and the model's {max_kmers} k-mers")
        if length_group < 1:
            raise DnabertError(f"length_group={length_group}: must be at least 1")
        self.shards = shards
        self.k = k
        self.max_kmers = max_kmers
        self.min_kmers = min_kmers
        self.full_length_fraction = full_length_fraction
        self.max_ambiguous_fraction = max_ambiguous_fraction
        self.reverse_complement = reverse_complement
        self.seed = seed
        self.stream = SPLIT_STREAMS[split]
        self.max_draws = max_draws
        self.length_group = length_group
        usable = (regions.end - regions.start) >= min_kmers + k - 1
        if not usable.any():
            raise DnabertError(
                f"{shards.directory}: the {split} split has no region of at least {min_kmers + k - 1} nt; "
                "use a larger genome or change data.holdout"
            )
        self.regions = Regions(regions.contig[usable], regions.start[usable], regions.end[usable])
        self.cumulative = np.cumsum(self.regions.end - self.regions.start)

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(codes of window `index`, uniform noise of shape (tokens incl. specials, 3))."""
        rng = np.random.default_rng([self.seed, self.stream, index])
        group_kmers = None
        if self.length_group > 1:
            group = index // self.length_group
            group_kmers = self.kmer_count(np.random.default_rng([self.seed, self.stream, group, GROUP_LENGTH_KEY]))
        for _ in range(self.max_draws):
            n_kmers = group_kmers or self.kmer_count(rng)
            region = int(np.searchsorted(self.cumulative, rng.random() * self.cumulative[-1], side="right"))
            start, end = int(self.regions.start[region]), int(self.regions.end[region])
            length = min(n_kmers + self.k - 1, end - start)
            offset = start + int(rng.integers(0, end - start - length + 1))
            codes = self.shards.fetch(int(self.regions.contig[region]), offset, offset + length)
            if np.count_nonzero(codes == AMBIGUOUS) <= self.max_ambiguous_fraction * length:
                break
        else:
            raise DnabertError(
                f"{self.shards.directory}: no window with at most {self.max_ambiguous_fraction:.0%} N in "
                f"{self.max_draws} draws; raise data.max_ambiguous_fraction or check the genome"
            )
        if self.reverse_complement and rng.random() < self.reverse_complement:
            codes = reverse_complement(codes)
        noise = rng.random((length - self.k + 1 + 2, NOISE_CHANNELS), dtype=np.float32)
        return codes, noise

    def sequence(self) -> np.ndarray:
        """Every region of the split as one code array, regions separated by an ambiguous code."""
        separator = np.array([AMBIGUOUS], dtype=np.uint8)
        parts = [part for contig, start, end in zip(self.regions.contig, self.regions.start, self.regions.end)
                 for part in (self.shards.fetch(int(contig), int(start), int(end)), separator)]
        return np.concatenate(parts)

    def kmer_count(self, rng: np.random.Generator) -> int:
        """DNABERT's length rule: the maximum with probability `full_length_fraction`, else uniform from the minimum."""
        if rng.random() < self.full_length_fraction:
            return self.max_kmers
        return int(rng.integers(self.min_kmers, self.max_kmers + 1))
