"""Text inputs, plain or gzip-compressed (told apart by their first bytes, as genome files are): one opener for every
table and annotation file (TSV/CSV, BED, narrowPeak, GTF, GFF3, VCF), GENCODE's and ENCODE's `.gz` files included."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dnabert.errors import DnabertError

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: Path) -> bool:
    """Whether a file starts with gzip's magic bytes (whatever its name)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def _damaged(path: Path, line: int, error: Exception) -> DnabertError:
    return DnabertError(f"{path} line {line}: the gzip stream is corrupt or truncated ({error}); download the file "
                        f"again (`gzip -t {path.name}` checks it)")


class NumberedLines:
    """The lines of a text handle, counting them (`number`: the line last read, 1-based)."""

    def __init__(self, handle) -> None:
        self.handle, self.number = handle, 0

    def __iter__(self) -> Iterator[str]:
        for line in self.handle:
            self.number += 1
            yield line


@contextmanager
def open_text(path: str | Path, what: str, newline: str | None = None,
              encoding: str = "utf-8") -> Iterator[NumberedLines]:
    """The lines of a plain or gzip text file; a missing file, or a damaged gzip stream met while reading, is one user
    error naming the file (and the line reached). `what` names the file's role ('peak file')."""
    path = Path(path)
    if not path.is_file():
        raise DnabertError(f"{path}: is a directory, not a {what}" if path.is_dir() else f"{path}: {what} not found")
    compressed = is_gzip(path)
    opened = (gzip.open(path, "rt", newline=newline, encoding=encoding, errors="replace") if compressed
              else open(path, newline=newline, encoding=encoding, errors="replace"))
    with opened as handle:
        lines = NumberedLines(handle)
        try:
            yield lines
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise _damaged(path, lines.number + 1, error) from None


def text_lines(path: str | Path, what: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its line ending) of a plain or gzip text file."""
    with open_text(path, what) as lines:
        for line in lines:
            yield lines.number, line.rstrip("\r\n")


def text_head(path: Path, size: int = 1 << 16) -> bytes:
    """The first `size` bytes of a file's text (decompressed when it is gzip)."""
    with (gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")) as handle:
        try:
            return handle.read(size)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise _damaged(path, 1, error) from None
