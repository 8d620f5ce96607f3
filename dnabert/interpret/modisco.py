"""TF-MoDISco (modisco-lite) on hypothetical contributions: seqlets, clustered into patterns, trimmed to matrices."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnabert.errors import DnabertError
from dnabert.interpret.motifs import Settings


@dataclass
class ModiscoConfig(Settings):
    """`--method modisco`: integration steps, TF-MoDISco's parameters, then how patterns are trimmed. Seqlet cores,
    flanks, the seqlet cap and trimming were chosen on validation (experiments/motif_recovery): 10-nt cores fit
    transcription-factor sites in short windows, where `modisco motifs`' 20-nt cores (30 nt with flanks) found 0-1
    patterns, and trimming by information keeps a site's weak end columns, which tell paralogs apart; the rest are
    `modisco motifs`' defaults."""

    steps: int = 50
    """Integrated-gradients steps per sequence."""
    sliding_window_size: int = 10
    """Width of the windows whose summed contribution makes a seqlet core."""
    flank_size: int = 3
    """Nucleotides added on each side of a seqlet core."""
    target_seqlet_fdr: float = 0.2
    """False discovery rate of seqlet cores against the null of the contributions' distribution."""
    min_metacluster_size: int = 100
    """Fewer seqlets of one sign than this: no patterns of that sign."""
    max_seqlets_per_metacluster: int = 20000
    """Seqlets clustered per sign (the first found, in input order)."""
    trim_to_window_size: int = 15
    """Width patterns are trimmed to while clustering."""
    initial_flank_to_add: int = 3
    """Nucleotides added to each pattern after trimming."""
    final_flank_to_add: int = 0
    """Nucleotides added to each final pattern."""
    n_leiden_runs: int = 2
    """Leiden clusterings (different seeds) per round."""
    final_min_cluster_size: int = 20
    """Patterns with fewer seqlets are dropped."""
    trim_bits: float = 0.1
    """Matrices keep the span of columns carrying at least this much information (bits) over the input sequences'
    base composition (and passing `trim_threshold`)."""
    trim_threshold: float = 0.0
    """Matrices keep the span of columns whose absolute contribution is at least this fraction of the largest (and
    passing `trim_bits`); 0: off (`modisco report` trims at 0.3)."""


@dataclass
class Pattern:
    """A TF-MoDISco pattern: name (`pos_pattern_0`), trimmed probability matrix (4 x width, rows A, C, G, T) and
    its seqlets (sequence index, start, end, strand) in the input's coordinates, trimmed like the matrix."""

    name: str
    probabilities: np.ndarray
    seqlets: list[tuple[int, int, int, str]] = field(default_factory=list)


def require_modisco() -> None:
    """Import modisco-lite now (before minutes of attributions); missing, it is the `interp` extra's to install."""
    import modiscolite  # noqa: F401


