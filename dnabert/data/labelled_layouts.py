"""Reading a labelled set in any layout (`read_labelled`): a TSV/CSV table, FASTA (labels in the headers or in a
label table) or one folder per class (GenomicBenchmarks). Each reader returns the same `LabelledRows`."""

from __future__ import annotations

from pathlib import Path

from dnabert.data.labelled import LabelledRows, fasta_records, is_fasta, read_table
from dnabert.errors import DnabertError
from dnabert.tokenization import nucleotide_codes


def read_label_table(path: Path, label_columns: list[str] | None) -> tuple[dict[str, tuple[list[str], str]], list[str]]:
    """{name: (label values, place)} and the label column names of a table with a `name` column."""
    table = read_table(path, sequence_column="name", label_columns=label_columns, check_sequences=False)
    if "name" not in table.columns:
        raise DnabertError(f"{path} line 1: a label table needs a 'name' column (the FASTA record names) "
                           f"beside its label column(s); found {table.columns}")
    lookup: dict[str, tuple[list[str], str]] = {}
    for name, labels, place in zip(table.sequences, table.labels, table.places):
        if name in lookup:
            raise DnabertError(f"{place}: name {name!r} again (first at {lookup[name][1]}); names must be unique")
        lookup[name] = (labels, place)
    return lookup, table.label_columns


def read_labelled_fasta(path: Path, labels: Path | None, label_columns: list[str] | None) -> LabelledRows:
    """FASTA records with their labels: from `labels` (a table with `name` and label columns) when given, else
    from the header's last `|` field as the Nucleotide Transformer tasks write them (`>chr1:10-310|1`)."""
    lookup, columns = read_label_table(labels, label_columns) if labels else ({}, ["label"])
    rows = LabelledRows(path, [], [], [], columns)
    for record, sequence in fasta_records(path):
        if labels:
            if record.name not in lookup:
                raise DnabertError(f"{record.where}: record {record.name!r} has no row in the label table {labels}")
            values = lookup[record.name][0]
        else:
            _, bar, label = record.name.rpartition("|")
            if not bar or not label:
                raise DnabertError(f"{record.where}: header {record.name!r} carries no label; write it as "
                                   "'>name|label' or give a label table (data.labels=labels.tsv)")
            values = [label]
        rows.sequences.append(sequence)
        rows.labels.append(values)
        rows.lines.append(int(record.where.rsplit(" line ", 1)[-1]) if " line " in record.where else 0)
        rows.names.append(record.name)
    if not rows.sequences:
        raise DnabertError(f"{path}: no FASTA records")
    return rows


def read_class_folders(path: Path) -> LabelledRows:
    """One folder per class, one sequence per file (GenomicBenchmarks: `train/<class>/<id>.txt`)."""
    classes = sorted(child for child in path.iterdir() if child.is_dir() and not child.name.startswith("."))
    if not classes:
        raise DnabertError(f"{path}: a directory without class folders; a GenomicBenchmarks split holds one "
                           "folder per class with one sequence file each")
    rows = LabelledRows(path, [], [], [], ["label"])
    for folder in classes:
        files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
        if not files:
            raise DnabertError(f"{folder}: class folder without sequence files; remove it or add its sequences")
        for file in files:
            text = "".join(file.read_text(encoding="utf-8", errors="replace").split())
            where = f"{file} line 1"
            if not text:
                raise DnabertError(f"{where}: empty sequence file")
            nucleotide_codes(text, name=where)
            rows.sequences.append(text.upper())
            rows.labels.append([folder.name])
            rows.lines.append(1)
            rows.names.append(f"{folder.name}/{file.stem}")
            rows.sources.append(file)
    return rows


def read_labelled(
    path: str | Path,
    sequence_column: str = "sequence",
    label_columns: list[str] | None = None,
    name_column: str = "name",
    require_labels: bool = True,
    labels: str | Path | None = None,
) -> LabelledRows:
    """Read a labelled set: a TSV/CSV table, a FASTA file (labels in `labels`, a table with a `name` column, or
    in the headers' last `|` field), or a directory with one folder of sequence files per class."""
    path = Path(path)
    if path.is_dir():
        return read_class_folders(path)
    if not path.is_file():
        raise DnabertError(f"{path}: labelled file not found")
    if is_fasta(path):
        return read_labelled_fasta(path, Path(labels) if labels else None, label_columns)
    return read_table(path, sequence_column, label_columns, name_column, require_labels)
