"""Write nucleotide scores as a directory: .npy matrix, tidy TSV, bedGraph, predictions and plots, streamed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnabert.atomic import open_atomic, open_npy_atomic, write_text_atomic
from dnabert.errors import DnabertError, warn
from dnabert.interpret import plots
from dnabert.models.inference import prediction_lines

INTERVAL = re.compile(r"^(?:.*::)?(?P<chrom>[^\s:]+):(?P<start>[\d,]+)-(?P<end>[\d,]+)(?:\((?P<strand>[+-])\))?$")


@dataclass
class Interval:
    """Where a sequence lies in its genome: 0-based start, and the strand it was read on."""

    chrom: str
    start: int
    reverse: bool


def _interval(name: str, length: int) -> Interval | str:
    """Where a sequence named `name` (of `length` nt) lies, or why its name does not say."""
    match = INTERVAL.match(name)
    if match is None:
        return "not CHROM:START-END"
    start, end = (int(match[key].replace(",", "")) for key in ("start", "end"))
    if end - start == length:
        return Interval(match["chrom"], start, match["strand"] == "-")
    if end - start + 1 == length and start >= 1:
        return Interval(match["chrom"], start - 1, match["strand"] == "-")
    return f"an interval of {end - start:,} nt for a sequence of {length:,} nt"


def genomic_intervals(names: list[str], sequences: list[str]) -> list[Interval] | None:
    """Each name as `CHROM:START-END`, optionally `(+)`/`(-)` and a `NAME::` prefix (bedtools getfasta), when
    every name is one and matches its sequence's length: 0-based half-open (END - START = length) or 1-based
    inclusive (END - START + 1 = length). None otherwise, said in one warning line when only some names are."""
    intervals = [_interval(name, len(sequence)) for name, sequence in zip(names, sequences)]
    problems = [(name, problem) for name, problem in zip(names, intervals) if isinstance(problem, str)]
    if not problems:
        return intervals
    if len(problems) < len(names):
        name, problem = problems[0]
        warn(f"no scores.bedGraph: {len(problems):,} of {len(names):,} sequence names are not their genomic "
             f"interval, the first {name!r} ({problem}); name every sequence CHROM:START-END (0-based, half-open) "
             "for a bedGraph")
    return None


def sequence_indexes(text: str | None, option: str, count: int, default: int = 0) -> list[int]:
    """`0,5,7` -> [0, 5, 7] (0-based rows of the input); None -> the first `default` rows."""
    if text is None:
        return list(range(min(default, count)))
    try:
        indexes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DnabertError(f"{option} {text}: give 0-based sequence numbers separated by commas, e.g. 0,3,7") from None
    wrong = [i for i in indexes if not 0 <= i < count]
    if wrong:
        raise DnabertError(f"{option} {text}: the input has {count} sequences (numbered 0 to {count - 1})")
    return indexes


def _tidy_lines(name: str, sequence: str, scores: np.ndarray) -> str:
    positions = np.flatnonzero(np.isfinite(scores))
    return "".join(f"{name}\t{p + 1}\t{sequence[p]}\t{v:.6g}\n" for p, v in zip(positions.tolist(),
                                                                               scores[positions].tolist()))


def _bedgraph_lines(interval: Interval, scores: np.ndarray) -> str:
    positions = np.flatnonzero(np.isfinite(scores))
    genomic = interval.start + (len(scores) - 1 - positions if interval.reverse else positions)
    order = np.argsort(genomic)
    return "".join(f"{interval.chrom}\t{g}\t{g + 1}\t{v:.6g}\n" for g, v in zip(genomic[order].tolist(),
                                                                                   scores[positions][order].tolist()))


def write_scores(out: Path, model, names: list[str], sequences: list[str],
                 batches: Iterable[tuple[list[np.ndarray], np.ndarray]], label: str) -> list[Path]:
    """Stream per-batch scores into `out/`: nucleotide_scores.npy (N x longest, NaN past each sequence's end),
    scores.tsv (name, 1-based position, nucleotide, score), scores.bedGraph (when names are genomic intervals)
    and predictions.tsv. Returns the files written."""
    if not sequences:
        raise DnabertError("the input holds no sequences")
    out.mkdir(parents=True, exist_ok=True)
    intervals = genomic_intervals(names, sequences)
    written = [out / "nucleotide_scores.npy", out / "scores.tsv", out / "predictions.tsv"]
    values = []
    with ExitStack() as files:
        matrix = files.enter_context(open_npy_atomic(written[0], (len(sequences), max(map(len, sequences)))))
        tidy = files.enter_context(open_atomic(written[1]))
        tidy.write("name\tposition\tnucleotide\tscore\n")
        bedgraph = None
        if intervals is not None:
            written.append(out / "scores.bedGraph")
            bedgraph = files.enter_context(open_atomic(written[-1]))
            bedgraph.write(f'track type=bedGraph name="dnabert {label}"\n')
        row = 0
        for scores, outputs in batches:
            for array in scores:
                matrix[row, : len(array)] = array
                matrix[row, len(array) :] = np.nan
                tidy.write(_tidy_lines(names[row], sequences[row], array))
                if bedgraph is not None:
                    bedgraph.write(_bedgraph_lines(intervals[row], array))
                row += 1
            values.append(outputs)
    write_text_atomic(written[2], "\n".join(prediction_lines(model, names, np.concatenate(values))) + "\n")
    return written


def plot_scores(out: Path, names: list[str], sequences: list[str], tracks: list[int], align_at: int, label: str,
                signed: bool) -> list[Path]:
    """Tracks for the chosen sequences and the aligned summary heatmap, from `out/nucleotide_scores.npy`."""
    scores = np.load(out / "nucleotide_scores.npy", mmap_mode="r")
    directory = out / "plots"
    directory.mkdir(exist_ok=True)
    written = plots.plot_summary(directory / "summary", scores, align_at, label, signed)
    for index in tracks:
        written += plots.plot_track(directory / f"track_{index}", names[index], sequences[index],
                                    scores[index, : len(sequences[index])], label)
    return written


def write_attention_maps(out: Path, names: list[str], maps: Iterator[tuple[int, np.ndarray]]) -> list[Path]:
    """`out/attention_maps/<index>.npy` (layers x heads x tokens x tokens) and a per-head heatmap grid per sequence."""
    directory = out / "attention_maps"
    written = []
    for index, array in maps:
        directory.mkdir(exist_ok=True)
        with open_atomic(directory / f"{index}.npy", "wb") as handle:
            np.save(handle, array)
        written.append(directory / f"{index}.npy")
        written += plots.plot_attention_maps(out / "plots" / f"attention_maps_{index}", names[index], array)
    return written
