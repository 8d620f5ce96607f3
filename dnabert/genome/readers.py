"""Streaming genome readers: FASTA (plain or gzip) and UCSC 2bit, as nucleotide-code chunks.

Both readers yield the same events: `Contig(name, where)` when a sequence starts, then numpy arrays of
nucleotide codes (see `dnabert.tokenization.CODE_TABLE`) until the next contig. Memory stays bounded by the
block size whatever the genome size; every problem is a `DnabertError` naming the file and line.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dnabert.errors import DnabertError
from dnabert.textfiles import GZIP_MAGIC
from dnabert.tokenization import CODE_TABLE, INVALID

BLOCK_BYTES = 1 << 23
TWOBIT_MAGIC = 0x1A412743
TWOBIT_TO_CODE = np.array([1, 2, 0, 3], dtype=np.uint8)
"""2bit packs T, C, A, G as 0..3; our codes are A, T, C, G = 0..3."""
SKIP = 254
_SEQUENCE_TABLE = CODE_TABLE.copy()
for _whitespace in b" \t\r\n":
    _SEQUENCE_TABLE[_whitespace] = SKIP


def _header_lines(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of every line of `data` that begins with '>' (memchr-speed search, no regex)."""
    position = data.find(b">")
    while position != -1:
        end = data.find(b"\n", position)
        end = len(data) if end == -1 else end
        if position == 0 or data[position - 1] == 0x0A:
            yield position, end
        position = data.find(b">", end)


@dataclass(frozen=True)
class Contig:
    """Start of a sequence record."""

    name: str
    where: str


GenomeEvent = Contig | np.ndarray


