"""Catalogue of malformed inputs: every entry point ends with exit status 2 and one `dnabert:` line naming the
file and place, never a traceback, and leaves no output behind (not even a temporary file).

Each case builds its bad files in `tmp_path` and runs the real entry point: `dnabert.cli.main` in-process,
`train.train` composed by Hydra in-process (what `train.py`'s `@hydra.main` wraps in the same `report_errors`),
or, for a few cases, `python train.py` itself.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import pathlib
import random
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from dnabert import atomic
from dnabert.cli import main as dnabert_main
from dnabert.config import composed as compose_config
from dnabert.errors import report_errors
from dnabert.genome import shards as shards_module
from dnabert.genome.shards import prepare_genome
from dnabert.training import train
from tests.conftest import assert_user_error
from tests.conftest import train as train_subprocess

K = 6
BASES = random.Random(0)
CHR1 = "".join(BASES.choice("ACGT") for _ in range(3000))
CHR2 = "".join(BASES.choice("ACGT") for _ in range(2000))
GENOME = f">chr1\n{CHR1}\n>chr2 second contig\n{CHR2}\n".encode()
TRAIN_TSV = "sequence\tlabel\n" + "".join(f"{CHR1[i:i + 24]}\t{i % 2}\n" for i in range(40))
TEMPORARY_MARKERS = (".tmp-", ".partial", ".old-")


def tiny_config(**extra) -> BertConfig:
    return BertConfig(vocab_size=4**K + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64, k=K, **extra)


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> Path:
    """Good inputs shared by the cases: a genome (FASTA and shards), a tiny fine-tuned model (HF directory and
    .ckpt), a pretrained-only model, and a training TSV."""
    m = tmp_path_factory.mktemp("material")
    (m / "genome.fa").write_bytes(GENOME)
    prepare_genome(m / "genome.fa", m / "shards", progress=False)
    torch.manual_seed(0)
    classifier = BertForSequenceClassification(tiny_config(
        num_labels=2, problem_type="single_label_classification", id2label={0: "0", 1: "1"}, label2id={"0": 0, "1": 1}))
    classifier.save_pretrained(m / "model.hf")
    torch.save({"bert_config": classifier.config.to_dict(),
                "state_dict": {f"model.{key}": value for key, value in classifier.state_dict().items()}},
               m / "model.ckpt")
    BertForMaskedLM(tiny_config()).save_pretrained(m / "mlm.hf")
    (m / "train.tsv").write_text(TRAIN_TSV)
    (m / "file.txt").write_text("a regular file, so paths below it cannot be created\n")
    return m


Builder = Callable[[Path, Path], None]
"""Makes a bad input at a path (given the shared material); plain bytes/str are written as they are."""


def model_without(name: str) -> Builder:
    """A copy of the tiny fine-tuned model directory without one of its files."""
    def build(path: Path, m: Path) -> None:
        shutil.copytree(m / "model.hf", path)
        (path / name).unlink()
    return build


def model_with(name: str, content: bytes | Callable[[Path], bytes]) -> Builder:
    """A copy of the tiny fine-tuned model directory with one file replaced."""
    def build(path: Path, m: Path) -> None:
        shutil.copytree(m / "model.hf", path)
        (path / name).write_bytes(content(m) if callable(content) else content)
    return build


def other_k_weights(m: Path) -> bytes:
    """Weights of a DNABERT-4 model (vocabulary 261), to sit beside a k=6 config.json."""
    directory = m / "k4"
    if not directory.exists():
        config = tiny_config(num_labels=2, problem_type="single_label_classification")
        config.vocab_size, config.k = 4**4 + 5, 4
        BertForSequenceClassification(config).save_pretrained(directory)
    return (directory / "model.safetensors").read_bytes()


def checkpoint_bytes(payload) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def truncated_gzip(text: str = f">a\n{CHR1 * 40}\n") -> bytes:
    data = gzip.compress(text.encode())
    return data[: len(data) // 2]


def corrupt_gzip(text: str = f">a\n{CHR1 * 40}\n") -> bytes:
    data = bytearray(gzip.compress(text.encode()))
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    return bytes(data)


def narrow_peak(*lines: str) -> str:
    return "".join(f"{line}\n" for line in ("chr1\t1000\t1200\tp\t0\t.\t1\t1\t1\t100", *lines))


def gtf(*lines: str) -> str:
    good = 'chr1\tt\texon\t1001\t1200\t.\t+\t.\tgene_id "g"; transcript_id "t1";'
    return "".join(f"{line}\n" for line in (good, *lines))


class Case(NamedTuple):
    """A malformed input: the files to make, the command, what its one error line must say."""

    entry: str
    """'cli' (dnabert.cli.main), 'train' (Hydra compose + train.train in-process) or 'train.py' (subprocess)."""
    files: dict[str, bytes | str | Builder]
    argv: list[str]
    fragments: list[str]
    fault: str | None = None
    """'disk_full': every write fails half-way with ENOSPC, as on a full disk."""


PREPARE = ["prepare-genome", "{t}/g.fa", "--out", "{t}/out", "--quiet"]
PREDICT = ["predict", "{m}/model.hf", "--input", "{t}/in.tsv", "--out", "{t}/out", "--quiet"]
EMBED = ["embed", "{m}/model.ckpt", "--input", "{t}/in.tsv", "--out", "{t}/out", "--quiet"]
SCAN = ["scan", "{m}/model.hf", "--genome", "{m}/shards", "--out", "{t}/out", "--quiet", "--region"]
SCAN_BED = ["scan", "{m}/model.hf", "--genome", "{m}/shards", "--out", "{t}/out.bw", "--quiet", "--regions",
            "{t}/regions.bed"]
TFBS = ["build-dataset", "tfbs", "--genome", "{m}/shards", "--peaks", "{t}/peaks.narrowPeak", "--out", "{t}/out",
        "--quiet"]
PROMOTER = ["build-dataset", "promoter", "--genome", "{m}/shards", "--annotation", "{t}/genes.gtf", "--out",
            "{t}/out", "--quiet"]
TRAIN = ["task=classify", "model=tiny", "data.train={m}/train.tsv", "data.batch_size=8", "trainer.max_epochs=1",
         "callbacks.schedule=null"]
TINY_TSV = "sequence\tlabel\nACGTACGTAC\t0\nTTGACGTACG\t1\n"

CASES: dict[str, Case] = {
    # genomes: prepare-genome (the same reader serves build-dataset, scan and pretraining)
    "fasta_gzip_truncated": Case("cli", {"g.fa": truncated_gzip()}, PREPARE, ["g.fa line ", "gzip", "truncated"]),
    "fasta_gzip_corrupt": Case("cli", {"g.fa": corrupt_gzip()}, PREPARE, ["g.fa line ", "gzip", "corrupt"]),
    "fasta_binary_garbage": Case("cli", {"g.fa": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"}, PREPARE,
                                 ["g.fa line 1", "binary data", "not a text FASTA file"]),
    "fasta_gzip_of_binary": Case("cli", {"g.fa": gzip.compress(bytes(range(256)) * 8)}, PREPARE,
                                 ["g.fa line 1", "binary data"]),
    "fasta_no_header": Case("cli", {"g.fa": "ACGTACGT\nACGT\n"}, PREPARE, ["g.fa line 1", "before any FASTA header"]),
    "fasta_duplicate_contig": Case("cli", {"g.fa": ">a\nACGT\n>b\nAC\n>a\nACGT\n"}, PREPARE,
                                   ["g.fa line 5", "duplicate contig name 'a'"]),
    "fasta_empty_record": Case("cli", {"g.fa": ">a\nACGT\n>b\n\n>c\nACGT\n"}, PREPARE,
                               ["g.fa line 3", "contig 'b' has no sequence"]),
    "fasta_nameless_header": Case("cli", {"g.fa": "> \nACGT\n"}, PREPARE, ["g.fa line 1", "header has no name"]),
    "fasta_empty_file": Case("cli", {"g.fa": ""}, PREPARE, ["g.fa", "file is empty"]),
    "twobit_truncated": Case("cli", {"g.fa": struct.pack("<IIII", 0x1A412743, 0, 5, 0) + b"\x04chr1"}, PREPARE,
                             ["g.fa byte ", "2bit file is truncated"]),
    "fasta_not_nucleotides": Case("cli", {"g.fa": ">a\nACGT\nACGU\n"}, PREPARE, ["g.fa line 3", "'U'", "nucleotide"]),
    "genome_is_a_plain_directory": Case("cli", {"g.fa/readme": "x"}, PREPARE, ["g.fa", "directory"]),
    "shards_incomplete": Case("cli", {"sh/index.json": "{}"}, [*SCAN[:3], "{t}/sh", *SCAN[4:], "chr1"],
                              ["sh", "not a complete genome shard directory", "prepare-genome"]),
    # sequences to predict or embed
    "sequence_shorter_than_k": Case("cli", {"in.tsv": "sequence\nACGTACGTAC\nACG\n"}, PREDICT,
                                    ["in.tsv line 3", "3 nt is shorter than k=6"]),
    "fasta_record_shorter_than_k": Case("cli", {"in.tsv": ">s1\nACGTACGT\n>s2\nACGT\n"}, PREDICT,
                                        ["in.tsv line 3", "4 nt is shorter than k=6"]),
    "sequence_not_dna": Case("cli", {"in.tsv": "sequence\nACGTACGTAC\nACGTXACGTA\n"}, EMBED,
                             ["in.tsv line 3", "'X' is not a nucleotide"]),
    "tsv_gzip_corrupt": Case("cli", {"in.tsv": corrupt_gzip(TRAIN_TSV * 40)}, PREDICT,
                             ["in.tsv line ", "gzip stream is corrupt or truncated"]),
    "tsv_binary_garbage": Case("cli", {"in.tsv": bytes(range(256)) * 4}, EMBED, ["in.tsv line 1", "binary"]),
    "tsv_utf16": Case("cli", {"in.tsv": TINY_TSV.encode("utf-16")}, PREDICT, ["in.tsv", "UTF-16", "UTF-8"]),
    "tsv_empty_sequence": Case("cli", {"in.tsv": "name\tsequence\na\tACGTACGTAC\nb\t \n"}, PREDICT,
                               ["in.tsv line 3", "empty sequence"]),
    "tsv_header_only": Case("cli", {"in.tsv": "sequence\n"}, EMBED, ["in.tsv", "no data rows"]),
    "tsv_row_missing_column": Case("cli", {"in.tsv": "name\tsequence\nx\tACGTACGTAC\nACGTACGTAC\n"}, PREDICT,
                                   ["in.tsv line 3", "1 columns where the header has 2"]),
    "input_not_found": Case("cli", {}, PREDICT, ["in.tsv", "not found"]),
    "argument_out_of_range": Case("cli", {"in.tsv": TINY_TSV}, [*PREDICT, "--batch-size", "0"],
                                  ["argument --batch-size: 0 is below 1", "dnabert predict --help"]),
    "argument_missing": Case("cli", {"in.tsv": TINY_TSV}, PREDICT[:4], ["required: --out", "dnabert predict --help"]),
    # models: HF directories and Lightning checkpoints
    "model_missing_config": Case("cli", {"bad.hf": model_without("config.json")}, ["predict", "{t}/bad.hf",
                                 *PREDICT[2:]], ["bad.hf", "no config.json"]),
    "model_missing_weights": Case("cli", {"bad.hf": model_without("model.safetensors")}, ["predict", "{t}/bad.hf",
                                  *PREDICT[2:]], ["bad.hf", "no weights file"]),
    "model_config_not_json": Case("cli", {"bad.hf": model_with("config.json", b'{"k": 6,\n "vocab_')},
                                  ["predict", "{t}/bad.hf", *PREDICT[2:]], ["config.json line 2", "not valid JSON"]),
    "model_config_not_dnabert": Case("cli", {"bad.hf": model_with("config.json", lambda m: json.dumps(
        {**json.loads((m / "model.hf/config.json").read_text()), "k": None, "vocab_size": 30522}).encode())},
        ["predict", "{t}/bad.hf", *PREDICT[2:]], ["bad.hf/config.json", "vocabulary size 30522"]),
    "model_weights_corrupt": Case("cli", {"bad.hf": model_with("model.safetensors", b"\x00" * 100)},
                                  ["predict", "{t}/bad.hf", *PREDICT[2:]], ["model.safetensors", "cannot be read"]),
    "model_weights_of_another_k": Case("cli", {"bad.hf": model_with("model.safetensors", other_k_weights)},
                                       ["predict", "{t}/bad.hf", *PREDICT[2:]],
                                       ["bad.hf", "do not fit its config.json", "word_embeddings"]),
    "checkpoint_garbage": Case("cli", {"bad.ckpt": b"PK\x03\x04 not really a zip"},
                               ["embed", "{t}/bad.ckpt", *EMBED[2:]], ["bad.ckpt", "cannot be read"]),
    "checkpoint_not_dnabert": Case("cli", {"bad.ckpt": checkpoint_bytes({"state_dict": {}})},
                                   ["embed", "{t}/bad.ckpt", *EMBED[2:]], ["bad.ckpt", "no bert_config"]),
    "model_without_task_head": Case("cli", {}, ["predict", "{m}/mlm.hf", *PREDICT[2:]],
                                    ["mlm.hf", "not a fine-tuned model"]),
    # scan
    "scan_window_too_long": Case("cli", {}, [*SCAN, "chr1", "--window", "500"],
                                 ["--window 500", "at most 67 nt"]),
    "scan_unknown_contig": Case("cli", {}, [*SCAN, "chrZ:1-100"], ["shards", "no contig named 'chrZ'", "chr1"]),
    "scan_region_past_end": Case("cli", {}, [*SCAN, "chr2:1-5000"], ["chr2:1-5000", "only 2,000 nt"]),
    "scan_region_malformed": Case("cli", {}, [*SCAN, "chr1:10-x"], ["chr1:10-x", "CONTIG:START-END"]),
    "scan_stride_zero": Case("cli", {}, [*SCAN, "chr1", "--window", "40", "--stride", "0"],
                             ["argument --stride: 0 is below 1"]),
    "scan_bed_unknown_contig": Case("cli", {"regions.bed": "chr1\t0\t100\nchrZ\t0\t100\n"}, SCAN_BED,
                                    ["regions.bed line 2", "contig 'chrZ' is not in the genome"]),
    "scan_bed_past_contig_end": Case("cli", {"regions.bed": "chr2\t0\t5000\n"}, SCAN_BED,
                                     ["regions.bed line 1", "end 5,000 is past the end of 'chr2' (2,000 nt)"]),
    "scan_bed_gzip_corrupt": Case("cli", {"regions.bed": corrupt_gzip("".join(f"chr1\t{i}\t{i + 90}\n"
                                                                              for i in range(2000)))}, SCAN_BED,
                                  ["regions.bed line ", "gzip stream is corrupt or truncated"]),
    "scan_bed_no_regions": Case("cli", {"regions.bed": "# none today\ntrack name=empty\n\n"}, SCAN_BED,
                                ["regions.bed", "no regions"]),
    # peaks and annotations: build-dataset
    "bed_negative_interval": Case("cli", {"peaks.narrowPeak": narrow_peak("chr1\t-5\t100")}, TFBS,
                                  ["peaks.narrowPeak line 2", "negative"]),
    "bed_reversed_interval": Case("cli", {"peaks.narrowPeak": narrow_peak("chr1\t300\t100")}, TFBS,
                                  ["peaks.narrowPeak line 2", "interval 300-100", "reversed"]),
    "bed_unknown_chromosome": Case("cli", {"peaks.narrowPeak": narrow_peak("chrZ\t100\t300")}, TFBS,
                                   ["peaks.narrowPeak line 2", "chromosome 'chrZ' is not in the genome"]),
    "bed_not_numbers": Case("cli", {"peaks.narrowPeak": narrow_peak("chr1\t1,000\t1,200")}, TFBS,
                            ["peaks.narrowPeak line 2", "whole numbers"]),
    "bed_too_few_columns": Case("cli", {"peaks.narrowPeak": narrow_peak("chr1 100 300")}, TFBS,
                                ["peaks.narrowPeak line 2", "1 tab-separated columns"]),
    "narrowpeak_summit_outside": Case("cli", {"peaks.narrowPeak": narrow_peak("chr1\t100\t300\tp\t0\t.\t1\t1\t1\t900")},
                                      TFBS, ["peaks.narrowPeak line 2", "summit offset 900"]),
    "gtf_without_transcripts": Case("cli", {"genes.gtf": 'chr1\tt\tgene\t1001\t1200\t.\t+\t.\tgene_id "g";\n'},
                                    PROMOTER, ["genes.gtf", "no exon lines with a transcript"]),
    "gtf_gzip_truncated": Case("cli", {"genes.gtf": truncated_gzip(gtf(*[
        f'chr1\tt\texon\t{i}\t{i + 9}\t.\t+\t.\ttranscript_id "t{i}";' for i in range(1, 2000)]))}, PROMOTER,
        ["genes.gtf line ", "gzip stream is corrupt or truncated"]),
    "narrowpeak_gzip_truncated": Case("cli", {"peaks.narrowPeak": truncated_gzip(narrow_peak(
        *[f"chr1\t{i}\t{i + 200}\tp{i}\t0\t.\t1\t1\t1\t100" for i in range(1, 2000)]))}, TFBS,
        ["peaks.narrowPeak line ", "gzip stream is corrupt or truncated"]),
    "gtf_eight_columns": Case("cli", {"genes.gtf": gtf("chr1\tt\texon\t1\t100\t.\t+\t.")}, PROMOTER,
                              ["genes.gtf line 2", "8 tab-separated columns"]),
    "gtf_unknown_chromosome": Case("cli", {"genes.gtf": gtf('chrUn\tt\texon\t1\t90\t.\t-\t.\ttranscript_id "t2";')},
                                   PROMOTER, ["genes.gtf line 2", "chromosome 'chrUn' is not in the genome"]),
    "gtf_bad_strand": Case("cli", {"genes.gtf": gtf('chr1\tt\texon\t1\t90\t.\t.\t.\ttranscript_id "t2";')},
                           PROMOTER, ["genes.gtf line 2", "strand '.'"]),
    # outputs that cannot be written
    "output_below_a_file": Case("cli", {"in.tsv": TINY_TSV}, [*PREDICT[:5], "{m}/file.txt/sub/out", "--quiet"],
                                ["file.txt/sub/out", "Not a directory", "choose another path"]),
    "output_in_proc": Case("cli", {"in.tsv": TINY_TSV}, [*EMBED[:5], "/proc/dnabert-test/out.npy", "--quiet"],
                           ["/proc/dnabert-test/out.npy", "No such file or directory"]),
    "disk_full_predict": Case("cli", {"in.tsv": TINY_TSV}, PREDICT, ["{t}/out:", "No space left", "free space"],
                              "disk_full"),
    "disk_full_build_dataset": Case("cli", {"peaks.narrowPeak": narrow_peak()}, TFBS,
                                    ["{t}/out:", "No space left", "free space"], "disk_full"),
    "disk_full_prepare_genome": Case("cli", {"g.fa": GENOME}, PREPARE, ["{t}/out:", "No space left", "free space"],
                                     "disk_full"),
    # fine-tuning sets and configuration: train.py
    "train_tsv_extra_column": Case("train", {"test.tsv": "sequence\tlabel\nACGTACGTAC\t0\textra\n"},
                                   [*TRAIN, "data.test={t}/test.tsv"], ["test.tsv line 2", "3 columns"]),
    "train_tsv_missing_label_column": Case("train", {}, [*TRAIN, "data.label_columns=[tf]"],
                                           ["train.tsv line 1", "no column 'tf'"]),
    "train_unknown_label_in_val": Case("train", {"val.tsv": "sequence\tlabel\nACGTACGTAC\t0\nACGTACGTAC\tyes\n"},
                                       [*TRAIN, "data.val={t}/val.tsv"], ["val.tsv line 3", "label 'yes'"]),
    "train_regression_label_not_number": Case(
        "train", {"reg.tsv": "sequence\tvalue\nACGTACGTAC\t0.5\nACGTACGTAC\thigh\n"},
        [*TRAIN, "data.train={t}/reg.tsv", "data.task_type=regression"], ["reg.tsv line 3", "not a number"]),
    "train_empty_test_split": Case("train", {"test.tsv": "sequence\tlabel\n"}, [*TRAIN, "data.test={t}/test.tsv"],
                                   ["test.tsv", "no data rows"]),
    "train_kmers_of_another_k": Case("train", {"k4.tsv": "sequence\tlabel\nACGT CGTA GTAC\t0\nTTGA TGAC GACG\t1\n"},
                                     [*TRAIN, "data.train={t}/k4.tsv"], ["k4.tsv", "4-mers but the model uses k=6"]),
    "train_fasta_header_without_label": Case("train", {"train.fna": ">a|1\nACGTACGTAC\n>b\nTTGACGTACG\n"},
                                             [*TRAIN, "data.train={t}/train.fna"],
                                             ["train.fna line 3", "header 'b' carries no label", "data.labels"]),
    "train_fasta_record_not_in_label_table": Case(
        "train", {"train.fa": ">a\nACGTACGTAC\n>b\nTTGACGTACG\n", "labels.tsv": "name\tlabel\na\t1\n"},
        [*TRAIN, "data.train={t}/train.fa", "data.labels={t}/labels.tsv"],
        ["train.fa line 3", "record 'b' has no row in the label table"]),
    "train_label_table_without_names": Case(
        "train", {"train.fa": ">a\nACGTACGTAC\n", "labels.tsv": "id\tlabel\na\t1\n"},
        [*TRAIN, "data.train={t}/train.fa", "data.labels={t}/labels.tsv"], ["labels.tsv line 1", "'name' column"]),
    "train_class_folder_without_files": Case(
        "train", {"gb/train/positive/0.txt": "ACGTACGTAC\n", "gb/train/negative/.keep": ""},
        [*TRAIN, "data.train={t}/gb/train"], ["gb/train/negative", "class folder without sequence files"]),
    "train_init_missing_weights": Case("train", {"bad.hf": model_without("model.safetensors")},
                                       [*TRAIN, "model.init={t}/bad.hf"], ["bad.hf", "no weights file"]),
    "train_max_tokens_over_positions": Case("train", {}, [*TRAIN, "data.max_tokens=1024"],
                                            ["data.max_tokens=1024", "max_position_embeddings=512"]),
    "train_batch_size_zero": Case("train", {}, [*TRAIN, "data.batch_size=0"],
                                  ["data.batch_size=0", "must be at least 1"]),
    "train_output_below_a_file": Case("train", {}, [*TRAIN, "paths.output_dir={m}/file.txt/run"],
                                      ["file.txt", "not a directory"]),
    "train_py_k_zero": Case("train.py", {}, ["model=tiny", "model.k=0", "trainer.max_steps=1"],
                            ["model.config.vocab_size", "k=0 is out of range"]),
    "train_py_negative_lr": Case("train.py", {}, [*TRAIN, "task.optimizer.lr=-0.001"],
                                 ["task.optimizer", "learning rate", "-0.001"]),
    "train_short_sequence": Case("train", {"test.tsv": "sequence\tlabel\nACGTACGTAC\t0\nACG\t1\n"},
                                 [*TRAIN, "data.test={t}/test.tsv"], ["test.tsv line 3", "shorter than k=6"]),
}


def make_files(files: dict[str, bytes | str | Builder], t: Path, m: Path) -> None:
    for name, content in files.items():
        path = t / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path, m)
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)


class FullDisk:
    """A file on a full disk: each write stores half its data, then fails with ENOSPC as `write(2)` does."""

    def __init__(self, *args, **kwargs):
        self.handle = open(*args, **kwargs)

    def write(self, data) -> int:
        self.handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> FullDisk:
        return self

    def __exit__(self, *exception) -> None:
        self.close()


def simulate_full_disk(monkeypatch) -> None:
    """Every output write fails half-way: atomic writes, genome shards, and files inside a directory being built."""
    def write_text(path: Path, data: str, *args, **kwargs) -> int:
        with FullDisk(path, "w") as handle:
            return handle.write(data)

    def full_open(file, mode: str = "r", *args, **kwargs):
        return FullDisk(file, mode, *args, **kwargs) if set(mode) & set("wax+") else open(file, mode, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", full_open, raising=False)
    monkeypatch.setattr(shards_module, "open", full_open, raising=False)
    monkeypatch.setattr(pathlib.Path, "write_text", write_text)


def run_train_in_process(overrides: list[str]) -> None:
    """What `python train.py OVERRIDES` runs: the composed config through `train` inside `report_errors`."""
    cfg = compose_config(overrides)
    report_errors(lambda: train(cfg))


def leftovers(*roots: Path) -> list[Path]:
    """Temporary or partial files anywhere under `roots`."""
    return [p for root in roots for p in root.rglob("*") if any(marker in p.name for marker in TEMPORARY_MARKERS)]


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input_is_one_clear_line(name, material, tmp_path, monkeypatch, capsys):
    case = CASES[name]
    monkeypatch.delenv("DNABERT_DEBUG", raising=False)
    make_files(case.files, tmp_path, material)
    argv = [arg.format(t=tmp_path, m=material) for arg in case.argv]
    fragments = [fragment.format(t=tmp_path, m=material) for fragment in case.fragments]
    if case.entry == "train.py":
        result = train_subprocess([*argv, f"paths.output_dir={tmp_path}/out"], tmp_path)
        assert_user_error(result, *fragments)
        assert result.returncode == 2
    else:
        if case.fault == "disk_full":
            simulate_full_disk(monkeypatch)
        with pytest.raises(SystemExit) as exit_info:
            if case.entry == "cli":
                dnabert_main(argv)
            else:
                run_train_in_process(["callbacks.progress_bar=null", f"paths.cache_dir={tmp_path}/cache",
                                      f"paths.output_dir={tmp_path}/out", *argv])
        stderr = capsys.readouterr().err
        assert exit_info.value.code == 2, stderr
        assert "Traceback" not in stderr, stderr
        lines = [line for line in stderr.splitlines() if line.startswith("dnabert:")]
        assert len(lines) == 1, stderr
        for fragment in fragments:
            assert fragment in lines[0], lines[0]
    if case.entry == "cli":
        assert not list(tmp_path.glob("out*"))  # out, out.bw, out.bedGraph
    else:
        assert not any((tmp_path / "out" / produced).exists() for produced in ("checkpoints", "metrics.json",
                                                                              "test_metrics.json"))
    assert leftovers(tmp_path, material) == []


WORKS = {
    "fasta_crlf": (b">chrA desc\r\nACGTN\r\nacgtn\r\n>chrB\r\nGGCC\r\n", {"chrA": "ACGTNACGTN", "chrB": "GGCC"}),
    "fasta_lowercase_iupac": (b">x\nacgtRYKMswbdhvn\nACGT\n", {"x": "ACGTNNNNNNNNNNNACGT"}),
    "fasta_gzip_no_final_newline": (gzip.compress(b">x\nACGT\nAC"), {"x": "ACGTAC"}),
}


@pytest.mark.parametrize("name", list(WORKS))
def test_genome_inputs_that_must_work(name, tmp_path):
    data, expected = WORKS[name]
    (tmp_path / "g.fa").write_bytes(data)
    dnabert_main(["prepare-genome", str(tmp_path / "g.fa"), "--out", str(tmp_path / "shards"), "--quiet"])
    shards = shards_module.GenomeShards(tmp_path / "shards")
    contents = {c.name: "".join("ATCGN"[code] for code in shards.codes(i)) for i, c in enumerate(shards.contigs)}
    assert contents == expected


@pytest.mark.parametrize("text", [
    "sequence\tlabel\r\nACGTACGTAC\t0\r\nacgtnnrYKacg\t1\r\n",  # Windows line endings, lower case, IUPAC
    "\ufeffsequence\tlabel\nACGTACGTAC\t0\nacgtnnrYKacg\t1\n",  # Excel's UTF-8 byte-order mark
])
def test_sequence_inputs_that_must_work(text, material, tmp_path):
    (tmp_path / "in.tsv").write_text(text, newline="")
    dnabert_main(["predict", str(material / "model.hf"), "--input", str(tmp_path / "in.tsv"), "--out",
                  str(tmp_path / "out.tsv"), "--quiet"])
    rows = (tmp_path / "out.tsv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].split("\t") == ["name", "p_0", "p_1", "prediction"]


def test_debug_shows_the_traceback_before_the_line(tmp_path, capsys):
    (tmp_path / "g.fa").write_text("ACGT\n")
    with pytest.raises(SystemExit) as exit_info:
        dnabert_main(["--debug", "prepare-genome", str(tmp_path / "g.fa"), "--out", str(tmp_path / "out")])
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" in stderr
    assert stderr.splitlines()[-1].startswith(f"dnabert: {tmp_path / 'g.fa'} line 1")


def test_only_errors_meant_for_the_user_become_one_line(capsys):
    """A DnabertError or OSError (also inside Hydra's instantiation) is one line; a bug raised from an OSError keeps
    its traceback, so its real cause is not hidden behind the OSError's text."""
    from hydra.errors import InstantiationException

    from dnabert.errors import DnabertError, user_error

    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "x.tsv")
    wrapped = InstantiationException("Error in call to target")
    wrapped.__cause__ = missing
    assert user_error(wrapped)[0] is missing and user_error(DnabertError("bad"))[0] is not None
    bug = RuntimeError("a tensor of the wrong shape")
    bug.__cause__ = missing
    assert user_error(bug) == (None, None)
    with pytest.raises(RuntimeError, match="wrong shape"):
        report_errors(lambda: (_ for _ in ()).throw(bug))


@pytest.mark.parametrize("package,user_line", [("modiscolite", True), ("logomaker", True), ("not_an_extra", False)])
def test_a_missing_package_names_the_interp_extra_only_when_it_is_one_of_its(monkeypatch, package, user_line):
    from dnabert import cli
    from dnabert.errors import DnabertError

    def missing(args):
        raise ModuleNotFoundError(f"No module named '{package}'", name=package)

    args = cli.build_parser().parse_args(["attention", "model.hf", "--input", "x.tsv", "--out", "o"])
    args.run, args.out = missing, None
    with pytest.raises(DnabertError if user_line else ModuleNotFoundError, match="interp" if user_line else package):
        cli._run(args)
