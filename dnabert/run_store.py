"""The run store's one reuse rule: a run directory holds a finished run that may stand for a new one only when its
identity (resolved config, checksums of its data and of `model.init`, thread count) is the one the new run would
have; an unfinished run is never reused. Studies, sweeps and benchmark suites all ask here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dnabert.errors import DnabertError, read_json

IDENTITY_FILE = "provenance.json"
"""Written first by every run (its config and identity); `metrics.json`, written last, says it finished."""
FINISHED_FILE = "metrics.json"


def finished(run_dir: Path, identity: dict) -> bool:
    """Whether `run_dir` holds a run that finished with this identity."""
    marker = run_dir / IDENTITY_FILE
    if not (run_dir / FINISHED_FILE).is_file() or not marker.is_file():
        return False
    return read_json(marker, "remove the run directory to train it again").get("identity") == identity


def clear(run_dir: Path) -> None:
    """Remove what a run of another identity, or one that did not finish, left in `run_dir` (its checkpoints must not
    be resumed by the new run); a directory that is not a run's is left alone and refused."""
    if not run_dir.exists():
        return
    if not (run_dir / IDENTITY_FILE).is_file() and any(run_dir.iterdir()):
        raise DnabertError(f"{run_dir}: exists and is not a run directory (no {IDENTITY_FILE}); move it away or "
                           "choose another hydra.sweep.dir")
    shutil.rmtree(run_dir)


def run_metrics(run_dir: Path) -> dict[str, dict[str, float]]:
    """The validation and test metrics of a finished run (of its best checkpoint)."""
    return {stage: read_json(run_dir / f"{stage}_metrics.json", "rerun the study to train it again")
            for stage in ("val", "test")}


def run_minutes(run_dir: Path) -> float:
    """Wall-clock minutes of a finished run: from its first file (the identity) to its last (the metrics)."""
    return ((run_dir / FINISHED_FILE).stat().st_mtime - (run_dir / IDENTITY_FILE).stat().st_mtime) / 60


def train_once(overrides: list[str], output_dir: Path, env: dict[str, str] | None = None) -> str | None:
    """`python -m dnabert.train OVERRIDES paths.output_dir=OUTPUT_DIR` (from this directory), unless the store
    holds that run finished with the identity it would have now; returns the run's standard error when it trained,
    None when it was reused. For scripts that train one run at a time (a sweep goes through the study sweeper)."""
    from dnabert.config import composed
    from dnabert.provenance import resolved_config, run_identity

    overrides = ["callbacks.progress_bar=null", *overrides, f"paths.output_dir={output_dir}"]
    if finished(output_dir, run_identity(resolved_config(composed(overrides)))):
        return None
    clear(output_dir)
    completed = subprocess.run([sys.executable, "-m", "dnabert.train", *overrides, f"hydra.run.dir={output_dir}/hydra"],
                               capture_output=True, text=True, env={**os.environ, **(env or {})})
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.splitlines() if line.strip()] or ["(no output)"]
        raise DnabertError(f"{output_dir}: the run failed: {lines[-1]}")
    shutil.rmtree(output_dir / "hydra", ignore_errors=True)
    return completed.stderr
