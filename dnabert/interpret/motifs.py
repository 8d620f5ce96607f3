"""DNABERT-viz motif discovery: high-attention regions of positive sequences -> enriched, merged motifs.

The procedure of the original `motif/motif_utils.py` (spec section 5): contiguous high-attention runs,
candidate substrings, a one-sided hypergeometric test against the negatives with Benjamini-Hochberg
correction, merging of similar candidates (shortest first) by ungapped alignment, fixed-width instance
windows, and a minimum instance count.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import false_discovery_control, hypergeom

from dnabert.errors import DnabertError
from dnabert.tokenization import AMBIGUOUS, nucleotide_codes

MAX_CODED_LENGTH = 31
"""Longest motif counted through 2-bit window codes (62 bits of a uint64)."""


@dataclass
class Settings:
    """Parameters of one discovery method, set from `--set key=value` strings."""

    tomtom_top: int = 5
    """JASPAR matches written per motif (best first)."""

    def with_settings(self, settings: list[str]) -> Settings:
        """A copy with `key=value` strings applied (values converted to each field's type)."""
        types = {f.name: type(getattr(self, f.name)) for f in dataclasses.fields(self)}
        changes = {}
        for setting in settings:
            key, sep, value = setting.partition("=")
            if not sep or key not in types:
                raise DnabertError(f"--set {setting}: write KEY=VALUE with KEY one of {sorted(types)}")
            try:
                changes[key] = _convert(value, types[key])
            except ValueError:
                raise DnabertError(f"--set {setting}: {value!r} is not a {types[key].__name__}") from None
        return dataclasses.replace(self, **changes)


@dataclass
class MotifConfig(Settings):
    """DNABERT-viz on attention (`--method attention`); defaults are DNABERT's `find_motifs.py` but for `rule`."""

    window_size: int = 24
    """Width of each instance window (and of the matrices) in nt."""
    min_len: int = 5
    """Shortest high-attention run kept as a candidate."""
    rule: str = "relative"
    """Which positions are high: `relative` (score > mean + min_sd x sd of the sequence's scores) or `dnabert`
    (score > mean and > min_factor x the sequence's minimum, DNABERT's rule)."""
    min_sd: float = 1.0
    """`relative` rule: standard deviations above the sequence's mean score."""
    min_factor: float = 10.0
    """`dnabert` rule: multiple of the sequence's minimum score."""
    pval_cutoff: float = 0.005
    """Candidates are kept when their Benjamini-Hochberg adjusted hypergeometric p-value is below this."""
    min_n_motif: int = 3
    """Merged motifs with fewer instance windows are dropped."""
    align_all_ties: bool = True
    """A candidate joins every key tied for the best alignment score (else only the first)."""

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise DnabertError(f"--set rule={self.rule}: use one of {list(RULES)}")


def _convert(value: str, kind: type) -> int | float | bool:
    if kind is bool:
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(value)
        return value.lower() in ("true", "1", "yes")
    return kind(value)


@dataclass
class Motif:
    """A merged motif: its key string and aligned instances (sequence index, region start, region end)."""

    key: str
    instances: list[tuple[int, int, int]] = field(default_factory=list)
    windows: list[str] = field(default_factory=list)
    window_instances: list[tuple[int, int, int]] = field(default_factory=list)
    """(sequence index, window start, window end) of each kept window, in `windows` order."""

    @property
    def name(self) -> str:
        return f"{self.key}_{len(self.windows)}"

    def frequency_matrix(self) -> np.ndarray:
        """Position frequency matrix (4 x window, rows A, C, G, T) of the instance windows; N is not counted."""
        codes = np.frombuffer("".join(self.windows).encode(), dtype=np.uint8).reshape(len(self.windows), -1)
        counts = np.stack([(codes == ord(base)).sum(0) for base in "ACGT"]).astype(np.float64)
        return counts / np.maximum(counts.sum(0, keepdims=True), 1)


def high_positions(scores: np.ndarray, config: MotifConfig) -> np.ndarray:
    """Which positions of one sequence's scores are high under `config.rule` (NaN, unscored, never is)."""
    if config.rule == "relative":
        return scores > np.nanmean(scores) + config.min_sd * np.nanstd(scores)
    return (scores > np.nanmean(scores)) & (scores > config.min_factor * np.nanmin(scores))


RULES = ("relative", "dnabert")
"""`MotifConfig.rule` values."""


def high_attention_regions(scores: np.ndarray, config: MotifConfig) -> list[tuple[int, int]]:
    """Half-open runs of length >= config.min_len of high positions (`high_positions`) over the scored nucleotides."""
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).all():
        return []
    high = high_positions(scores, config)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], high.astype(np.int8), [0]])))
    starts, ends = edges[0::2], edges[1::2]
    keep = ends - starts >= config.min_len
    return list(zip(starts[keep].tolist(), ends[keep].tolist()))


