"""`dnabert build-dataset tfbs`: real ChIP-seq peaks on real human sequence -> labelled TSV splits."""

from __future__ import annotations

import collections
import csv
import gzip

import numpy as np
import pytest

from dnabert.cli import main
from dnabert.data.build import dinucleotide_shuffle
from tests.conftest import ROOT, assert_user_error, data_file, dnabert_cli, genome_text


def dinucleotides(sequence: str) -> collections.Counter:
    return collections.Counter(sequence[i : i + 2] for i in range(len(sequence) - 1))


def test_dinucleotide_shuffle_keeps_dinucleotides_and_ends():
    rng = np.random.default_rng(0)
    sequence = "ACGTTGCAAGGCTTAACGATCGATCGGCTAGGGATTTACGCA" * 3
    shuffled = {dinucleotide_shuffle(sequence, rng) for _ in range(20)}
    assert len(shuffled) > 10
    for result in shuffled:
        assert dinucleotides(result) == dinucleotides(sequence)
        assert (result[0], result[-1]) == (sequence[0], sequence[-1])


@pytest.fixture(scope="module")
def human(tmp_path_factory):
    """hg19 chr22 as one contig (the chr22 blocks around the Oct4/MafK training peaks on chr22, N between them)
    plus the first 10 kb of chrM, and a narrowPeak file of those peaks (summit at the centre) plus three on chrM."""
    directory = tmp_path_factory.mktemp("human")
    blocks = {}
    with gzip.open(data_file("hg19_chr22_peak_blocks.fa.gz"), "rt") as handle:
        name = None
        for line in handle:
            if line.startswith(">"):
                name = line[1:].strip()
                blocks[name] = []
            else:
                blocks[name].append(line.strip())
    chromosome = np.full(51_304_566, ord("N"), dtype=np.uint8)
    for name, lines in blocks.items():
        start = int(name.split(":")[1].split("-")[0])
        sequence = "".join(lines).encode()
        chromosome[start : start + len(sequence)] = np.frombuffer(sequence, dtype=np.uint8)
    chrm = genome_text(data_file("human_chrM_10kb.fa.gz"))
    (directory / "genome.fa").write_bytes(b">chr22\n" + chromosome.tobytes() + b"\n>chrM\n" + chrm.encode() + b"\n")
    peaks, centres = [], []
    for row in csv.DictReader(open(data_file("oct4_mafk_chr22_peaks.tsv")), delimiter="\t"):
        chrom, span = row["region_hg19"].split(":")
        if chrom == "chr22":
            start, end = map(int, span.split("-"))
            peaks.append(f"chr22\t{start}\t{end}\tpeak\t0\t.\t1\t1\t1\t{(end - start) // 2}")
            if ord("N") not in chromosome[start + 50 : start + 151]:  # the blocks cover 42 % of chr22
                centres.append(row["sequence"][50:151])
    peaks += [f"chrM\t{s}\t{s + 200}\tm\t0\t.\t1\t1\t1\t100" for s in (1000, 5000, 9000)]
    (directory / "peaks.narrowPeak").write_text("\n".join(peaks) + "\n")
    return directory, centres


def build(directory, out, *extra):
    return dnabert_cli(["build-dataset", "tfbs", "--genome", str(directory / "genome.fa"), "--peaks",
                        str(directory / "peaks.narrowPeak"), "--out", str(out), "--test-chroms", "chrM",
                        "--cache-dir", str(directory / "cache"), "--quiet", *extra], ROOT)


def rows(path) -> list[tuple[str, str]]:
    return [(r["sequence"], r["label"]) for r in csv.DictReader(open(path), delimiter="\t")]


def test_windows_on_real_peaks_with_shuffled_negatives_and_held_out_chromosome(human, tmp_path):
    directory, centres = human
    result = build(directory, tmp_path / "tfbs")
    assert result.returncode == 0, result.stderr
    train, dev, test = (rows(tmp_path / "tfbs" / name) for name in ("train.tsv", "dev.tsv", "test.tsv"))
    positives = sorted(s for s, label in train if label == "1")
    assert positives == sorted(c.upper() for c in centres) and len(positives) > 50
    negatives = [s for s, label in train if label == "0"]
    assert sorted(map(lambda s: sorted(dinucleotides(s).items()), negatives)) == sorted(
        map(lambda s: sorted(dinucleotides(s).items()), positives))
    assert dev == [] and len(test) == 6 and {label for _, label in test} == {"0", "1"}
    again = build(directory, tmp_path / "again")
    assert again.returncode == 0
    assert (tmp_path / "again" / "train.tsv").read_text() == (tmp_path / "tfbs" / "train.tsv").read_text()


