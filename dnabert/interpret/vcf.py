"""VCF records -> reference/alternative genome windows; a record that cannot be scored is kept with a status
and a note saying why (never an exception)."""

from __future__ import annotations

from pathlib import Path

from dnabert.errors import DnabertError
from dnabert.genome.shards import GenomeShards
from dnabert.interpret.variants import SCORED, Variant, edited
from dnabert.textfiles import text_lines
from dnabert.tokenization import codes_to_text


def allele_problem(allele: str) -> tuple[str, str] | None:
    """(status, reason) when an ALT allele cannot be scored."""
    if allele in (".", "*"):
        return "no_alt", f"ALT {allele!r} has no allele sequence to score"
    if allele.startswith("<") or "[" in allele or "]" in allele:
        return "symbolic", f"symbolic ALT {allele} is not scored: write the allele as bases (VCF 4.x explicit alleles)"
    if allele.strip("ACGTN"):
        return "malformed", f"ALT {allele!r} is not made of A/C/G/T/N"
    return None


def genome_window(shards: GenomeShards, contig: int, start: int, end: int, alternative: str,
                  window: int) -> tuple[str, str, int]:
    """`window` nt of the reference centred on [start, end), and the same window with the allele substituted
    (clipped to the contig; an indel's alternative is cut or extended on the right to the same length), and where
    the allele starts in them."""
    length = int(shards.lengths[contig])
    first = min(max(start - (window - (end - start)) // 2, 0), max(length - window, 0))
    reference = codes_to_text(shards.fetch(contig, first, min(first + window, length)))
    right = codes_to_text(shards.fetch(contig, min(first + window, length), min(first + 2 * window, length)))
    alternative_window = edited(reference + right, start - first, end - first, alternative)[: len(reference)]
    return reference, alternative_window, start - first


def read_vcf(path: str | Path, shards: GenomeShards, window: int) -> list[Variant]:
    """One Variant per ALT allele of every VCF record (multi-allelic records are split), with genome windows;
    REF is checked against the genome, and skipped records carry a status and note."""
    path = Path(path)
    variants = []
    for number, line in text_lines(path, "VCF file"):
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        where = f"line {number}"
        if len(fields) < 5:
            variants.append(Variant(f"{path.name}:{number}", "", 0, 0, "", "", status="malformed",
                                    note=f"{where}: {len(fields)} tab-separated fields, a VCF record needs at least 5"))
            continue
        chrom, position, identifier, reference, alternatives = fields[:5]
        reference = reference.upper()
        try:
            start = int(position) - 1
        except ValueError:
            start = -1
        end = start + len(reference)
        for alternative in alternatives.upper().split(","):
            label = identifier if identifier not in ("", ".") else f"{chrom}:{position}"
            variant = Variant(f"{label}:{reference}>{alternative}", chrom, start, end, reference, alternative)
            variant.status, variant.note = _check(variant, shards, window, where) or (SCORED, "")
            if variant.status == SCORED:
                variant.reference_window, variant.alternative_window, variant.offset = genome_window(
                    shards, shards.find_contig(chrom), start, end, alternative, window)
                variant.note = "" if len(reference) == len(alternative) else "indel"
            variants.append(variant)
    if not variants:
        raise DnabertError(f"{path}: no VCF records (lines after the #-header)")
    return variants


def _check(variant: Variant, shards: GenomeShards, window: int, where: str) -> tuple[str, str] | None:
    """(status, note) when a split VCF record cannot be scored, else None."""
    problem = allele_problem(variant.alternative)
    if problem:
        return problem[0], f"{where}: {problem[1]}"
    if variant.start < 0:
        return "malformed", f"{where}: POS must be a whole number from 1"
    if not variant.reference or variant.reference.strip("ACGTN"):
        return "malformed", f"{where}: REF {variant.reference!r} is not made of A/C/G/T/N"
    if max(len(variant.reference), len(variant.alternative)) >= window:
        return "too_long", (f"{where}: alleles of {len(variant.reference)} and {len(variant.alternative)} nt "
                            f"do not fit --window {window}")
    contig = shards.find_contig(variant.locus)
    if contig is None:
        return "unknown_chrom", f"{where}: chromosome {variant.locus!r} is not in the genome"
    length = int(shards.lengths[contig])
    if variant.end > length:
        return "out_of_range", f"{where}: {variant.locus}:{variant.start + 1} is past the contig end ({length:,} nt)"
    genome = codes_to_text(shards.fetch(contig, variant.start, variant.end))
    if genome != variant.reference:
        return "ref_mismatch", f"{where}: REF {variant.reference} but the genome has {genome} (wrong assembly?)"
    return None
