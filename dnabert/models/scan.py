"""Genome scans: a fine-tuned model slid along a whole genome, one region or a BED file of regions, streamed in
constant memory (whatever the genome's size) into a sorted bedGraph and, with the `bigwig` extra, a bigWig."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from dnabert.atomic import open_atomic, written_atomic
from dnabert.errors import DnabertError
from dnabert.genome.annotations import read_intervals
from dnabert.genome.shards import GenomeShards
from dnabert.models.inference import predict
from dnabert.models.inputs import batches
from dnabert.models.long_sequence import DNABertLongConfig
from dnabert.tokenization import codes_to_text

BIGWIG_SUFFIXES = (".bw", ".bigwig")


@dataclass(frozen=True)
class Region:
    """A 0-based half-open stretch of one contig (named as the genome names it)."""

    contig: str
    start: int
    end: int


def parse_region(region: str) -> tuple[str, int | None, int | None]:
    """'chr1:1,001-2,000' (1-based, inclusive, as genome browsers show) -> ('chr1', 1000, 2000); 'chr1' -> whole."""
    name, _, span = region.rpartition(":") if ":" in region else (region, "", "")
    if not span:
        return name, None, None
    try:
        first, last = (int(part.replace(",", "")) for part in span.split("-"))
    except ValueError:
        raise DnabertError(f"--region {region}: write it as CONTIG:START-END (1-based, inclusive)") from None
    if not 1 <= first <= last:
        raise DnabertError(f"--region {region}: START must be at least 1 and not after END")
    return name, first - 1, last


def one_region(shards: GenomeShards, region: str) -> Region:
    """`--region`: a contig, or a stretch of one, checked against the genome."""
    name, start, end = parse_region(region)
    contig = shards.index_of(name)
    length = int(shards.lengths[contig])
    start, end = start or 0, length if end is None else end
    if end > length:
        raise DnabertError(f"--region {region}: contig '{name}' has only {length:,} nt")
    return Region(shards.contigs[contig].name, start, end)


def bed_regions(shards: GenomeShards, path: Path) -> list[Region]:
    """`--regions`: the intervals of a BED file (plain or gzip; extra columns ignored), each checked against the
    genome."""
    regions = []
    for interval in read_intervals(path, "regions file"):
        where = f"{path} line {interval.line}"
        contig = shards.find_contig(interval.chrom)
        if contig is None:
            names = [c.name for c in shards.contigs]
            raise DnabertError(f"{where}: contig '{interval.chrom}' is not in the genome (it has "
                               f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''})")
        length = int(shards.lengths[contig])
        if interval.end > length:
            raise DnabertError(f"{where}: end {interval.end:,} is past the end of '{interval.chrom}' ({length:,} nt)")
        regions.append(Region(shards.contigs[contig].name, interval.start, interval.end))
    if not regions:
        raise DnabertError(f"{path}: no regions (only blank or comment lines); give BED lines: contig, start, end")
    return regions


def scan_regions(shards: GenomeShards, region: str | None, bed: Path | None) -> list[Region]:
    """The regions a scan covers (the whole genome by default), sorted as `sort -k1,1 -k2,2n` sorts a bedGraph
    (what bedGraphToBigWig and bigWig writers need), overlapping ones merged."""
    if region is not None:
        regions = [one_region(shards, region)]
    elif bed is not None:
        regions = bed_regions(shards, bed)
    else:
        regions = [Region(contig.name, 0, contig.length) for contig in shards.contigs]
    merged: list[Region] = []
    for r in sorted(regions, key=lambda r: (r.contig, r.start)):
        if merged and merged[-1].contig == r.contig and r.start <= merged[-1].end:
            merged[-1] = Region(r.contig, merged[-1].start, max(merged[-1].end, r.end))
        else:
            merged.append(r)
    return merged


def check_window(model, window: int) -> None:
    """A window the model reads whole."""
    if window < model.config.k:
        raise DnabertError(f"--window {window}: shorter than one k-mer (k={model.config.k})")
    longest = model.config.max_position_embeddings + model.config.k - 3
    if window > longest and not isinstance(model.config, DNABertLongConfig):
        raise DnabertError(f"--window {window}: the model reads at most {longest} nt (max_position_embeddings="
                           f"{model.config.max_position_embeddings}); use a smaller --window")


def scan_windows(model, shards: GenomeShards, regions: list[Region], window: int, stride: int, column: int,
                 batch_size: int = 64, reverse_complement: bool = False, progress: bool = True
                 ) -> Iterator[tuple[str, list[int], list[int], list[float]]]:
    """(contig, bin starts, bin ends, scores) per batch of windows sliding along each region (each at least a window
    long); a window's score is reported on the `stride`-wide bin at its centre, so bins tile a region without overlap
    (a stride longer than the window: on the window itself, with unscored gaps between)."""
    width = min(stride, window)
    offset = (window - width) // 2
    with tqdm(total=sum(r.end - r.start for r in regions), unit="nt", unit_scale=True, desc="scan",
              disable=not progress) as bar:
        for region in regions:
            contig, before = shards.index_of(region.contig), bar.n
            for _, starts in batches(range(region.start, region.end - window + 1, stride), batch_size):
                sequences = [codes_to_text(shards.fetch(contig, s, s + window)) for s in starts]
                scores = predict(model, sequences, len(starts), reverse_complement=reverse_complement,
                                 progress=False)[:, column]
                yield (region.contig, [s + offset for s in starts], [s + offset + width for s in starts],
                       scores.tolist())
                bar.update(before + min(starts[-1] + stride, region.end) - region.start - bar.n)
            bar.update(before + region.end - region.start - bar.n)


class Track:
    """Where a scan's bins go: a bedGraph (a file, or standard output for '-') and, for a `.bw` path, a bigWig
    beside it; files appear under their names only once the scan has finished."""

    def __init__(self, out: Path, shards: GenomeShards, regions: list[Region], header: str) -> None:
        self.out, self.header = out, header
        self.bigwig = out.suffix.lower() in BIGWIG_SUFFIXES
        self.bedgraph = out.with_suffix(".bedGraph") if self.bigwig else out
        self.contigs = sorted({r.contig for r in regions})
        self.lengths = {c.name: c.length for c in shards.contigs}
        self.count = 0

    @contextmanager
    def writing(self) -> Iterator[Track]:
        """Open the outputs; on success rename them into place, on failure leave none."""
        with ExitStack() as stack:
            if str(self.bedgraph) == "-":
                self._text = sys.stdout
            else:
                self._text = stack.enter_context(open_atomic(self.bedgraph))
            self._text.write(self.header + "\n")
            self._bw = None
            if self.bigwig:
                try:
                    import pyBigWig
                except ModuleNotFoundError:
                    raise DnabertError(f"--out {self.out}: writing bigWig needs pyBigWig: pip install "
                                       "'dnabert[bigwig]' (or give --out a .bedGraph path)") from None
                temporary = stack.enter_context(written_atomic(self.out))
                self._bw = pyBigWig.open(str(temporary), "w")
                stack.callback(self._bw.close)
                self._bw.addHeader([(name, self.lengths[name]) for name in self.contigs])
            yield self

    def add(self, contig: str, starts: list[int], ends: list[int], scores: list[float]) -> None:
        """Bins of one contig, in order."""
        self._text.writelines(f"{contig}\t{s}\t{e}\t{v:.6g}\n" for s, e, v in zip(starts, ends, scores))
        if self._bw is not None:
            self._bw.addEntries([contig] * len(starts), starts, ends=ends, values=scores)
        self.count += len(starts)