def candidate_motifs(sequences: list[str], scores: list[np.ndarray], config: MotifConfig) -> dict[str, list]:
    """Substrings of the high-attention regions of each (positive) sequence, pooled by identical string."""
    candidates: dict[str, list[tuple[int, int, int]]] = {}
    for index, (sequence, score) in enumerate(zip(sequences, scores)):
        for start, end in high_attention_regions(score[: len(sequence)], config):
            candidates.setdefault(sequence[start:end], []).append((index, start, end))
    return candidates


def hypergeometric_pvalues(hits_positive: np.ndarray, hits_total: np.ndarray, n_positive: int,
                           n_total: int) -> np.ndarray:
    """P(X >= x), X ~ Hypergeom(N sequences, K positives, n sequences containing the motif), per candidate."""
    return hypergeom.sf(np.asarray(hits_positive) - 1, n_total, n_positive, np.asarray(hits_total))


def sequences_containing(motifs: list[str], sequences: list[str]) -> np.ndarray:
    """How many of `sequences` contain each motif at least once (exact match). Motifs of A/C/G/T up to 31 nt are
    counted through 2-bit codes of every window, one length at a time; any others by substring search."""
    counts = np.zeros(len(motifs), dtype=np.int64)
    codes = nucleotide_codes("".join(sequences)).astype(np.uint64) if sequences else np.zeros(0, np.uint64)
    owner = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    ambiguous = np.concatenate([[0], np.cumsum(codes == AMBIGUOUS)])
    by_length: dict[int, list[int]] = {}
    for i, motif in enumerate(motifs):
        if len(motif) <= MAX_CODED_LENGTH and not motif.strip("ACGT"):
            by_length.setdefault(len(motif), []).append(i)
        else:
            counts[i] = sum(motif in s for s in sequences)
    window = np.zeros_like(codes)
    for length in range(1, max(by_length, default=0) + 1):
        window = (window[:-1] << np.uint64(2)) | codes[length - 1 :] if length > 1 else codes.copy()
        if length not in by_length or not len(window):
            continue
        starts = np.arange(len(window))
        valid = (owner[:-length + 1 or None] == owner[length - 1 :]) & (ambiguous[length:] == ambiguous[:-length])
        wanted = np.array(by_length[length])
        targets, inverse = np.unique(np.array([_two_bit(motifs[i]) for i in wanted], dtype=np.uint64),
                                     return_inverse=True)
        slot = np.minimum(np.searchsorted(targets, window), len(targets) - 1)
        hits = valid & (targets[slot] == window)
        pairs = np.unique(slot[hits] * len(sequences) + owner[starts[hits]])
        counts[wanted] = np.bincount(pairs // len(sequences), minlength=len(targets))[inverse]
    return counts


def _two_bit(motif: str) -> int:
    value = 0
    for code in nucleotide_codes(motif).tolist():
        value = value << 2 | code
    return value


def enriched_motifs(candidates: dict[str, list], positives: list[str], negatives: list[str],
                    cutoff: float) -> dict[str, tuple[float, float]]:
    """Candidates whose BH-adjusted hypergeometric p-value is below `cutoff`: motif -> (p, adjusted p)."""
    if not candidates:
        return {}
    motifs = list(candidates)
    in_positive = sequences_containing(motifs, positives)
    in_negative = sequences_containing(motifs, negatives)
    pvalues = hypergeometric_pvalues(in_positive, in_positive + in_negative, len(positives),
                                     len(positives) + len(negatives))
    adjusted = false_discovery_control(pvalues, method="bh")
    return {m: (float(p), float(q)) for m, p, q in zip(motifs, pvalues, adjusted) if q < cutoff}


def alignment_scores(query: str, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best ungapped overlap (free end gaps) of `query` on each row of `keys` (zero-padded byte codes):
    (matching bases, first best offset d with query[i] ~ key[i + d]) per key."""
    q = np.frombuffer(query.encode(), dtype=np.uint8)
    padded = np.pad(keys, ((0, 0), (len(q), len(q))))
    offsets = np.arange(-(len(q) - 1), keys.shape[1])
    scores = np.stack([(padded[:, d + len(q) : d + 2 * len(q)] == q).sum(1) for d in offsets], axis=1)
    return scores.max(1), offsets[scores.argmax(1)]


def merge_motifs(candidates: dict[str, list], config: MotifConfig) -> list[Motif]:
    """Merge similar candidates, shortest first, into keys; instances are re-expressed in the key's frame."""
    keys: list[Motif] = []
    order = sorted(candidates, key=lambda m: (len(m), -len(candidates[m]), m))
    codes = np.zeros((len(order), max(map(len, order), default=0)), dtype=np.uint8)
    lengths = np.zeros(len(order), dtype=np.int64)
    for query in order:
        scores, offsets = alignment_scores(query, codes[: len(keys)])
        passing = scores >= np.maximum(config.min_len - 1, 0.5 * np.minimum(len(query), lengths[: len(keys)]))
        if not passing.any():
            codes[len(keys), : len(query)] = np.frombuffer(query.encode(), dtype=np.uint8)
            lengths[len(keys)] = len(query)
            keys.append(Motif(query, list(candidates[query])))
            continue
        ties = np.flatnonzero(passing & (scores == scores[passing].max()))
        for j in ties if config.align_all_ties else ties[:1]:
            d, width = int(offsets[j]), len(keys[j].key)
            keys[j].instances.extend((i, s - d, s - d + width) for i, s, _ in candidates[query])
    return keys


def instance_windows(motif: Motif, sequences: list[str], window_size: int) -> None:
    """Widen every instance symmetrically to `window_size` nt (odd extra base on the right); drop ones off the ends."""
    motif.windows, motif.window_instances = [], []
    for index, start, end in motif.instances:
        extra = window_size - (end - start)
        first = start - extra // 2
        last = first + window_size
        if first >= 0 and last <= len(sequences[index]):
            motif.windows.append(sequences[index][first:last])
            motif.window_instances.append((index, first, last))


def discover_motifs(positives: list[str], negatives: list[str], scores: list[np.ndarray],
                    config: MotifConfig) -> tuple[list[Motif], dict[str, tuple[float, float]]]:
    """DNABERT-viz on positives with their nucleotide attention scores: (motifs, enrichment of kept candidates)."""
    if not positives or not negatives:
        raise DnabertError("motif discovery needs both positive and negative sequences")
    candidates = candidate_motifs(positives, scores, config)
    enrichment = enriched_motifs(candidates, positives, negatives, config.pval_cutoff)
    merged = merge_motifs({m: candidates[m] for m in enrichment}, config)
    for motif in merged:
        instance_windows(motif, positives, config.window_size)
    kept = [m for m in merged if len(m.windows) >= config.min_n_motif]
    return sorted(kept, key=lambda m: -len(m.windows)), enrichment
