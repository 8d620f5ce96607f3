"""Labelled sets built from a genome and annotations (DNABERT never released its own), as TSV splits.

Splits hold out whole chromosomes; everything is deterministic under a seed; the output directory is
written under a temporary name and renamed.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from dnabert.atomic import build_directory
from dnabert.data.windows import random_starts
from dnabert.errors import DnabertError
from dnabert.genome.annotations import read_peaks, read_transcripts
from dnabert.genome.shards import GenomeShards
from dnabert.tokenization import AMBIGUOUS, codes_to_text, reverse_complement

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


class LabelledWindows:
    """Collects labelled windows from a genome into chromosome-held-out splits, then writes them atomically."""

    def __init__(self, shards: GenomeShards, source: Path, val_chroms: list[str] | None,
                 test_chroms: list[str] | None, seed: int):
        self.shards, self.source = shards, source
        self.val, self.test = self.held_out(val_chroms), self.held_out(test_chroms)
        self.rng = np.random.default_rng(seed)
        self.rows: dict[str, list[str]] = {split: [] for split in SPLIT_FILES}

    def held_out(self, chroms: list[str] | None) -> set[int]:
        """Indices of the genome's contigs among the named chromosomes (names the genome lacks hold nothing out)."""
        return {index for index in map(self.shards.find_contig, chroms or []) if index is not None}

    def contig(self, chrom: str, line: int) -> int:
        """Index of a chromosome named in the annotation file (a user error if the genome lacks it)."""
        index = self.shards.find_contig(chrom)
        if index is None:
            raise DnabertError(f"{self.source} line {line}: chromosome '{chrom}' is not in the genome "
                               f"({self.shards.directory}); check the assembly and chromosome naming (chr1 vs 1)")
        return index

    def window(self, contig: int, start: int, length: int, strand: str = "+") -> str | None:
        """Sequence of [start, start+length) on a strand, or None when it leaves the contig or holds N."""
        if start < 0 or start + length > self.shards.lengths[contig]:
            return None
        codes = self.shards.fetch(contig, start, start + length)
        if (codes == AMBIGUOUS).any():
            return None
        return codes_to_text(codes if strand == "+" else reverse_complement(codes))

    def add(self, contig: int, sequence: str, label: str) -> None:
        """Put a labelled window in its contig's split."""
        split = "test" if contig in self.test else "val" if contig in self.val else "train"
        self.rows[split].append(f"{sequence}\t{label}")

    def write(self, out: Path) -> dict[str, int]:
        """Write train.tsv / dev.tsv / test.tsv (shuffled, header `sequence<TAB>label`); returns row counts."""
        if not self.rows["train"]:
            raise DnabertError(f"{self.source}: no training windows (all held out, near contig ends or over N)")

        def build(work: Path) -> None:
            work.mkdir(parents=True)
            for split, lines in self.rows.items():
                order = self.rng.permutation(len(lines))
                (work / SPLIT_FILES[split]).write_text("sequence\tlabel\n" + "".join(f"{lines[i]}\n" for i in order))

        build_directory(out, build)
        return {split: len(lines) for split, lines in self.rows.items()}


def build_tfbs(shards: GenomeShards, peaks_path: Path, out: Path, window: int = 101, negatives: str = "shuffle",
               val_chroms: list[str] | None = None, test_chroms: list[str] | None = None, seed: int = 0) -> dict:
    """Windows centred on peak summits (label 1) plus negatives (label 0): dinucleotide-shuffled copies of the
    positives, or flanking windows 3 windows downstream. Windows leaving a contig or holding N are skipped."""
    if negatives not in ("shuffle", "flank"):
        raise DnabertError(f"--negatives {negatives}: use shuffle or flank")
    if window < 1:
        raise DnabertError(f"--window {window}: must be positive")
    windows = LabelledWindows(shards, peaks_path, val_chroms, test_chroms, seed)
    skipped = 0
    for peak in read_peaks(peaks_path):
        contig = windows.contig(peak.chrom, peak.line)
        start = peak.summit - window // 2
        positive = windows.window(contig, start, window)
        if positive is None:
            skipped += 1
            continue
        negative = dinucleotide_shuffle(positive, windows.rng) if negatives == "shuffle" else \
            windows.window(contig, start + 3 * window, window)
        if negative is None:
            skipped += 1
            continue
        windows.add(contig, positive, "1")
        windows.add(contig, negative, "0")
    return {"skipped": skipped, **windows.write(out)}


