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
