"""Cut the test fixtures of this folder from ../shared (run from the project root; the README says what each is).

    python tests/data/make_fixtures.py

The tests never read ../shared: they read what this script wrote, so a clone of the repository alone passes.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared"
JASPAR_IDS = ["MA0139.2", "MA0138.3", "MA0106.3", "MA0142.1", "MA0496.4", "MA0495.4", "MA0047.4", "MA0108.3",
              "MA0004.1", "MA0079.5", "MA0080.7", "MA0114.5"]


def fasta_records(path: Path) -> list[tuple[str, str]]:
    """(header, sequence) of a plain or gzipped FASTA file."""
    opener = gzip.open if path.suffix == ".gz" else open
    records: list[tuple[str, list[str]]] = []
    with opener(path, "rt") as handle:
        for line in handle:
            if line.startswith(">"):
                records.append((line[1:].strip(), []))
            else:
                records[-1][1].append(line.strip())
    return [(name, "".join(lines)) for name, lines in records]


def write_fasta(path: Path, records: list[tuple[str, str]]) -> None:
    """Gzipped FASTA at 60 nt per line, without a timestamp (the bytes depend on the records only)."""
    text = "".join(f">{name}\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
                   for name, seq in records)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
        handle.write(text.encode())


def tsv_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path), delimiter="\t"))


def write_tsv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def genomes() -> None:
    """The first 300 kb of E. coli K-12 and the first 200 kb of S. aureus N315 (one contig each, names kept)."""
    for source, out, length in (("ecoli_k12/ecoli_k12_mg1655.fa.gz", "ecoli_k12_300kb.fa.gz", 300_000),
                                ("staph_aureus_n315/staph_aureus_n315.fa.gz", "staph_aureus_200kb.fa.gz", 200_000)):
        name, sequence = fasta_records(SHARED / "data" / source)[0]
        write_fasta(HERE / out, [(name, sequence[:length])])
    name, sequence = fasta_records(SHARED / "data/small_genomes/human_chrM_rCRS_NC_012920.fa")[0]
    write_fasta(HERE / "human_chrM_10kb.fa.gz", [(name, sequence[:10_000])])


def labelled() -> None:
    """Every second row of the splice split (the same rows as every 10th, 18th, ... of the whole files), 400 Oct4/MafK
    training rows (the first and last 200), every fourth Oct4/MafK test row with its region, 200 rows of DNABERT's
    6-mer sample, and the last three lines of its mutation file."""
    for split in ("train", "test"):
        lines = (SHARED / f"data/splice_primate/{split}.tsv").read_text().splitlines()
        (HERE / f"splice_primate_{split}.tsv").write_text("\n".join([lines[0], *lines[1::2]]) + "\n")
    train = tsv_rows(SHARED / "data/tfbs_oct4_vs_mafk_hg19/train.tsv")
    write_tsv(HERE / "oct4_mafk_train_400.tsv", train[:200] + train[-200:])
    test = tsv_rows(SHARED / "data/tfbs_oct4_vs_mafk_hg19/test.tsv")
    regions = tsv_rows(SHARED / "data/tfbs_oct4_vs_mafk_hg19/test_regions.tsv")
    write_tsv(HERE / "oct4_mafk_test_50.tsv", [{"region_hg19": r["region_hg19"], **row}
                                               for row, r in list(zip(test, regions))[::4]])
    lines = (SHARED / "data/tfbs_dnabert_sample/dnabert_format_6mer.tsv").read_text().splitlines()
    (HERE / "dnabert_format_6mer_200.tsv").write_text("\n".join(lines[:201]) + "\n")
    lines = (SHARED / "data/tfbs_dnabert_sample/snp_example_mutations.txt").read_text().splitlines()
    (HERE / "snp_example_mutations.txt").write_text("\n".join(lines[-3:]))


def overlapping_promoters() -> None:
    """600 rows of the fly promoter training split in file order: 300 from groups of windows that share 50 nt on
    either strand (nearby TSSs; whole groups, up to 300 rows), and the first 300 rows that share 50 nt with no other
    row."""
    import sys

    sys.path.insert(0, str(HERE.parents[1]))
    from dnabert.data.overlap import overlap_groups

    rows = tsv_rows(SHARED / "data/promoter_dm3/core_vs_distal_train.tsv")
    groups = overlap_groups([row["sequence"] for row in rows], 50)
    sizes = np.bincount(groups)
    chosen, single = set(), []
    for index, group in enumerate(groups):
        if sizes[group] > 1 and group not in chosen and sum(sizes[g] for g in chosen) + sizes[group] <= 300:
            chosen.add(group)
        elif sizes[group] == 1 and len(single) < 300:
            single.append(index)
    keep = sorted({*single, *(i for i, group in enumerate(groups) if group in chosen)})
    write_tsv(HERE / "promoter_dm3_overlap_600.tsv", [rows[i] for i in keep])


def chr22_peaks() -> None:
    """The Oct4/MafK training peaks on chr22 with their regions, and the chr22 blocks cut to 1 kb around each peak
    (headers `chr22:start-end` as in the blocks file), so that a build-dataset test places them on chr22."""
    train = tsv_rows(SHARED / "data/tfbs_oct4_vs_mafk_hg19/train.tsv")
    regions = tsv_rows(SHARED / "data/tfbs_oct4_vs_mafk_hg19/train_regions.tsv")
    rows = [{"region_hg19": r["region_hg19"], **row} for row, r in zip(train, regions)
            if r["region_hg19"].startswith("chr22:")]
    write_tsv(HERE / "oct4_mafk_chr22_peaks.tsv", rows)
    peaks = [tuple(map(int, row["region_hg19"].split(":")[1].split("-"))) for row in rows]
    pieces = []
    for name, sequence in fasta_records(SHARED / "data/human_chr22_hg19/hg19_chr22_blocks.fa.gz"):
        start = int(name.split(":")[1].split("-")[0])
        end = start + len(sequence)
        for lo, hi in sorted((max(start, s - 1000), min(end, e + 1000)) for s, e in peaks if s < end and e > start):
            if pieces and pieces[-1][0] == start and lo <= pieces[-1][2]:
                pieces[-1][2] = max(pieces[-1][2], hi)
            else:
                pieces.append([start, lo, hi, sequence])
    write_fasta(HERE / "hg19_chr22_peak_blocks.fa.gz",
                [(f"chr22:{lo}-{hi}", sequence[lo - start : hi - start]) for start, lo, hi, sequence in pieces])


def jaspar() -> None:
    """A dozen JASPAR 2024 matrices of different families (the planted-motif ones first), in MEME format."""
    text = (SHARED / "data/motifs/jaspar2024_core_vertebrates.meme").read_text()
    head, *blocks = text.split("\nMOTIF ")
    chosen = {block.split()[0]: block for block in blocks}
    (HERE / "jaspar2024_subset.meme").write_text(head + "".join(f"\nMOTIF {chosen[i].rstrip()}\n" for i in JASPAR_IDS))


def original_configs() -> None:
    """DNABERT's original config.json, tokenizer_config.json and special_tokens_map.json for k = 3..6 (each a few
    keys) and the SHA-256 of each vocab.txt's lines joined by newlines (4^k + 5 tokens; the originals differ in whether
    the last line ends with a newline; the tests compare the vocabularies they write with it)."""
    configs = {}
    for k in (3, 4, 5, 6):
        folder = SHARED / f"reference/dnabert-original-config/bert-config-{k}"
        configs[k] = {name: json.loads((folder / f"{name}.json").read_text())
                      for name in ("config", "tokenizer_config", "special_tokens_map")}
        vocab = "\n".join((folder / "vocab.txt").read_text().splitlines())
        configs[k]["vocab_sha256"] = hashlib.sha256(vocab.encode()).hexdigest()
    (HERE / "dnabert_original_configs.json").write_text(json.dumps(configs, indent=1) + "\n")


if __name__ == "__main__":
    genomes()
    labelled()
    overlapping_promoters()
    chr22_peaks()
    jaspar()
    original_configs()
