"""`dnabert prepare-genome`: shards from FASTA, FASTA.gz and 2bit; idempotent, atomic, clear errors."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dnabert.errors import DnabertError
from dnabert.genome import shards as shards_module
from dnabert.genome.shards import GenomeShards, open_genome, prepare_genome
from dnabert.tokenization import CODE_TABLE
from tests.conftest import ROOT, assert_user_error, data_file, dnabert_cli, genome_text

RECORDS = {"chrA": "ACGTNNNNacgtTTGA" * 20 + "A", "chrB desc": "GGGCCCAAATTTN", "chrC": "ACGTRYACG" * 3}


def write_fasta(path, records, width=7, newline="\n"):
    text = "".join(f">{name}{newline}" + newline.join(seq[i : i + width] for i in range(0, len(seq), width)) + newline
                   for name, seq in records.items())
    path.write_bytes(text.encode())
    return path


def write_2bit(path, records):
    """Minimal UCSC 2bit writer (T,C,A,G = 0..3; N blocks; lower case as mask blocks)."""
    order = {"T": 0, "C": 1, "A": 2, "G": 3}
    header = struct.pack("<IIII", 0x1A412743, 0, len(records), 0)
    index_size = sum(1 + len(n.split()[0]) + 4 for n in records)
    blobs, offset = [], len(header) + index_size
    index = b""
    for name, seq in records.items():
        upper = seq.upper()
        n_runs = [(m.start(), m.end() - m.start()) for m in __import__("re").finditer(r"[^ACGT]+", upper)]
        digits = [order.get(c, 0) for c in upper] + [0] * (-len(upper) % 4)
        packed = bytes(sum(d << (6 - 2 * j) for j, d in enumerate(digits[i : i + 4])) for i in range(0, len(digits), 4))
        blob = struct.pack("<II", len(seq), len(n_runs))
        blob += b"".join(struct.pack("<I", s) for s, _ in n_runs) + b"".join(struct.pack("<I", n) for _, n in n_runs)
        blob += struct.pack("<II", 0, 0) + packed
        short = name.split()[0]
        index += struct.pack("<B", len(short)) + short.encode() + struct.pack("<I", offset)
        blobs.append(blob)
        offset += len(blob)
    path.write_bytes(header + index + b"".join(blobs))
    return path


def contents(directory) -> dict[str, str]:
    genome = GenomeShards(directory)
    letters = np.array(list("ATCGN"))
    return {c.name: "".join(letters[np.asarray(genome.codes(i))]) for i, c in enumerate(genome.contigs)}


def expected_contents() -> dict[str, str]:
    letters = np.array(list("ATCGN"))
    return {name.split()[0]: "".join(letters[CODE_TABLE[np.frombuffer(seq.encode(), np.uint8)]])
            for name, seq in RECORDS.items()}


@pytest.mark.parametrize("kind", ["fasta", "crlf", "gzip", "2bit"])
def test_formats_give_identical_shards(tmp_path, kind):
    if kind == "2bit":
        source = write_2bit(tmp_path / "g.2bit", RECORDS)
    else:
        source = write_fasta(tmp_path / "g.fa", RECORDS, newline="\r\n" if kind == "crlf" else "\n")
        if kind == "gzip":
            source = tmp_path / "g.fa.gz"
            source.write_bytes(gzip.compress((tmp_path / "g.fa").read_bytes()))
    out = prepare_genome(source, tmp_path / "shards", progress=False)
    assert contents(out) == expected_contents()
    genome = GenomeShards(out)
    assert genome.contigs[0].ambiguous_runs[:2] == [[4, 8], [20, 24]]
    assert genome.contigs[2].ambiguous_runs[0] == [4, 6]
    assert genome.metadata["contig_lengths"] == {"chrA": 321, "chrB": 13, "chrC": 27}


def test_real_genome_round_trip_and_idempotent_rerun(tmp_path):
    source = data_file("ecoli_k12_300kb.fa.gz")
    result = dnabert_cli(["prepare-genome", str(source), "--out", str(tmp_path / "ecoli")], ROOT)
    assert result.returncode == 0, result.stderr
    assert "300,000 nt" in result.stdout
    genome = genome_text(source)
    assert contents(tmp_path / "ecoli") == {"K-12-MG1655": genome.upper()}
    assert (tmp_path / "ecoli" / "chrom.sizes").read_text() == f"K-12-MG1655\t{len(genome)}\n"
    stamp = (tmp_path / "ecoli" / "metadata.json").stat().st_mtime_ns
    assert dnabert_cli(["prepare-genome", str(source), "--out", str(tmp_path / "ecoli")], ROOT).returncode == 0
    assert (tmp_path / "ecoli" / "metadata.json").stat().st_mtime_ns == stamp
    metadata = json.loads((tmp_path / "ecoli" / "metadata.json").read_text())
    assert metadata["source_sha256"] == shards_module.file_sha256(source)


def test_interrupted_run_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    source = write_fasta(tmp_path / "g.fa", RECORDS)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(shards_module, "write_json_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_genome(source, tmp_path / "shards", progress=False)
    assert not (tmp_path / "shards").exists()
    monkeypatch.undo()
    with pytest.raises(DnabertError, match="not a complete genome shard directory"):
        GenomeShards(tmp_path / "shards")
    prepare_genome(source, tmp_path / "shards", progress=False)
    assert contents(tmp_path / "shards") == expected_contents()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".shards.lock"]  # no partial left


def test_two_concurrent_builds_of_one_genome_share_the_finished_shards(tmp_path):
    """Two processes (two jobs of a sweep) prepare one genome into one cache at once: the second waits for the first's
    build and reuses it; neither deletes the other's partial directory."""
    source = write_fasta(tmp_path / "g.fa", {"chrA": "ACGT" * 200_000, "chrB": "TTGCA" * 100_000})
    command = [sys.executable, "-c", "import sys; from dnabert.genome.shards import open_genome; "
               "print(open_genome(sys.argv[1], sys.argv[2], progress=False).directory)", str(source),
               str(tmp_path / "cache")]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err for _, err in outputs]
    directories = {out.strip() for out, _ in outputs}
    assert len(directories) == 1
    shards = Path(directories.pop())
    assert contents(shards) == {"chrA": "ACGT" * 200_000, "chrB": "TTGCA" * 100_000}
    stamps = {path.name: path.stat().st_mtime_ns for path in shards.rglob("*")}
    assert open_genome(source, tmp_path / "cache", progress=False).directory == shards  # reused, not rebuilt
    assert {path.name: path.stat().st_mtime_ns for path in shards.rglob("*")} == stamps
    assert [p.name for p in (tmp_path / "cache").iterdir() if ".partial-" in p.name or ".old-" in p.name] == []


