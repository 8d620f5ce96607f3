"""Labelled sets with known motifs planted into real genome background: ground truth for motif discovery
and variant scoring. Positives carry one site sampled from a matrix (either strand); negatives carry none. As a data
module (`data=planted`), the set is planted for the run from its config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnabert.atomic import write_text_atomic
from dnabert.data.finetuning import LabelledDataModule
from dnabert.data.windows import random_starts
from dnabert.errors import DnabertError
from dnabert.genome.shards import GenomeShards, open_genome
from dnabert.interpret.jaspar import Matrix, read_meme
from dnabert.tokenization import AMBIGUOUS, codes_to_text, reverse_complement_text


@dataclass
class PlantedRow:
    """One sequence: label 1 with the planted matrix, site start (0-based) and strand, or label 0 without."""

    sequence: str
    label: int
    motif: str = ""
    start: int = -1
    strand: str = ""


def sample_site(probabilities: np.ndarray, rng: np.random.Generator) -> str:
    """One site drawn column by column from a 4 x width probability matrix (rows A, C, G, T)."""
    cumulative = np.cumsum(probabilities / probabilities.sum(0, keepdims=True), axis=0)
    draws = (rng.random(probabilities.shape[1])[None, :] > cumulative).sum(0)
    return "".join("ACGT"[min(int(d), 3)] for d in draws)


def background_windows(shards: GenomeShards, count: int, length: int, rng: np.random.Generator,
                       part: tuple[float, float] = (0.0, 1.0)) -> list[str]:
    """`count` random windows of `length` nt without N, drawn from contigs in proportion to their length, inside
    the `part` (fractions from, to) of every contig: disjoint parts give splits that share no background."""
    first = (shards.lengths * part[0]).astype(np.int64)
    spans = (shards.lengths * part[1]).astype(np.int64) - first
    usable = np.maximum(spans - length, 0)
    if not usable.any():
        raise DnabertError(f"{shards.directory}: no contig has {length} nt in its part {part[0]:g}-{part[1]:g}")
    windows: list[str] = []
    starts = random_starts(spans, usable, length, rng)
    while len(windows) < count:
        contig, start = next(starts)
        start += int(first[contig])
        codes = shards.fetch(contig, start, start + length)
        if not (codes == AMBIGUOUS).any():
            windows.append(codes_to_text(codes))
    return windows


def plant(background: str, site: str, rng: np.random.Generator, margin: int = 0) -> tuple[str, int, str]:
    """`background` with `site` (or its reverse complement, at random) written over a random position."""
    strand = "+" if rng.random() < 0.5 else "-"
    text = site if strand == "+" else reverse_complement_text(site)
    start = int(rng.integers(margin, len(background) - len(text) - margin + 1))
    return background[:start] + text + background[start + len(text):], start, strand


def planted_rows(shards: GenomeShards, matrices: dict[str, np.ndarray], per_motif: int, negatives: int,
                 length: int, seed: int, margin: int = 0, part: tuple[float, float] = (0.0, 1.0)) -> list[PlantedRow]:
    """`per_motif` positives per matrix (one sampled site each) and `negatives` plain windows (from `part` of
    every contig), shuffled."""
    rng = np.random.default_rng(seed)
    windows = background_windows(shards, per_motif * len(matrices) + negatives, length, rng, part)
    rows = [PlantedRow(window, 0) for window in windows[:negatives]]
    remaining = iter(windows[negatives:])
    for name, probabilities in matrices.items():
        for _ in range(per_motif):
            sequence, start, strand = plant(next(remaining), sample_site(probabilities, rng), rng, margin)
            rows.append(PlantedRow(sequence, 1, name, start, strand))
    return [rows[i] for i in rng.permutation(len(rows))]


def planted_lines(rows: list[PlantedRow]) -> list[str]:
    """TSV lines (with header) of a planted set: sequence, label, motif, start, strand."""
    return ["sequence\tlabel\tmotif\tstart\tstrand",
            *(f"{r.sequence}\t{r.label}\t{r.motif}\t{r.start}\t{r.strand}" for r in rows)]


def planted_matrices(jaspar: str | Path, identifiers: list[str]) -> dict[str, Matrix]:
    """The matrices of a MEME file named by `identifiers`, in that order."""
    known = {matrix.identifier: matrix for matrix in read_meme(jaspar)}
    missing = [identifier for identifier in identifiers if identifier not in known]
    if missing:
        raise DnabertError(f"{jaspar}: no matrices {missing}; name matrices the file holds (MOTIF lines)")
    return {identifier: known[identifier] for identifier in identifiers}


class PlantedDataModule(LabelledDataModule):
    """A labelled set planted for the run: the `motifs` of the `jaspar` file sampled (either strand) into `length`-nt
    windows of `genome`, `train_rows` and `test_rows` ({per_motif, negatives}) from disjoint parts of every contig
    (the test split from the last `test_part`), seeded by `seed`; written to `train` and `test` (with the truth:
    `motif`, `start`, `strand`) and then read as any labelled set (every other argument is LabelledDataModule's)."""

    def __init__(self, genome: str, jaspar: str, motifs: list[str], length: int, train_rows: dict, test_rows: dict,
                 test_part: float, cache_dir: str, train: str, test: str, seed: int = 0, **labelled):
        if not 0 < test_part < 1:
            raise DnabertError(f"data.test_part={test_part}: must lie between 0 and 1")
        if not Path(test).is_file():
            matrices = {i: m.probabilities for i, m in planted_matrices(jaspar, list(motifs)).items()}
            shards = open_genome(Path(genome), Path(cache_dir), progress=False)
            parts = {train: (train_rows, (0.0, 1.0 - test_part)), test: (test_rows, (1.0 - test_part, 1.0))}
            Path(test).parent.mkdir(parents=True, exist_ok=True)
            for offset, (path, (counts, part)) in enumerate(parts.items()):  # the test file last: it marks both done
                rows = planted_rows(shards, matrices, counts["per_motif"], counts["negatives"], length,
                                    1000 * seed + offset, part=part)
                write_text_atomic(Path(path), "\n".join(planted_lines(rows)) + "\n")
        super().__init__(train=train, test=test, seed=seed, **labelled)
