"""Shared fixtures: real data from ../shared, the project root, and a runner for the real entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

os.environ.setdefault("WANDB_MODE", "offline")


def shared_path(relative: str) -> Path:
    """A file under ../shared; skipped outside CI when ../shared is absent, an error in CI."""
    path = SHARED / relative
    if not path.exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"{path} is required in CI")
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture
def ecoli() -> Path:
    return shared_path("data/ecoli_k12/ecoli_k12_mg1655.fa.gz")


def run(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command with the project's interpreter; returns the completed process (never raises on failure)."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def train(overrides: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """`python train.py <overrides>` with a quiet progress bar and caches under `cwd`."""
    args = [sys.executable, str(ROOT / "train.py"), "callbacks.progress_bar=null",
            f"paths.cache_dir={cwd / 'cache'}", f"hydra.run.dir={cwd / 'hydra'}", *overrides]
    return run(args, cwd, **kwargs)


def dnabert_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`dnabert <args>` through the console-script module."""
    return run([sys.executable, "-m", "dnabert.cli", *args], cwd)


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

    from dnabert.data.planted import planted_lines, planted_rows
    from dnabert.genome.shards import open_genome
    from dnabert.interpret.jaspar import read_meme

    cwd = tmp_path_factory.mktemp("planted")
    matrices = {m.identifier: m for m in read_meme(shared_path("data/motifs/jaspar2024_core_vertebrates.meme"))}
    consensus = np.eye(4)[matrices["MA0139.2"].probabilities.argmax(0)].T
    shards = open_genome(shared_path("data/ecoli_k12/ecoli_k12_mg1655.fa.gz"), cwd / "cache", progress=False)
    rows = planted_rows(shards, {"MA0139.2": consensus}, 160, 160, 80, seed=1, margin=12)
    (cwd / "planted.tsv").write_text("\n".join(planted_lines(rows)) + "\n")
    result = train(["task=classify", "model=tiny", "task.optimizer.lr=2e-3", "logger=csv", "data.max_tokens=96",
                    f"data.train={cwd / 'planted.tsv'}", "trainer.max_epochs=8", "callbacks.schedule=null",
                    f"paths.output_dir={cwd / 'run'}"], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    site = "".join("ACGT"[i] for i in consensus.argmax(0))
    return {"model": cwd / "run" / "checkpoints" / "best.hf", "data": cwd / "planted.tsv", "site": site}
