"""Variant effects (DNABERT `SNP/`): score reference and alternative sequences, report the paper's diff and
log-odds ratio. Variants come from DNABERT's mutation file, saturation mutagenesis or a VCF (`vcf.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnabert.errors import DnabertError
from dnabert.interpret.plots import plt, save_figure

SCORED = "scored"
EPSILON = 1e-7
"""Probabilities are clipped to [EPSILON, 1 - EPSILON] before taking log-odds."""


@dataclass
class Variant:
    """One alternative allele at `locus[start:end]` (0-based, half-open) with the sequences to compare."""

    name: str
    locus: str
    start: int
    end: int
    reference: str
    alternative: str
    reference_window: str = ""
    alternative_window: str = ""
    status: str = SCORED
    note: str = ""
    offset: int = 0
    """Where the allele starts in its windows (0-based)."""


def allele_text(allele: str) -> str:
    """An allele for display ('-' when empty)."""
    return allele or "-"


def edited(sequence: str, start: int, end: int, replacement: str) -> str:
    """`sequence` with [start, end) replaced: substitution, insertion (start == end) or deletion (empty replacement)."""
    return sequence[:start] + replacement + sequence[end:]


def sequence_variant(name: str, sequence: str, start: int, end: int, replacement: str) -> Variant:
    """A variant of a whole input sequence (mutation file, saturation)."""
    reference = sequence[start:end]
    return Variant(f"{name}:{start}-{end}:{allele_text(reference)}>{allele_text(replacement)}", name, start, end,
                   reference, replacement, sequence, edited(sequence, start, end, replacement), offset=start)


def read_mutations(path: str | Path, names: list[str], sequences: list[str]) -> list[Variant]:
    """DNABERT's mutation file: `index<TAB>start<TAB>end<TAB>replacement`, no header; 0-based half-open interval of
    the index-th sequence; an empty (or literal `nan`) replacement is a deletion, start == end an insertion."""
    path = Path(path)
    if not path.is_file():
        raise DnabertError(f"{path}: mutation file not found")
    variants = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        where = f"{path} line {number}"
        if len(fields) not in (3, 4):
            raise DnabertError(f"{where}: expected 'index<TAB>start<TAB>end<TAB>replacement', got {len(fields)} fields")
        try:
            index, start, end = (int(value) for value in fields[:3])
        except ValueError:
            raise DnabertError(f"{where}: index, start and end must be whole numbers") from None
        replacement = fields[3].strip().upper() if len(fields) == 4 else ""
        replacement = "" if replacement == "NAN" else replacement
        if not 0 <= index < len(sequences):
            raise DnabertError(f"{where}: sequence index {index} is not in 0..{len(sequences) - 1}")
        if not 0 <= start <= end <= len(sequences[index]):
            raise DnabertError(f"{where}: interval [{start}, {end}) is outside sequence {index} "
                               f"({len(sequences[index])} nt); positions are 0-based, end exclusive")
        if replacement.strip("ACGTN"):
            raise DnabertError(f"{where}: replacement {replacement!r} is not A/C/G/T/N")
        variants.append(sequence_variant(names[index], sequences[index], start, end, replacement))
    if not variants:
        raise DnabertError(f"{path}: no mutations listed")
    return variants


def saturation_variants(names: list[str], sequences: list[str]) -> list[Variant]:
    """Every single-nucleotide substitution of every sequence (three per position; four at N)."""
    return [sequence_variant(name, sequence, p, p + 1, base)
            for name, sequence in zip(names, sequences)
            for p in range(len(sequence))
            for base in "ACGT" if base != sequence[p]]


def effect_sizes(reference: np.ndarray, alternative: np.ndarray) -> dict[str, np.ndarray]:
    """DNABERT's scores from P(label) of reference (o) and alternative (m): change m - o,
    diff (m - o) * max(o, m) and log-odds ratio log2(o / (1 - o)) - log2(m / (1 - m))."""
    o = np.clip(np.asarray(reference, dtype=np.float64), EPSILON, 1 - EPSILON)
    m = np.clip(np.asarray(alternative, dtype=np.float64), EPSILON, 1 - EPSILON)
    return {"change": m - o, "diff": (m - o) * np.maximum(o, m),
            "log_odds_ratio": np.log2(o / (1 - o)) - np.log2(m / (1 - m))}


def check_reach(variants: list[Variant], reach: int | None, option: str) -> None:
    """Refuse variants whose alleles lie past the `reach` nt the model reads of a window (their effect would be a
    silent 0); None: the model reads every chunk."""
    past = [v for v in variants if v.status == SCORED and reach is not None
            and v.offset + max(len(v.reference), len(v.alternative), 1) > reach]
    if past:
        v = past[0]
        advice = (f"use --window {reach} or less" if option == "--window" else
                  f"cut the sequences to at most {reach} nt around the variants")
        raise DnabertError(f"{v.name}: the variant at nt {v.offset + 1:,} of its {len(v.reference_window):,} nt "
                           f"window lies past the {reach} nt the model reads ({len(past):,} of {len(variants):,} "
                           f"variants do); {advice}")


def score_variants(model, variants: list[Variant], column: int, batch_size: int = 64, max_tokens: int = 512,
                   progress: bool = True) -> dict[str, np.ndarray]:
    """P(reference), P(alternative) and effect sizes of the scored variants (in their order); each distinct
    sequence is predicted once."""
    from dnabert.models.inference import predict

    scored = [v for v in variants if v.status == SCORED]
    unique = list(dict.fromkeys(s for v in scored for s in (v.reference_window, v.alternative_window)))
    probabilities = predict(model, unique, batch_size, max_tokens, progress=progress)[:, column]
    lookup = dict(zip(unique, probabilities))
    reference = np.array([lookup[v.reference_window] for v in scored], dtype=np.float64)
    alternative = np.array([lookup[v.alternative_window] for v in scored], dtype=np.float64)
    return {"p_ref": reference, "p_alt": alternative, **effect_sizes(reference, alternative)}


def report_lines(variants: list[Variant], scores: dict[str, np.ndarray]) -> list[str]:
    """TSV, one row per variant: scored ones ranked by |log-odds ratio| (largest first), then the skipped ones."""
    columns = ["p_ref", "p_alt", "change", "diff", "log_odds_ratio"]
    lines = ["\t".join(["rank", "variant", "locus", "start", "end", "ref", "alt", *columns, "status", "note"])]
    scored = [v for v in variants if v.status == SCORED]
    order = np.argsort(-np.abs(scores["log_odds_ratio"]), kind="stable") if scored else []
    for rank, i in enumerate(order, start=1):
        v = scored[i]
        values = [f"{scores[c][i] + 0.0:.6g}" for c in columns]  # + 0.0: no "-0"
        lines.append("\t".join([str(rank), v.name, v.locus, str(v.start), str(v.end), allele_text(v.reference),
                                allele_text(v.alternative), *values, v.status, v.note]))
    for v in variants:
        if v.status != SCORED:
            lines.append("\t".join(["", v.name, v.locus, str(v.start), str(v.end), allele_text(v.reference),
                                    allele_text(v.alternative), *[""] * len(columns), v.status, v.note]))
    return lines


def plot_top_variants(stem: Path, variants: list[Variant], scores: dict[str, np.ndarray], label: str,
                      top: int = 20) -> list[Path]:
    """Horizontal bar chart of the `top` variants by |log-odds ratio| (PNG + SVG)."""
    scored = [v for v in variants if v.status == SCORED]
    order = np.argsort(-np.abs(scores["log_odds_ratio"]), kind="stable")[:top][::-1]
    values = scores["log_odds_ratio"][order]
    figure, axis = plt.subplots(figsize=(7, 0.3 * len(order) + 1.2))
    axis.barh(np.arange(len(order)), values, color=np.where(values >= 0, "#3b6ea8", "#c0504d"))
    axis.set_yticks(np.arange(len(order)), [scored[i].name for i in order], fontsize=7, family="monospace")
    axis.axvline(0, color="black", linewidth=0.5)
    axis.set_xlabel(f"log2 odds ratio of P({label}): reference vs alternative (> 0: variant lowers it)")
    axis.set_title(f"top {len(order)} variants", fontsize=10)
    return save_figure(figure, stem)
