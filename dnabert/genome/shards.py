"""Genome shards: one memory-mappable uint8 code array per contig, an index of contigs and N runs, metadata.

Layout of a shard directory::

    metadata.json      format, source checksum, contig lengths (written last: its presence means complete)
    index.json         contigs in file order: name, length, array file, runs of N/IUPAC codes
    chrom.sizes        contig names and lengths, tab-separated (UCSC's format: bedGraphToBigWig, IGV, bedtools)
    contigs/000000.bin nucleotide codes (A,T,C,G = 0..3, ambiguous = 4), one byte per base

A directory is built under a temporary name and renamed into place, so an interrupted run never leaves
anything that looks complete.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from dnabert.atomic import build_directory, write_json_atomic, write_text_atomic
from dnabert.errors import DnabertError, read_json
from dnabert.genome.readers import Contig, read_genome
from dnabert.tokenization import AMBIGUOUS

OPEN_FILES = 64
"""Contig files kept open at once by `GenomeShards.fetch`."""
FORMAT = "dnabert-genome-shards"
VERSION = 1


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks; computed once per process while its size and mtime are unchanged
    (a run's provenance and its genome cache both ask for it)."""
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """`file_sha256` for one version (size, mtime) of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


class _AmbiguousRuns:
    """Collects [start, end) runs of ambiguous codes across streamed chunks."""

    def __init__(self) -> None:
        self.runs: list[list[int]] = []
        self.offset = 0

    def add(self, codes: np.ndarray) -> None:
        ambiguous = np.concatenate([[False], codes == AMBIGUOUS, [False]])
        edges = np.flatnonzero(np.diff(ambiguous.astype(np.int8)))
        for start, end in zip(edges[::2] + self.offset, edges[1::2] + self.offset):
            if self.runs and self.runs[-1][1] == start:
                self.runs[-1][1] = int(end)
            else:
                self.runs.append([int(start), int(end)])
        self.offset += codes.size


def prepare_genome(source: Path, out: Path, progress: bool = True, checksum: str | None = None) -> Path:
    """Turn a FASTA/FASTA.gz/2bit genome into a shard directory; a no-op when `out` is already up to date."""
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise DnabertError(f"{source}: {'is a directory' if source.is_dir() else 'file not found'}; "
                           "give a FASTA (.fa, .fa.gz) or .2bit genome file")
    checksum = checksum or file_sha256(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    # one build at a time (two jobs of a sweep, two nodes, sharing a cache): the second waits, then reuses it
    with FileLock(out.parent / f".{out.name}.lock"):
        if (out / "metadata.json").exists():
            if GenomeShards(out).metadata.get("source_sha256") == checksum:
                return out
        elif out.exists() and any(out.iterdir()):
            raise DnabertError(f"{out}: exists and is not a dnabert shard directory; choose an empty or new --out")
        return build_directory(out, lambda work: _write_shards(source, work, checksum, progress))


def _write_shards(source: Path, work: Path, checksum: str, progress: bool) -> None:
    (work / "contigs").mkdir(parents=True)
    contigs: list[dict] = []
    handle = runs = None
    bar = tqdm(total=source.stat().st_size, unit="B", unit_scale=True, desc=f"prepare {source.name}",
               disable=not progress)

    def finish() -> None:
        if handle is not None:
            handle.close()
            contigs[-1].update(length=runs.offset, ambiguous_runs=runs.runs)

    def tick(position: int) -> None:
        bar.update(position - bar.n)

    with bar:
        for event in read_genome(source, tick):
            if isinstance(event, Contig):
                finish()
                file = f"contigs/{len(contigs):06d}.bin"
                contigs.append({"name": event.name, "file": file})
                handle, runs = open(work / file, "wb"), _AmbiguousRuns()
            else:
                handle.write(event.tobytes())
                runs.add(event)
        finish()
    lengths = {c["name"]: c["length"] for c in contigs}
    write_json_atomic(work / "index.json", {"contigs": contigs})
    write_text_atomic(work / "chrom.sizes", "".join(f"{name}\t{length}\n" for name, length in lengths.items()))
    write_json_atomic(work / "metadata.json", {
        "format": FORMAT,
        "version": VERSION,
        "source": source.name,
        "source_sha256": checksum,
        "source_bytes": source.stat().st_size,
        "total_length": sum(lengths.values()),
        "contig_lengths": lengths,
    })


@dataclass(frozen=True)
class ContigInfo:
    """One contig of a shard directory."""

    name: str
    length: int
    file: str
    ambiguous_runs: list[list[int]]


class GenomeShards:
    """Read-only view of a shard directory; contig arrays are memory-mapped on first use."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        metadata_file = self.directory / "metadata.json"
        if not metadata_file.exists():
            raise DnabertError(
                f"{self.directory}: not a complete genome shard directory (no metadata.json); "
                "run `dnabert prepare-genome GENOME --out DIR` again"
            )
        self.metadata = read_json(metadata_file, "run `dnabert prepare-genome` again")
        if self.metadata.get("format") != FORMAT or self.metadata.get("version") != VERSION:
            raise DnabertError(f"{metadata_file}: not a dnabert genome shard directory of version {VERSION}")
        self._arrays: dict[int, np.ndarray] = {}
        self._descriptors: OrderedDict[int, int] = OrderedDict()

    @cached_property
    def contigs(self) -> list[ContigInfo]:
        """Contigs in file order."""
        index = read_json(self.directory / "index.json", "run `dnabert prepare-genome` again")
        return [ContigInfo(**entry) for entry in index["contigs"]]

    @cached_property
    def lengths(self) -> np.ndarray:
        """Contig lengths (int64) in file order."""
        return np.array([c.length for c in self.contigs], dtype=np.int64)

    @cached_property
    def _indices(self) -> dict[str, int]:
        """Contig name -> index, also under the name with 'chr' added or removed; exact names win over aliases."""
        aliases: dict[str, int] = {}
        for i, contig in enumerate(self.contigs):
            aliases.setdefault(contig.name[3:] if contig.name.startswith("chr") else f"chr{contig.name}", i)
        return aliases | {contig.name: i for i, contig in enumerate(self.contigs)}

    def find_contig(self, name: str) -> int | None:
        """Index of a contig by name, accepting '22' for 'chr22' and back (an exact name wins); None if absent."""
        return self._indices.get(name)

    def index_of(self, name: str) -> int:
        """Index of a contig by name (as `find_contig`); a user error listing the genome's contigs if absent."""
        index = self.find_contig(name)
        if index is not None:
            return index
        names = [contig.name for contig in self.contigs]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise DnabertError(f"{self.directory}: no contig named '{name}' (the genome has {shown}); check the "
                           "chromosome naming (chr1 vs 1)")

    def codes(self, contig: int) -> np.ndarray:
        """Memory-mapped nucleotide codes of one contig."""
        array = self._arrays.get(contig)
        if array is None:
            info = self.contigs[contig]
            array = np.memmap(self.directory / info.file, dtype=np.uint8, mode="r", shape=(info.length,))
            self._arrays[contig] = array
        return array

    def fetch(self, contig: int, start: int, end: int) -> np.ndarray:
        """Codes of `contig[start:end]`, read with pread so memory stays flat however much is sampled.

        (Slicing the memmap instead maps the surrounding page-cache pages too: RSS then grows to the genome size.)
        """
        descriptor = self._descriptors.pop(contig, None)
        if descriptor is None:
            descriptor = os.open(self.directory / self.contigs[contig].file, os.O_RDONLY)
            if len(self._descriptors) >= OPEN_FILES:
                os.close(self._descriptors.popitem(last=False)[1])
        self._descriptors[contig] = descriptor
        return np.frombuffer(os.pread(descriptor, end - start, start), dtype=np.uint8)

    def __getstate__(self) -> dict:
        return {"directory": self.directory, "metadata": self.metadata, "_arrays": {}, "_descriptors": OrderedDict()}

    def __del__(self) -> None:
        for descriptor in getattr(self, "_descriptors", {}).values():
            os.close(descriptor)


def open_genome(path: str | Path, cache_dir: str | Path, progress: bool = True) -> GenomeShards:
    """Open a shard directory, or prepare a genome file into `cache_dir` (once) and open that."""
    path = Path(path)
    if path.is_dir():
        return GenomeShards(path)
    if not path.exists():
        raise DnabertError(
            f"{path}: genome not found; give a FASTA (.fa/.fa.gz), a .2bit file or a directory "
            "made by `dnabert prepare-genome`"
        )
    checksum = file_sha256(path)
    return GenomeShards(prepare_genome(path, Path(cache_dir) / f"{path.name}-{checksum[:12]}", progress, checksum))