def genome_format(path: Path) -> str:
    """'2bit', 'gzip' or 'fasta', from the file's first bytes (not its name)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if len(head) == 4 and struct.unpack("<I", head)[0] == TWOBIT_MAGIC or head == struct.pack(">I", TWOBIT_MAGIC):
        return "2bit"
    return "gzip" if head[:2] == GZIP_MAGIC else "fasta"


def read_genome(path: Path, progress: callable = lambda n: None) -> Iterator[GenomeEvent]:
    """Stream a FASTA, FASTA.gz or 2bit genome as contig events and code chunks; `progress(bytes_read)`."""
    if not path.exists():
        raise DnabertError(f"{path}: file not found; give a FASTA (.fa, .fa.gz) or .2bit genome")
    if path.is_dir():
        raise DnabertError(f"{path}: is a directory, not a genome file")
    kind = genome_format(path)
    if kind == "2bit":
        yield from _read_2bit(path, progress)
        return
    with open(path, "rb") as raw:
        stream: BinaryIO = gzip.GzipFile(fileobj=raw) if kind == "gzip" else raw
        yield from _read_fasta(path, stream, lambda: progress(raw.tell()))


def _read_block(path: Path, stream: BinaryIO, line: int) -> bytes:
    """The next block of a plain or gzip stream; a damaged gzip stream is a user error naming the line reached."""
    try:
        return stream.read(BLOCK_BYTES)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DnabertError(f"{path} line {line}: the gzip stream is corrupt or truncated ({error}); "
                           "re-download or re-compress the file") from error


def _read_fasta(path: Path, stream: BinaryIO, tick: callable) -> Iterator[GenomeEvent]:
    names: set[str] = set()
    line_base = 1
    carry = b""
    in_contig = False
    contig_bases = 0
    contig_line = 0
    current = ""
    seen_any = False
    mid_line = False
    while True:
        block = _read_block(path, stream, line_base)
        tick()
        at_end = not block
        data = carry + block
        carry = b""
        if not at_end:
            cut = data.rfind(b"\n") + 1
            if cut == 0 and not data.startswith(b">"):
                cut = len(data)
            data, carry = data[:cut], data[cut:]
            if not data:
                continue
        if mid_line and data.startswith(b">"):
            raise DnabertError(f"{path} line {line_base}: '>' inside a sequence line of contig '{current}'")
        seen_any = seen_any or bool(data.strip())
        position = 0
        counted, line = 0, line_base
        for header_start, header_end in _header_lines(data):
            for codes in _sequence_part(path, data, position, header_start, line_base, in_contig, current):
                contig_bases += codes.size
                yield codes
            if in_contig and contig_bases == 0:
                raise DnabertError(
                    f"{path} line {contig_line}: contig '{current}' has no sequence; remove the empty record"
                )
            line += data.count(b"\n", counted, header_start)
            counted = header_start
            name = data[header_start + 1 : header_end].decode("utf-8", "replace").strip().split(maxsplit=1)
            if not name:
                raise DnabertError(f"{path} line {line}: FASTA header has no name; write it as '>name'")
            current = name[0]
            if current in names:
                raise DnabertError(
                    f"{path} line {line}: duplicate contig name '{current}'; contig names must be unique"
                )
            names.add(current)
            in_contig, contig_bases, contig_line = True, 0, line
            yield Contig(current, f"{path} line {line}")
            position = header_end
        for codes in _sequence_part(path, data, position, len(data), line_base, in_contig, current):
            contig_bases += codes.size
            yield codes
        line_base += data.count(b"\n")
        mid_line = not data.endswith(b"\n")
        if at_end:
            break
    if not seen_any:
        raise DnabertError(f"{path}: file is empty; give a FASTA genome with at least one '>name' record")
    if in_contig and contig_bases == 0:
        raise DnabertError(f"{path} line {contig_line}: contig '{current}' has no sequence; remove the empty record")


def _sequence_part(
    path: Path, data: bytes, start: int, end: int, line_base: int, in_contig: bool, contig: str
) -> Iterator[np.ndarray]:
    if end <= start:
        return
    raw = np.frombuffer(data, np.uint8, end - start, start)
    codes = _SEQUENCE_TABLE[raw]
    wrong = np.flatnonzero(codes == INVALID if in_contig else codes != SKIP)
    if wrong.size:
        first = int(wrong[0])
        line = line_base + data.count(b"\n", 0, start + first)
        byte = int(raw[first])
        if byte == 0 or byte >= 128:
            inside = f" in contig '{contig}'" if in_contig else ""
            raise DnabertError(f"{path} line {line}: binary data{inside}; this is not a text FASTA file "
                               "(give FASTA, FASTA.gz or 2bit)")
        if not in_contig:
            raise DnabertError(f"{path} line {line}: sequence before any FASTA header; is this a FASTA file? "
                               "Each record must start with '>name'")
        raise DnabertError(f"{path} line {line}: {chr(byte)!r} in contig '{contig}' is not a nucleotide "
                           "(expected A, C, G, T or an IUPAC code such as N)")
    kept = codes[codes != SKIP]
    if kept.size:
        yield kept


def _read_2bit(path: Path, progress: callable) -> Iterator[GenomeEvent]:
    with open(path, "rb") as handle:
        def unpack(fmt: str, what: str) -> tuple:
            size = struct.calcsize(fmt)
            chunk = handle.read(size)
            if len(chunk) != size:
                raise DnabertError(f"{path} byte {handle.tell()}: 2bit file is truncated while reading {what}")
            return struct.unpack(endian + fmt, chunk)

        endian = "<" if struct.unpack("<I", handle.read(4))[0] == TWOBIT_MAGIC else ">"
        version, count, _ = unpack("III", "the header")
        if version not in (0, 1):
            raise DnabertError(f"{path}: unsupported 2bit version {version}")
        offset_format = "Q" if version == 1 else "I"
        index = []
        for _ in range(count):
            (name_size,) = unpack("B", "the index")
            name = handle.read(name_size).decode("ascii", "replace")
            (offset,) = unpack(offset_format, "the index")
            index.append((name, offset))
        for number, (name, offset) in enumerate(index):
            handle.seek(offset)
            size, n_blocks = unpack("II", f"record '{name}'")
            n_starts = np.array(unpack(f"{n_blocks}I", f"record '{name}'"), dtype=np.int64)
            n_sizes = np.array(unpack(f"{n_blocks}I", f"record '{name}'"), dtype=np.int64)
            (mask_blocks,) = unpack("I", f"record '{name}'")
            handle.seek(8 * mask_blocks + 4, 1)
            if size == 0:
                raise DnabertError(f"{path}: contig '{name}' (record {number + 1}) has no sequence")
            yield Contig(name, f"{path} record {number + 1}")
            done = 0
            while done < size:
                bases = min(4 * BLOCK_BYTES, size - done)
                packed = np.frombuffer(handle.read((bases + 3) // 4), dtype=np.uint8)
                if packed.size * 4 < bases:
                    raise DnabertError(f"{path}: 2bit file is truncated inside contig '{name}'")
                digits = np.stack([(packed >> shift) & 3 for shift in (6, 4, 2, 0)], axis=1).reshape(-1)[:bases]
                codes = TWOBIT_TO_CODE[digits]
                for start, length in zip(n_starts, n_sizes):
                    lo, hi = max(start, done), min(start + length, done + bases)
                    if lo < hi:
                        codes[lo - done : hi - done] = 4
                yield codes
                done += bases
                progress(handle.tell())
