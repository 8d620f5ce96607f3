"""Writes that never leave a half-written output: build under a temporary name, flush it to disk (fsync), then
rename into place and flush the directory, so that neither a crash nor a power cut leaves a half-written file under
the final name."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's contents to disk (a directory: the names in it, after a rename)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _replace(source: Path, target: Path) -> None:
    """Rename `source` to `target`, then flush the directory so that the new name survives a crash."""
    os.replace(source, target)
    _fsync(target.parent)


@contextmanager
def _reported_as(target: Path, temporary: Path) -> Iterator[None]:
    """A failed write (full disk, no permission) is re-raised as an OSError naming `target`, not its temporary."""
    try:
        yield
    except OSError as error:
        if error.filename is not None and not str(error.filename).startswith(str(temporary)):
            raise
        raise OSError(error.errno, error.strerror or str(error), str(target)) from error


def prepare_output(path: Path) -> None:
    """Create the directory `path` goes in and make sure a file can be written there, before any long work."""
    path = Path(path)
    with _reported_as(path, path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = _temporary_name(path)
        probe.touch()
        probe.unlink()


@contextmanager
def open_atomic(path: Path, mode: str = "w") -> Iterator[IO]:
    """A file to stream into (text `w` or binary `wb`) under a temporary name beside `path`, renamed into place
    only when the block succeeds."""
    path = Path(path)
    temporary = _temporary_name(path)
    try:
        with _reported_as(path, temporary), open(temporary, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        with _reported_as(path, temporary):
            _replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def written_atomic(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` for a library that writes the file itself (pyBigWig, numpy's savez), flushed
    and renamed into place when the block succeeds."""
    path = Path(path)
    temporary = _temporary_name(path)
    try:
        with _reported_as(path, temporary):
            yield temporary
        with _reported_as(path, temporary):
            _fsync(temporary)
            _replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def open_npy_atomic(path: Path, shape: tuple[int, ...], dtype=np.float32) -> Iterator[np.ndarray]:
    """A memory-mapped .npy to fill row by row (flat memory) under a temporary name, renamed into place on success."""
    path = Path(path)
    temporary = _temporary_name(path)
    try:
        with _reported_as(path, temporary):
            array = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
        yield array
        with _reported_as(path, temporary):
            array.flush()
            _fsync(temporary)
            _replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write text under a temporary name beside `path`, then rename it into place."""
    with open_atomic(path) as handle:
        handle.write(text)


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")


def _owner_is_gone(partial: Path) -> bool:
    """Whether a `.name.partial-HOST-PID` directory was left by a process of this host that no longer runs (another
    host's, or a running process's, is someone's build in progress)."""
    host, _, pid = partial.name.rpartition("-")
    if not host.endswith(f".partial-{socket.gethostname()}") or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # PermissionError: another user's running process
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def build_directory(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(work_dir)` in a sibling temporary directory, flush its files to disk, then swap it in for
    `target` (old version removed). Partial directories that crashed builds of this host left are removed; another
    process's build in progress is never touched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.partial-*"):
        if _owner_is_gone(stale):
            shutil.rmtree(stale, ignore_errors=True)
    work = target.parent / f".{target.name}.partial-{socket.gethostname()}-{os.getpid()}"
    try:
        with _reported_as(target, work):
            build(work)
            for path in sorted(work.rglob("*"), reverse=True):  # files, then their directories
                _fsync(path)
            if target.exists():
                old = target.parent / f".{target.name}.old-{os.getpid()}"
                os.replace(target, old)
                _replace(work, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                _replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
