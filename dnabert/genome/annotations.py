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
                raise DnabertError(f"{path} line {number}: {len(fields)} columns; BED needs chrom, start, end")
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