def test_flanking_negatives(human, tmp_path):
    directory, _ = human
    assert build(directory, tmp_path / "flank", "--negatives", "flank").returncode == 0
    train = rows(tmp_path / "flank" / "train.tsv")
    assert sum(label == "0" for _, label in train) == sum(label == "1" for _, label in train) > 0


@pytest.mark.parametrize("line,fragments", [
    ("chrZ\t100\t300\tp\t0\t.\t1\t1\t1\t100", ["line 2", "chromosome 'chrZ' is not in the genome"]),
    ("chr22\t300\t100\tp", ["line 2", "interval 300-100 is empty, reversed or negative"]),
    ("chr22\tabc\t100", ["line 2", "whole numbers"]),
])
def test_bad_peaks_are_one_clear_line(human, tmp_path, line, fragments):
    directory, _ = human
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "genome.fa").symlink_to(directory / "genome.fa")
    (bad / "peaks.narrowPeak").write_text("chr22\t20000000\t20000200\tp\t0\t.\t1\t1\t1\t100\n" + line + "\n")
    assert_user_error(build(bad, tmp_path / "out"), "peaks.narrowPeak", *fragments)
    assert not (tmp_path / "out").exists()


def test_peaks_and_held_out_chromosomes_match_contigs_with_or_without_chr(tmp_path):
    from dnabert.data.build import build_tfbs
    from dnabert.genome.shards import GenomeShards, prepare_genome
    from tests.test_genome import write_fasta

    rng = np.random.default_rng(0)
    records = {name: "".join(rng.choice(list("ACGT"), 5000)) for name in ("chr1", "2")}
    shards = GenomeShards(prepare_genome(write_fasta(tmp_path / "g.fa", records, 60), tmp_path / "shards", False))
    (tmp_path / "peaks.bed").write_text("1\t1000\t1200\nchr2\t2000\t2200\n")
    counts = build_tfbs(shards, tmp_path / "peaks.bed", tmp_path / "out", test_chroms=["chr2"])
    assert counts == {"skipped": 0, "train": 2, "val": 0, "test": 2}
    assert {s for s, label in rows(tmp_path / "out" / "train.tsv") if label == "1"} == {records["chr1"][1050:1151]}
    assert {s for s, label in rows(tmp_path / "out" / "test.tsv") if label == "1"} == {records["2"][2050:2151]}


@pytest.fixture(scope="module")
def ecoli_annotated(tmp_path_factory):
    """E. coli K-12 with a GTF of two multi-exon transcripts, one per strand (coordinates chosen by hand)."""
    directory = tmp_path_factory.mktemp("ecoli_gtf")
    genome = data_file("ecoli_k12_300kb.fa.gz")
    sequence = genome_text(genome)
    exons = [("+", "t1", 10001, 10200), ("+", "t1", 10501, 10800), ("+", "t1", 11001, 11300),
             ("-", "t2", 20001, 20300), ("-", "t2", 20601, 20900)]
    lines = ['K-12-MG1655\ttest\tgene\t10001\t11300\t.\t+\t.\tgene_id "g1";']
    lines += [f'K-12-MG1655\ttest\texon\t{s}\t{e}\t.\t{strand}\t.\tgene_id "g"; transcript_id "{t}";'
              for strand, t, s, e in exons]
    (directory / "genes.gtf").write_text("\n".join(lines) + "\n")
    return directory, genome, sequence


def reverse_complement(sequence: str) -> str:
    """Written out here, independently of the package's own."""
    return sequence.translate(str.maketrans("ACGT", "TGCA"))[::-1]


def test_promoter_windows_are_strand_aware(ecoli_annotated, tmp_path):
    directory, genome, sequence = ecoli_annotated
    result = dnabert_cli(["build-dataset", "promoter", "--genome", str(genome), "--annotation",
                          str(directory / "genes.gtf"), "--out", str(tmp_path / "prom"), "--cache-dir",
                          str(tmp_path / "cache"), "--quiet"], ROOT)
    assert result.returncode == 0, result.stderr
    train = rows(tmp_path / "prom" / "train.tsv")
    positives = {s for s, label in train if label == "1"}
    assert positives == {sequence[9751:10051], reverse_complement(sequence[20849:21149])}
    negatives = [s for s, label in train if label == "0"]
    assert len(negatives) == 2 and all(len(s) == 300 for s in negatives)


def test_splice_windows_are_centred_on_boundaries_on_the_transcript_strand(ecoli_annotated, tmp_path):
    directory, genome, sequence = ecoli_annotated
    result = dnabert_cli(["build-dataset", "splice", "--genome", str(genome), "--annotation",
                          str(directory / "genes.gtf"), "--out", str(tmp_path / "splice"), "--window", "60",
                          "--cache-dir", str(tmp_path / "cache"), "--quiet"], ROOT)
    assert result.returncode == 0, result.stderr
    train = rows(tmp_path / "splice" / "train.tsv")
    by_label = {label: {s for s, lab in train if lab == label} for label in "012"}
    assert by_label["1"] == {sequence[10170:10230], sequence[10770:10830],
                              reverse_complement(sequence[20570:20630])}
    assert by_label["2"] == {sequence[10470:10530], sequence[10970:11030],
                              reverse_complement(sequence[20270:20330])}
    assert len([s for s, lab in train if lab == "0"]) == 3


