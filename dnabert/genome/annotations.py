"""Genomic interval and annotation files, plain or gzip: BED, ENCODE narrowPeak (summit offset in column 10), GTF
and GFF3 exons."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from dnabert.errors import DnabertError
from dnabert.textfiles import text_lines


@dataclass(frozen=True)
class Interval:
    """One BED line: its 0-based half-open interval, all its columns, and its line number."""

    chrom: str
    start: int
    end: int
    fields: list[str]
    line: int


def read_intervals(path: Path, what: str) -> Iterator[Interval]:
    """The intervals of a BED-like file (plain or gzip; blank, `#`, track and browser lines skipped), each checked:
    three tab-separated columns or more, whole-number start and end, not empty, reversed or negative."""
    for number, line in text_lines(path, what):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise DnabertError(f"{path} line {number}: {len(fields)} tab-separated columns; BED needs chrom, "
                               "start and end separated by tabs")
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            raise DnabertError(f"{path} line {number}: start and end must be whole numbers") from None
        if start < 0 or end <= start:
            raise DnabertError(f"{path} line {number}: interval {start}-{end} is empty, reversed or negative")
        yield Interval(fields[0], start, end, fields, number)


@dataclass(frozen=True)
class Peak:
    """A peak: 0-based half-open interval and its summit (absolute position)."""

    chrom: str
    start: int
    end: int
    summit: int
    line: int


def read_peaks(path: str | Path) -> list[Peak]:
    """Peaks from a BED/narrowPeak file (plain or gzip); the summit is column 10 when present (>= 0), else the
    midpoint."""
    path = Path(path)
    peaks = []
    for interval in read_intervals(path, "peak file"):
        fields = interval.fields
        try:
            offset = int(fields[9]) if len(fields) >= 10 else -1
        except ValueError:
            raise DnabertError(f"{path} line {interval.line}: the summit offset (column 10) must be a whole "
                               "number") from None
        if offset >= interval.end - interval.start:
            raise DnabertError(f"{path} line {interval.line}: summit offset {offset} lies outside the peak")
        summit = interval.start + offset if offset >= 0 else (interval.start + interval.end) // 2
        peaks.append(Peak(interval.chrom, interval.start, interval.end, summit, interval.line))
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
    """A GTF attribute (`key "value";`)."""
    for item in attributes.split(";"):
        parts = item.strip().split(None, 1)
        if len(parts) == 2 and parts[0] == key:
            return parts[1].strip().strip('"')
    return None


def _transcript_of(attributes: str) -> str | None:
    """The transcript an exon line belongs to: GTF's `transcript_id "T";`, or GFF3's `Parent=T` (its first parent;
    Ensembl's `transcript:` prefix dropped, so GTF and GFF3 of one release name transcripts alike)."""
    if "=" not in attributes.split(";")[0]:
        return _attribute(attributes, "transcript_id")
    for item in attributes.split(";"):
        key, _, value = item.strip().partition("=")
        if key == "Parent" and value:
            return unquote(value.split(",")[0]).removeprefix("transcript:")
    return None


def read_transcripts(path: str | Path) -> list[Transcript]:
    """Transcripts of a GTF or GFF3 file (plain or gzip), assembled from its `exon` lines by transcript (GTF's
    transcript_id, GFF3's Parent); 1-based inclusive coordinates -> 0-based half-open."""
    path = Path(path)
    exons: dict[str, list] = {}
    where: dict[str, tuple[str, str, int]] = {}
    for number, line in text_lines(path, "annotation file"):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 9:
            raise DnabertError(f"{path} line {number}: {len(fields)} tab-separated columns; GTF and GFF3 lines have "
                               "9 (is it space-separated?)")
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
        transcript = _transcript_of(fields[8])
        if transcript is None:
            raise DnabertError(f"{path} line {number}: exon without a transcript (GTF: transcript_id; GFF3: Parent)")
        exons.setdefault(transcript, []).append((start, end))
        where.setdefault(transcript, (fields[0], fields[6], number))
    if not exons:
        raise DnabertError(f"{path}: no exon lines with a transcript: is this a GTF or GFF3 file with transcripts?")
    return [Transcript(*where[t][:2], tuple(sorted(e)), t, where[t][2]) for t, e in exons.items()]