def test_a_crashed_build_of_this_host_is_cleared_and_a_running_one_kept(tmp_path):
    """Partial directories: one left by a process of this host that no longer runs is removed by the next build;
    one of a running process (or of another host) is someone's build in progress and stays."""
    source = write_fasta(tmp_path / "g.fa", RECORDS)
    host = socket.gethostname()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    crashed = tmp_path / f".shards.partial-{host}-{finished.stdout.strip()}"
    elsewhere = tmp_path / ".shards.partial-another-host-1"
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    running = tmp_path / f".shards.partial-{host}-{alive.pid}"
    try:
        for partial in (crashed, running, elsewhere):
            (partial / "contigs").mkdir(parents=True)
        prepare_genome(source, tmp_path / "shards", progress=False)
        assert not crashed.exists() and running.exists() and elsewhere.exists()
    finally:
        alive.kill()
    assert contents(tmp_path / "shards") == expected_contents()


def test_changed_source_rebuilds(tmp_path):
    source = write_fasta(tmp_path / "g.fa", RECORDS)
    prepare_genome(source, tmp_path / "shards", progress=False)
    write_fasta(source, {"only": "ACGTACGT"})
    prepare_genome(source, tmp_path / "shards", progress=False)
    assert contents(tmp_path / "shards") == {"only": "ACGTACGT"}


def test_contig_names_resolve_with_or_without_chr_and_exact_names_win(tmp_path):
    source = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT", "2": "ACGT", "chr2": "ACGT", "MT": "ACGT"})
    genome = GenomeShards(prepare_genome(source, tmp_path / "shards", progress=False))
    assert [genome.find_contig(name) for name in ("chr1", "1", "2", "chr2", "chrMT", "chrM", "X")] == \
        [0, 0, 1, 2, 3, None, None]
    assert genome.index_of("1") == 0
    with pytest.raises(DnabertError, match="no contig named 'chrM'"):
        genome.index_of("chrM")


BAD_INPUTS = {
    "empty": (b"", "file is empty"),
    "no_header": (b"ACGTACGT\nACGT\n", "line 1: sequence before any FASTA header"),
    "binary": (b">x\nACGT\x00\x01\x02\n", "line 2: binary data"),
    "not_dna": (b">chr1\nACGT\nACGTQACGT\n", "line 3: 'Q' in contig 'chr1' is not a nucleotide"),
    "duplicate": (b">a\nACGT\n>a\nACGT\n", "line 3: duplicate contig name 'a'"),
    "empty_record": (b">a\n>b\nACGT\n", "line 1: contig 'a' has no sequence"),
    "nameless": (b">\nACGT\n", "line 1: FASTA header has no name"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, case):
    data, message = BAD_INPUTS[case]
    source = tmp_path / f"{case}.fa"
    source.write_bytes(data)
    result = dnabert_cli(["prepare-genome", str(source), "--out", str(tmp_path / "out")], ROOT)
    assert_user_error(result, str(source), message)
    assert result.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", source.name]  # the build lock, no output


def test_truncated_gzip_and_missing_path(tmp_path):
    good = gzip.compress(b">a\n" + b"ACGT" * 50_000 + b"\n")
    source = tmp_path / "cut.fa.gz"
    source.write_bytes(good[: len(good) // 2])
    assert_user_error(dnabert_cli(["prepare-genome", str(source), "--out", str(tmp_path / "o")], ROOT),
                      str(source), "corrupt or truncated")
    missing = tmp_path / "nope.fa"
    assert_user_error(dnabert_cli(["prepare-genome", str(missing), "--out", str(tmp_path / "o")], ROOT),
                      str(missing), "not found")
    assert not (tmp_path / "o").exists()
