"""Shared fixtures: real data cut from ../shared into tests/data, the project root, and a runner for the real entry
points."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
LAMBDA = ROOT / "dnabert" / "resources" / "lambda_phage.fa.gz"
"""The lambda phage genome the package embeds (README command 1's default)."""

os.environ.setdefault("WANDB_MODE", "offline")


def data_file(name: str) -> Path:
    """A fixture of tests/data (README.md there says what each was cut from)."""
    path = DATA / name
    assert path.exists(), f"{path} is missing: tests/data/make_fixtures.py writes it"
    return path


def genome_text(path: Path) -> str:
    """The sequence of a one-contig (gzipped) FASTA file as one string."""
    import gzip

    with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as handle:
        return "".join(line.strip() for line in handle if not line.startswith(">"))


def original_dnabert_directory(directory: Path, k: int) -> Path:
    """DNABERT's original `bert-config-k` folder (config.json, vocab.txt, tokenizer_config.json,
    special_tokens_map.json), rebuilt from tests/data/dnabert_original_configs.json; its vocabulary is checked against
    the original's SHA-256."""
    from dnabert.tokenization import kmer_vocab

    original = json.loads(data_file("dnabert_original_configs.json").read_text())[str(k)]
    directory.mkdir(parents=True)
    for name in ("config", "tokenizer_config", "special_tokens_map"):
        (directory / f"{name}.json").write_text(json.dumps(original[name]))
    vocab = "\n".join(kmer_vocab(k))
    assert hashlib.sha256(vocab.encode()).hexdigest() == original["vocab_sha256"], f"k={k}: not DNABERT's vocabulary"
    (directory / "vocab.txt").write_text(vocab + "\n")
    return directory


@pytest.fixture
def ecoli() -> Path:
    return data_file("ecoli_k12_300kb.fa.gz")


def run(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None,
        poll: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """Run a command with the project's interpreter; returns the completed process (never raises on failure).
    `poll` is called about every second while it runs."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore", **(env or {})}
    if poll is None:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
    deadline = time.monotonic() + timeout
    with subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=full_env) as process:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=1)
                return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    process.kill()
                    raise
                poll()


def train(overrides: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """`python train.py <overrides>` with a quiet progress bar and caches under `cwd`."""
    args = [sys.executable, str(ROOT / "train.py"), "callbacks.progress_bar=null",
            f"paths.cache_dir={cwd / 'cache'}", f"hydra.run.dir={cwd / 'hydra'}", *overrides]
    return run(args, cwd, **kwargs)


def in_process(entry: Callable[[], None], cwd: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Run an entry point in this process from `cwd` (no interpreter start: seconds per call), its exit status,
    standard output and error captured as a subprocess's would be."""
    out, err, code, previous = io.StringIO(), io.StringIO(), 0, os.getcwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                entry()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
            except Exception:  # an uncaught error: a traceback and status 1, as the interpreter gives
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def dnabert_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`dnabert <args>`: the console script's `main`, run in this process."""
    from dnabert.cli import main

    return in_process(lambda: main(args), cwd, ["dnabert", *args])


def train_in_process(overrides: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """What `python train.py <overrides>` does with the package's configs, run in this process (for runs that stop at
    their input; Hydra's own machinery, run directories and sweeps need `train`); `paths.output_dir` must be given."""
    from dnabert.config import composed
    from dnabert.errors import report_errors
    from dnabert.training import train as run_training

    overrides = ["callbacks.progress_bar=null", f"paths.cache_dir={cwd / 'cache'}", *overrides]
    return in_process(lambda: report_errors(lambda: run_training(composed(overrides))), cwd, ["train.py", *overrides])


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The run failed with one `dnabert:` line naming `fragments`, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("dnabert:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def planted_model(tmp_path_factory) -> dict:
    """A tiny DNABERT-6 fine-tuned to tell real E. coli windows carrying a CTCF site (consensus of JASPAR MA0139.2,
    either strand) from windows without: {'model', 'data', 'site'} (shared by the motif and variant tests)."""
    import numpy as np

    from dnabert.genome.shards import open_genome
    from dnabert.interpret.jaspar import read_meme
    from dnabert.interpret.planted import planted_lines, planted_rows

    cwd = tmp_path_factory.mktemp("planted")
    matrices = {m.identifier: m for m in read_meme(data_file("jaspar2024_subset.meme"))}
    consensus = np.eye(4)[matrices["MA0139.2"].probabilities.argmax(0)].T
    shards = open_genome(data_file("ecoli_k12_300kb.fa.gz"), cwd / "cache", progress=False)
    rows = planted_rows(shards, {"MA0139.2": consensus}, 160, 160, 80, seed=1, margin=12)
    (cwd / "planted.tsv").write_text("\n".join(planted_lines(rows)) + "\n")
    result = train(["task=classify", "model=tiny", "task.optimizer.lr=2e-3", "logger=csv", "data.max_tokens=96",
                    f"data.train={cwd / 'planted.tsv'}", "trainer.max_epochs=8", "callbacks.schedule=null",
                    f"paths.output_dir={cwd / 'run'}"], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    site = "".join("ACGT"[i] for i in consensus.argmax(0))
    return {"model": cwd / "run" / "checkpoints" / "best.hf", "data": cwd / "planted.tsv", "site": site}


STEPS_PER_EPOCH = 12  # splice_files: 180 training rows (200 less 10 % validation) in batches of 16


@pytest.fixture(scope="session")
def splice_files(tmp_path_factory):
    """200 training and 64 test rows of the primate splice set (3 classes): every 10th and 18th row of the whole
    files (every 5th and 9th of the half in tests/data)."""
    folder = tmp_path_factory.mktemp("splice_data")
    for split, every in (("train", 5), ("test", 9)):
        lines = data_file(f"splice_primate_{split}.tsv").read_text().splitlines()
        (folder / f"{split}.tsv").write_text("\n".join([lines[0], *lines[1::every][:200]]) + "\n")
    return folder


def finetune(cwd, splice_files, run: str, *extra: str):
    """Two epochs of a tiny DNABERT-6 fine-tuned on the splice subset (dropout on), into `cwd/run`."""
    return train(["task=classify", "model=tiny", "data.max_tokens=64", "data.batch_size=16", "trainer.max_epochs=2",
                  "callbacks.schedule=null", "task.optimizer.lr=1e-3", "logger=csv",
                  f"data.train={splice_files / 'train.tsv'}",
                  f"data.test={splice_files / 'test.tsv'}", f"paths.output_dir={cwd / run}", *extra], cwd)


@pytest.fixture(scope="session")
def straight(tmp_path_factory, splice_files):
    """The uninterrupted run of `finetune` (the interrupted runs of test_resume and test_slurm end equal to it)."""
    cwd = tmp_path_factory.mktemp("straight")
    result = finetune(cwd, splice_files, "run")
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "run"


def assert_same_result(run, reference) -> None:
    a = load_file(reference / "checkpoints" / "last.hf" / "model.safetensors")
    b = load_file(run / "checkpoints" / "last.hf" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)
    expected = json.loads((reference / "test_metrics.json").read_text())
    assert json.loads((run / "test_metrics.json").read_text()) == pytest.approx(expected, abs=1e-6)
