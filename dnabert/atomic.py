"""Writes that never leave a half-written output: build under a temporary name, then rename into place."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write text under a temporary name beside `path`, then rename it into place."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")


def build_directory(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(work_dir)` in a sibling temporary directory, then swap it in for `target` (old version removed)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = target.parent / f".{target.name}.partial-{os.getpid()}"
    try:
        build(work)
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
            os.replace(work, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
