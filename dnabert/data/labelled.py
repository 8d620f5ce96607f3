"""Labelled DNA sets for fine-tuning: DNABERT's k-mer TSV, plain TSV/CSV with a raw `sequence` column.

Every row becomes a raw nucleotide sequence plus label values; problems are `DnabertError`s naming the
file, line and what to do.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnabert.errors import DnabertError
from dnabert.genome.readers import Contig, genome_format, read_genome
from dnabert.textfiles import open_text, text_head
from dnabert.tokenization import codes_to_text, nucleotide_codes


@dataclass
class LabelledRows:
    """Sequences of one split with their raw label strings and where each came from."""

    path: Path
    sequences: list[str]
    labels: list[list[str]]
    lines: list[int]
    label_columns: list[str]
    kmer_size: int | None = None
    """k of the file's k-mer text when it was written in DNABERT's space-separated format."""
    names: list[str] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)
    """File of every row where rows come from many files (one folder per class); empty: all from `path`."""
    columns: list[str] = field(default_factory=list)
    """Header of a table."""

    @property
    def places(self) -> list[str]:
        """'FILE line N' of every row, for error messages."""
        sources = self.sources or [self.path] * len(self.lines)
        return [f"{source} line {line}" for source, line in zip(sources, self.lines)]


def sequence_from_kmers(text: str, where: str) -> tuple[str, int]:
    """DNABERT's space-separated overlapping k-mers back to nucleotides, checking that they overlap."""
    kmers = text.split()
    k = len(kmers[0])
    if any(len(kmer) != k for kmer in kmers):
        raise DnabertError(f"{where}: k-mers of different lengths; DNABERT format needs one k per file")
    sequence = "".join(kmer[0] for kmer in kmers[:-1]) + kmers[-1]
    if any(sequence[i : i + k] != kmer for i, kmer in enumerate(kmers)):
        raise DnabertError(f"{where}: the k-mers do not overlap by k-1 bases; is this DNABERT's k-mer format?")
    return sequence, k


def is_fasta(path: Path) -> bool:
    """Whether a file is FASTA (plain or gzip) or 2bit rather than a table."""
    kind = genome_format(path)
    if kind == "2bit":
        return True
    with (gzip.open(path, "rb") if kind == "gzip" else open(path, "rb")) as handle:
        try:
            return handle.read(1) == b">"
        except (OSError, EOFError):
            return False


def fasta_records(path: Path) -> list[tuple[Contig, str]]:
    """(record start, its sequence) of every record of a FASTA, FASTA.gz or 2bit file."""
    starts: list[Contig] = []
    chunks: list[list[np.ndarray]] = []
    for event in read_genome(path):
        if isinstance(event, Contig):
            starts.append(event)
            chunks.append([])
        else:
            chunks[-1].append(event)
    return [(start, codes_to_text(np.concatenate(parts))) for start, parts in zip(starts, chunks)]


def check_text_file(path: Path) -> None:
    """Refuse a table that is not text (plain or gzip): UTF-16, binary, saying what to do."""
    head = text_head(path)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DnabertError(f"{path}: UTF-16 text (Excel's 'Unicode text'); save it as UTF-8 tab-separated text")
    if b"\0" in head:
        line = head.count(b"\n", 0, head.index(b"\0")) + 1
        raise DnabertError(f"{path} line {line}: binary data; this is not a text TSV/CSV file")


def check_lengths(sequences: list[str], places: list[str], k: int) -> None:
    """Every sequence must hold at least one k-mer."""
    for sequence, place in zip(sequences, places):
        if len(sequence) < k:
            raise DnabertError(f"{place}: sequence of {len(sequence)} nt is shorter than k={k}; remove it")