def information(frequencies: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Relative entropy (bits) of each row of a width x 4 frequency matrix over the background's 4 frequencies;
    rows are normalised first, empty rows (all padding) carry none."""
    totals = frequencies.sum(1, keepdims=True)
    p = np.divide(frequencies, totals, out=np.zeros_like(frequencies, dtype=float), where=totals > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log2(p / background), 0.0).sum(1)


def trimmed_span(contributions: np.ndarray, frequencies: np.ndarray, background: np.ndarray,
                 config: ModiscoConfig) -> tuple[int, int]:
    """Half-open span from the first to the last position (rows of width x 4 matrices) with at least
    `config.trim_bits` of information over the background and absolute summed contribution at least
    `config.trim_threshold` x the largest; the whole pattern when no position passes both."""
    score = np.abs(contributions).sum(1)
    kept = np.flatnonzero((information(frequencies, background) >= config.trim_bits)
                          & (score >= config.trim_threshold * score.max()))
    if not len(kept):
        return 0, len(score)
    return int(kept[0]), int(kept[-1]) + 1


def seqlet_span(seqlet, start: int, end: int, pad: int, length: int) -> tuple[int, int, int, str]:
    """A seqlet's trimmed span in its sequence (`length` nt, `pad` zeros added on each side): pattern columns
    [start, end), counted from the seqlet's end when it is reverse complemented, clipped to the sequence."""
    if seqlet.is_revcomp:
        first, last, strand = int(seqlet.end) - end, int(seqlet.end) - start, "-"
    else:
        first, last, strand = int(seqlet.start) + start, int(seqlet.start) + end, "+"
    return int(seqlet.example_idx), max(first - pad, 0), min(last - pad, length), strand


@dataclass
class ModiscoResult:
    """modisco's own results (SeqletSets of each sign, or None), whose coordinates count `padding` zeros added
    before each sequence, with what trimming its patterns needs: the inputs' base composition and lengths."""

    positive: list | None
    negative: list | None
    window: int
    padding: int
    background: np.ndarray
    lengths: np.ndarray

    def patterns(self, config: ModiscoConfig) -> list[Pattern]:
        """Every pattern (positive first) trimmed by `config` (`trim_bits`, `trim_threshold`)."""
        patterns = []
        for sign, found in (("pos", self.positive), ("neg", self.negative)):
            for index, pattern in enumerate(found or []):
                start, end = trimmed_span(pattern.contrib_scores, pattern.sequence, self.background, config)
                probabilities = pattern.sequence[start:end].T
                probabilities = probabilities / np.maximum(probabilities.sum(0, keepdims=True), 1e-12)
                seqlets = [seqlet_span(s, start, end, self.padding, int(self.lengths[s.example_idx]))
                           for s in pattern.seqlets]
                patterns.append(Pattern(f"{sign}_pattern_{index}", probabilities, seqlets))
        return patterns

    def save(self, path: Path) -> None:
        """modisco's HDF5 results file (what `modisco report` reads), the padding as attribute `dnabert_padding`."""
        import h5py
        from modiscolite import io

        io.save_hdf5(str(path), self.positive, self.negative, self.window)
        with h5py.File(path, "a") as results:
            results.attrs["dnabert_padding"] = self.padding


def run_modisco(one_hot: np.ndarray, hypothetical: np.ndarray, config: ModiscoConfig) -> ModiscoResult:
    """TF-MoDISco's seqlets and patterns (untrimmed: `ModiscoResult.patterns` trims them) from (N, L, 4) one-hot
    inputs and hypothetical contributions (columns A, C, G, T; zeros past a sequence's end). Both get zeros on each
    side first, as wide as a pattern grows past its trimmed core, so that the seqlets of sites near either end of
    short sequences are not dropped when patterns widen."""
    from modiscolite import tfmodisco

    if one_hot.shape[1] < config.sliding_window_size + 2 * config.flank_size:
        raise DnabertError(f"motifs --method modisco: sequences of {one_hot.shape[1]} nt are shorter than a seqlet "
                           f"({config.sliding_window_size} + 2 x {config.flank_size} nt); lower "
                           "--set sliding_window_size=... or give longer sequences")
    pad = config.trim_to_window_size // 2 + config.initial_flank_to_add + config.final_flank_to_add
    known = one_hot.any(-1)
    lengths = np.where(known.any(1), one_hot.shape[1] - known[:, ::-1].argmax(1), 0)
    widened = [np.pad(array.astype(np.float32), ((0, 0), (pad, pad), (0, 0))) for array in (one_hot, hypothetical)]
    with np.errstate(invalid="ignore", divide="ignore"):  # the padding's empty columns, normalised by modisco
        positive, negative = tfmodisco.TFMoDISco(
            *widened, sliding_window_size=config.sliding_window_size, flank_size=config.flank_size,
            target_seqlet_fdr=config.target_seqlet_fdr, min_metacluster_size=config.min_metacluster_size,
            max_seqlets_per_metacluster=config.max_seqlets_per_metacluster,
            trim_to_window_size=config.trim_to_window_size, initial_flank_to_add=config.initial_flank_to_add,
            final_flank_to_add=config.final_flank_to_add, n_leiden_runs=config.n_leiden_runs,
            final_min_cluster_size=config.final_min_cluster_size)
    background = one_hot.reshape(-1, 4).sum(0) / max(one_hot.sum(), 1)
    return ModiscoResult(positive, negative, config.sliding_window_size, pad, background, lengths)