@pytest.mark.parametrize("gtf,fragments", [
    ('chr1\tx\tgene\t1\t100\t.\t+\t.\tgene_id "g";\n', ["no exon lines with a transcript"]),
    ('chrQ\tx\texon\t1\t100\t.\t+\t.\ttranscript_id "t";\n', ["line 1", "chromosome 'chrQ' is not in the genome"]),
    ('K-12-MG1655\tx\texon\t100\t1\t.\t+\t.\ttranscript_id "t";\n', ["line 1", "empty, reversed or negative"]),
])
def test_bad_annotation_is_one_clear_line(ecoli_annotated, tmp_path, gtf, fragments):
    _, genome, _ = ecoli_annotated
    (tmp_path / "bad.gtf").write_text(gtf)
    result = dnabert_cli(["build-dataset", "promoter", "--genome", str(genome), "--annotation",
                          str(tmp_path / "bad.gtf"), "--out", str(tmp_path / "out"), "--cache-dir",
                          str(tmp_path / "cache"), "--quiet"], ROOT)
    assert_user_error(result, "bad.gtf", *fragments)
    assert not (tmp_path / "out").exists()


def gff3_of(gtf: str) -> str:
    """The GFF3 Ensembl would ship for the same genes: ID/Parent attributes, `transcript:` prefixes, mRNA lines."""
    lines, transcripts = ["##gff-version 3"], set()
    for number, line in enumerate(gtf.splitlines()):
        fields = line.split("\t")
        transcript = fields[8].split('transcript_id "')[-1].rstrip('";') if "transcript_id" in fields[8] else None
        if fields[2] == "exon" and transcript not in transcripts:
            transcripts.add(transcript)
            lines.append("\t".join([*fields[:2], "mRNA", *fields[3:8], f"ID=transcript:{transcript};Parent=gene:g"]))
        kind = f"ID=exon{number};Parent=transcript:{transcript}" if fields[2] == "exon" else "ID=gene:g1"
        lines.append("\t".join([*fields[:8], kind]))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["promoter", "splice"])
def test_gzip_and_gff3_annotations_build_what_plain_gtf_builds(ecoli_annotated, tmp_path, kind):
    directory, genome, _ = ecoli_annotated
    gtf = (directory / "genes.gtf").read_text()
    files = {"genes.gtf": gtf.encode(), "genes.gtf.gz": gzip.compress(gtf.encode()),
             "genes.gff3": gff3_of(gtf).encode(), "genes.gff3.gz": gzip.compress(gff3_of(gtf).encode())}
    built = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        main(["build-dataset", kind, "--genome", str(genome), "--annotation", str(tmp_path / name), "--out",
              str(tmp_path / f"{name}.out"), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
        built[name] = [(tmp_path / f"{name}.out" / split).read_text() for split in ("train.tsv", "dev.tsv", "test.tsv")]
    assert len(built["genes.gtf"][0].splitlines()) > 3
    assert all(splits == built["genes.gtf"] for splits in built.values())


def test_gzip_peaks_build_what_plain_narrowpeak_builds(human, tmp_path):
    directory, _ = human
    (tmp_path / "peaks.narrowPeak.gz").write_bytes(gzip.compress((directory / "peaks.narrowPeak").read_bytes()))
    for name, peaks in (("plain", directory / "peaks.narrowPeak"), ("gzip", tmp_path / "peaks.narrowPeak.gz")):
        main(["build-dataset", "tfbs", "--genome", str(directory / "genome.fa"), "--peaks", str(peaks), "--out",
              str(tmp_path / name), "--test-chroms", "chrM", "--cache-dir", str(directory / "cache"), "--quiet"])
    assert (tmp_path / "gzip" / "train.tsv").read_text() == (tmp_path / "plain" / "train.tsv").read_text()


def test_prediction_inputs_read_from_fasta_and_tsv(tmp_path):
    from dnabert.data.labelled import read_sequences

    (tmp_path / "in.fa").write_text(">a first\nACGTN\nacgt\n>b\nTTTT\n")
    assert read_sequences(tmp_path / "in.fa") == (["a", "b"], ["ACGTNACGT", "TTTT"])
    (tmp_path / "in.tsv").write_text("name\tsequence\nx\tACGTAC\ny\tGGGCCC\n")
    assert read_sequences(tmp_path / "in.tsv") == (["x", "y"], ["ACGTAC", "GGGCCC"])