def read_table(
    path: Path,
    sequence_column: str = "sequence",
    label_columns: list[str] | None = None,
    name_column: str = "name",
    require_labels: bool = True,
    check_sequences: bool = True,
) -> LabelledRows:
    """Read a labelled TSV/CSV (header line required; `.csv` is comma-separated, anything else tab-separated).

    The sequence is the `sequence_column` (else the first column); labels are `label_columns` (else `label`,
    else the second column). Sequences written as DNABERT's space-separated k-mers are turned back into
    nucleotides; `check_sequences=False` reads the column as plain text (a label table's names).
    """
    check_text_file(path)
    delimiter = "," if Path(path.name.removesuffix(".gz")).suffix.lower() == ".csv" else "\t"
    with open_text(path, "input file", newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise DnabertError(f"{path}: file is empty; expected a header line such as 'sequence{delimiter}label'")
        header = [column.strip() for column in header]
        sequence_index = header.index(sequence_column) if sequence_column in header else 0
        if label_columns:
            missing = [column for column in label_columns if column not in header]
            if missing:
                raise DnabertError(f"{path} line 1: no column {missing[0]!r} in the header {header}")
            label_indices = [header.index(column) for column in label_columns]
        elif "label" in header:
            label_indices = [header.index("label")]
        elif len(header) >= 2 and require_labels:
            label_indices = [1 if sequence_index == 0 else 0]
        elif not require_labels:
            label_indices = []
        else:
            raise DnabertError(f"{path} line 1: need a sequence column and a label column, found {header}")
        name_index = header.index(name_column) if name_column in header else None
        rows = LabelledRows(path, [], [], [], [header[i] for i in label_indices], columns=header)
        width = len(header)
        for line, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != width:
                raise DnabertError(f"{path} line {line}: {len(row)} columns where the header has {width}; "
                                   f"check the {'commas' if delimiter == ',' else 'tabs'}")
            text = row[sequence_index].strip()
            where = f"{path} line {line}"
            if not check_sequences:
                rows.sequences.append(text)
                rows.labels.append([row[i].strip() for i in label_indices])
                rows.lines.append(line)
                continue
            if " " in text:
                text, k = sequence_from_kmers(text, where)
                if rows.kmer_size not in (None, k):
                    raise DnabertError(f"{where}: {k}-mers where earlier lines hold {rows.kmer_size}-mers")
                rows.kmer_size = k
            if not text:
                raise DnabertError(f"{where}: empty sequence")
            nucleotide_codes(text, name=where)
            rows.sequences.append(text.upper())
            rows.labels.append([row[i].strip() for i in label_indices])
            rows.lines.append(line)
            rows.names.append(row[name_index] if name_index is not None else f"{path.name}:{line}")
    if not rows.sequences:
        raise DnabertError(f"{path}: no data rows after the header; add rows or leave this file out")
    return rows


def encode_labels(rows: LabelledRows, task_type: str, classes: list[str] | None) -> np.ndarray:
    """Label strings -> class indices (classification), 0/1 matrix (multilabel) or floats (regression)."""
    if task_type == "classification":
        if len(rows.label_columns) != 1:
            raise DnabertError(f"{rows.path}: classification takes one label column, got {rows.label_columns}")
        lookup = {name: i for i, name in enumerate(classes)}
        values = np.empty(len(rows.labels), dtype=np.int64)
        for i, (label,) in enumerate(rows.labels):
            if label not in lookup:
                raise DnabertError(f"{rows.places[i]}: label {label!r} is not one of {classes}; "
                                   "fix it, or list every class in data.classes")
            values[i] = lookup[label]
        return values
    values = np.empty((len(rows.labels), len(rows.label_columns)), dtype=np.float32)
    for i, labels in enumerate(rows.labels):
        for j, label in enumerate(labels):
            try:
                values[i, j] = float(label)
            except ValueError:
                kind = "0 or 1" if task_type == "multilabel" else "a number"
                raise DnabertError(
                    f"{rows.places[i]}: {rows.label_columns[j]}={label!r} is not {kind}"
                ) from None
            if task_type == "multilabel" and values[i, j] not in (0.0, 1.0):
                raise DnabertError(f"{rows.places[i]}: {rows.label_columns[j]}={label!r} is not 0 or 1")
            if not np.isfinite(values[i, j]):
                raise DnabertError(f"{rows.places[i]}: {rows.label_columns[j]}={label!r} is not finite")
    return values


def read_sequences(path: str | Path, sequence_column: str = "sequence",
                   min_length: int = 1) -> tuple[list[str], list[str]]:
    """(names, sequences) from a FASTA file or a TSV/CSV with a header (labels, if any, are ignored); a sequence
    shorter than `min_length` (the model's k) is an error naming its line."""
    path = Path(path)
    if not path.is_file():
        raise DnabertError(f"{path}: input file not found")
    if not is_fasta(path):
        rows = read_table(path, sequence_column=sequence_column, require_labels=False)
        check_lengths(rows.sequences, rows.places, min_length)
        return rows.names, rows.sequences
    records = fasta_records(path)
    sequences = [sequence for _, sequence in records]
    check_lengths(sequences, [record.where for record, _ in records], min_length)
    return [record.name for record, _ in records], sequences
