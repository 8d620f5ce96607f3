"""Genomic interval files: BED and ENCODE narrowPeak (summit offset in column 10)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dnabert.errors import DnabertError


@dataclass(frozen=True)
class Peak:
    """A peak: 0-based half-open interval and its summit (absolute position)."""

    chrom: str
    start: int
    end: int
    summit: int
    line: int


def read_peaks(path: str | Path) -> list[Peak]:
    """Peaks from a BED/narrowPeak file; the summit is column 10 when present (>= 0), else the midpoint."""
    path = Path(path)
    if not path.is_file():
        raise DnabertError(f"{path}: peak file not found")
    peaks = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 3:
                raise DnabertError(f"{path} line {number}: {len(fields)} tab-separated columns; BED needs chrom, "
                                   "start and end separated by tabs")
            try:
                start, end = int(fields[1]), int(fields[2])
                offset = int(fields[9]) if len(fields) >= 10 else -1
            except ValueError:
                raise DnabertError(f"{path} line {number}: start, end and summit must be whole numbers") from None
            if start < 0 or end <= start:
                raise DnabertError(f"{path} line {number}: interval {start}-{end} is empty, reversed or negative")
            if offset >= end - start:
                raise DnabertError(f"{path} line {number}: summit offset {offset} lies outside the peak")
            summit = start + offset if offset >= 0 else (start + end) // 2
            peaks.append(Peak(fields[0], start, end, summit, number))
    if not peaks:
        raise DnabertError(f"{path}: no peaks")
    return peaks


@dataclass(frozen=True)
class Transcript:
    """A transcript's exons (0-based half-open, sorted by position) on one strand."""

    chrom: str
    strand: str
    exons: tuple[tuple[int, int], ...]
    name: str
    line: int
    """Line of the transcript's first exon in the GTF file."""

    @property
    def tss(self) -> int:
        """Position of the first transcribed base."""
        return self.exons[0][0] if self.strand == "+" else self.exons[-1][1] - 1


def _attribute(attributes: str, key: str) -> str | None:
    for item in attributes.split(";"):
        parts = item.strip().split(None, 1)
        if len(parts) == 2 and parts[0] == key:
            return parts[1].strip().strip('"')
    return None


def read_transcripts(path: str | Path) -> list[Transcript]:
    """Transcripts of a GTF file, assembled from its `exon` lines by transcript_id (1-based GTF -> 0-based)."""
    path = Path(path)
    if not path.is_file():
        raise DnabertError(f"{path}: annotation file not found")
    exons: dict[str, list] = {}
    where: dict[str, tuple[str, str, int]] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 9:
                raise DnabertError(f"{path} line {number}: {len(fields)} columns; GTF has 9 tab-separated columns")
            if fields[2] != "exon":
                continue
            try:
                start, end = int(fields[3]) - 1, int(fields[4])
            except ValueError:
                raise DnabertError(f"{path} line {number}: start and end must be whole numbers") from None
            if start < 0 or end <= start:
                raise DnabertError(f"{path} line {number}: exon {fields[3]}-{fields[4]} is empty, reversed or negative")
            if fields[6] not in "+-" or len(fields[6]) != 1:
                raise DnabertError(f"{path} line {number}: strand {fields[6]!r} must be + or -")
            transcript = _attribute(fields[8], "transcript_id")
            if transcript is None:
                raise DnabertError(f"{path} line {number}: exon without a transcript_id attribute")
            exons.setdefault(transcript, []).append((start, end))
            where.setdefault(transcript, (fields[0], fields[6], number))
    if not exons:
        raise DnabertError(f"{path}: no exon lines with transcript_id: is this a GTF file with transcripts?")
    return [Transcript(*where[t][:2], tuple(sorted(e)), t, where[t][2]) for t, e in exons.items()]
