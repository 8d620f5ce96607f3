"""Labelled sets built from a genome and annotations (DNABERT never released its own), as TSV splits.

Splits hold out whole chromosomes; everything is deterministic under a seed; the output directory is
written under a temporary name and renamed.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from dnabert.atomic import build_directory
from dnabert.errors import DnabertError
from dnabert.genome.annotations import read_peaks
from dnabert.genome.shards import GenomeShards
from dnabert.tokenization import AMBIGUOUS

LETTERS = np.frombuffer(b"ATCGN", dtype=np.uint8)
SPLIT_FILES = {"train": "train.tsv", "val": "dev.tsv", "test": "test.tsv"}


def dinucleotide_shuffle(sequence: str, rng: np.random.Generator) -> str:
    """A random sequence with exactly the same dinucleotide counts, first and last base (Altschul-Erickson)."""
    if len(sequence) <= 2:
        return sequence
    edges: dict[str, list[str]] = defaultdict(list)
    for a, b in zip(sequence, sequence[1:]):
        edges[a].append(b)
    last = sequence[-1]
    while True:
        # a random spanning tree of last edges into `last` makes the Eulerian walk always complete
        last_edge = {}
        for vertex in edges:
            if vertex != last:
                last_edge[vertex] = edges[vertex][int(rng.integers(len(edges[vertex])))]
        reached, valid = {last}, True
        for vertex in edges:
            seen, current = [], vertex
            while current not in reached and current not in seen:
                seen.append(current)
                current = last_edge[current]
            if current in seen:
                valid = False
                break
            reached.update(seen)
        if valid:
            break
    order = {}
    for vertex, targets in edges.items():
        rest = list(targets)
        if vertex in last_edge:
            rest.remove(last_edge[vertex])
        rest = [rest[i] for i in rng.permutation(len(rest))]
        order[vertex] = rest + ([last_edge[vertex]] if vertex in last_edge else [])
    walk, current = [sequence[0]], sequence[0]
    for _ in range(len(sequence) - 1):
        current = order[current].pop(0)
        walk.append(current)
    return "".join(walk)


def split_of(chrom: str, val_chroms: set[str], test_chroms: set[str]) -> str:
    """Which split a chromosome belongs to."""
    return "test" if chrom in test_chroms else "val" if chrom in val_chroms else "train"


def build_tfbs(shards: GenomeShards, peaks_path: Path, out: Path, window: int = 101, negatives: str = "shuffle",
               val_chroms: list[str] | None = None, test_chroms: list[str] | None = None, seed: int = 0) -> dict:
    """Windows centred on peak summits (label 1) plus negatives (label 0): dinucleotide-shuffled copies of the
    positives, or flanking windows 3 windows downstream. Windows leaving a contig or holding N are skipped."""
    if negatives not in ("shuffle", "flank"):
        raise DnabertError(f"--negatives {negatives}: use shuffle or flank")
    if window < 1:
        raise DnabertError(f"--window {window}: must be positive")
    rng = np.random.default_rng(seed)
    names = {contig.name: i for i, contig in enumerate(shards.contigs)}
    rows: dict[str, list[str]] = {split: [] for split in SPLIT_FILES}
    counts = {"peaks": 0, "skipped": 0}
    val, test = set(val_chroms or []), set(test_chroms or [])

    def window_at(contig: int, start: int) -> str | None:
        if start < 0 or start + window > shards.lengths[contig]:
            return None
        codes = shards.fetch(contig, start, start + window)
        return None if (codes == AMBIGUOUS).any() else LETTERS[codes].tobytes().decode()

    for peak in read_peaks(peaks_path):
        if peak.chrom not in names:
            raise DnabertError(f"{peaks_path} line {peak.line}: chromosome '{peak.chrom}' is not in the genome "
                               f"({shards.directory}); check the assembly and chromosome naming (chr1 vs 1)")
        counts["peaks"] += 1
        contig = names[peak.chrom]
        start = peak.summit - window // 2
        positive = window_at(contig, start)
        negative = dinucleotide_shuffle(positive, rng) if positive and negatives == "shuffle" else \
            window_at(contig, start + 3 * window) if positive else None
        if positive is None or negative is None:
            counts["skipped"] += 1
            continue
        split = split_of(peak.chrom, val, test)
        rows[split] += [f"{positive}\t1", f"{negative}\t0"]
    if not rows["train"]:
        raise DnabertError(f"{peaks_path}: no training windows (every peak was held out, near an edge or over N)")

    def write(work: Path) -> None:
        work.mkdir(parents=True)
        for split, lines in rows.items():
            order = rng.permutation(len(lines))
            (work / SPLIT_FILES[split]).write_text("sequence\tlabel\n" + "".join(f"{lines[i]}\n" for i in order))

    build_directory(out, write)
    return {**counts, **{split: len(lines) for split, lines in rows.items()}}