def random_negatives(windows: LabelledWindows, count: int, length: int, avoid: dict[int, np.ndarray],
                     margin: int) -> None:
    """`count` random N-free windows (label 0), at least `margin` nt from every avoided position of their contig."""
    starts = random_starts(windows.shards.lengths, windows.shards.lengths, length, windows.rng)
    for _ in range(count * 50):
        if count == 0:
            return
        contig, start = next(starts)
        near = avoid.get(contig, np.zeros(0, dtype=np.int64))
        position = np.searchsorted(near, start - margin)
        if position < len(near) and near[position] < start + length + margin:
            continue
        sequence = windows.window(contig, start, length, "+" if windows.rng.random() < 0.5 else "-")
        if sequence is not None:
            windows.add(contig, sequence, "0")
            count -= 1


def build_promoter(shards: GenomeShards, gtf: Path, out: Path, upstream: int = 249, downstream: int = 50,
                   val_chroms: list[str] | None = None, test_chroms: list[str] | None = None, seed: int = 0) -> dict:
    """Promoter windows -upstream..+downstream around every distinct TSS (strand-aware, label 1), and as many
    random N-free windows at least 1 kb from any TSS (label 0)."""
    windows = LabelledWindows(shards, gtf, val_chroms, test_chroms, seed)
    length = upstream + downstream + 1
    tss: dict[tuple[str, str, int], int] = {}
    for transcript in read_transcripts(gtf):
        tss.setdefault((transcript.chrom, transcript.strand, transcript.tss), transcript.line)
    avoid: dict[int, list[int]] = {}
    positives = 0
    for (chrom, strand, position), line in tss.items():
        contig = windows.contig(chrom, line)
        avoid.setdefault(contig, []).append(position)
        start = position - upstream if strand == "+" else position - downstream
        sequence = windows.window(contig, start, length, strand)
        if sequence is not None:
            windows.add(contig, sequence, "1")
            positives += 1
    random_negatives(windows, positives, length, {c: np.sort(p) for c, p in avoid.items()}, 1000)
    return {"tss": len(tss), **windows.write(out)}


def build_splice(shards: GenomeShards, gtf: Path, out: Path, window: int = 400,
                 val_chroms: list[str] | None = None, test_chroms: list[str] | None = None, seed: int = 0) -> dict:
    """Windows centred on exon-intron boundaries of multi-exon transcripts, read on the transcript's strand:
    donors (label 1: exon end, GT..) and acceptors (label 2: exon start, ..AG), plus as many random windows at
    least `window` nt from any boundary (label 0)."""
    windows = LabelledWindows(shards, gtf, val_chroms, test_chroms, seed)
    sites: dict[tuple[str, str, int, str], int] = {}
    for transcript in read_transcripts(gtf):
        for (_, left_end), (right_start, _) in zip(transcript.exons, transcript.exons[1:]):
            intron_start, intron_end = left_end, right_start
            donor, acceptor = (intron_start, intron_end) if transcript.strand == "+" else (intron_end, intron_start)
            sites.setdefault((transcript.chrom, transcript.strand, donor, "1"), transcript.line)
            sites.setdefault((transcript.chrom, transcript.strand, acceptor, "2"), transcript.line)
    avoid: dict[int, list[int]] = {}
    counts = {"1": 0, "2": 0}
    for (chrom, strand, boundary, label), line in sites.items():
        contig = windows.contig(chrom, line)
        avoid.setdefault(contig, []).append(boundary)
        sequence = windows.window(contig, boundary - window // 2, window, strand)
        if sequence is not None:
            windows.add(contig, sequence, label)
            counts[label] += 1
    random_negatives(windows, max(counts.values()), window, {c: np.sort(p) for c, p in avoid.items()}, window)
    return {"donors": counts["1"], "acceptors": counts["2"], **windows.write(out)}
