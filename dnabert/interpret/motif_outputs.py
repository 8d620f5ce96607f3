"""`dnabert motifs`: attention of a fine-tuned model -> DNABERT-viz motifs, MEME matrices, logos, JASPAR matches."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dnabert.atomic import build_directory, write_text_atomic
from dnabert.data.labelled import LabelledRows
from dnabert.errors import DnabertError
from dnabert.interpret.jaspar import Match, Matrix, jaspar_core_vertebrates, meme_text, read_meme, tomtom_matches
from dnabert.interpret.motifs import Motif, MotifConfig, discover_motifs
from dnabert.interpret.plots import plt, save_figure


def split_by_label(rows: LabelledRows, positive: str) -> tuple[list[int], list[int]]:
    """Row indices whose (first) label is `positive`, and all others."""
    labels = [row[0] for row in rows.labels]
    positives = [i for i, label in enumerate(labels) if label == positive]
    if not positives or len(positives) == len(labels):
        raise DnabertError(f"{rows.path}: --positive {positive} must split the rows into two groups; "
                           f"labels found: {sorted(set(labels))}")
    return positives, [i for i, label in enumerate(labels) if label != positive]


def draw_logo(stem: Path, matrix: Matrix) -> list[Path]:
    """Information-content sequence logo of a matrix (logomaker, offline), as PNG and SVG."""
    import logomaker
    import pandas as pd

    probabilities = pd.DataFrame(matrix.probabilities.T, columns=list("ACGT"))
    information = logomaker.transform_matrix(probabilities, from_type="probability", to_type="information")
    figure, axis = plt.subplots(figsize=(max(4.0, 0.35 * len(probabilities)), 2.2))
    logomaker.Logo(information, ax=axis, color_scheme="classic")
    axis.set_ylim(0, 2)
    axis.set_ylabel("bits")
    axis.set_title(f"{matrix.identifier} ({matrix.sites} instances)", fontsize=9)
    return save_figure(figure, stem)


def instance_lines(motifs: list[Motif], names: list[str]) -> list[str]:
    """TSV of every instance window: motif, sequence name and index (among positives), 0-based half-open window."""
    lines = ["motif\tsequence\tsequence_index\tstart\tend\twindow"]
    for motif in motifs:
        for (index, start, end), window in zip(motif.window_instances, motif.windows):
            lines.append(f"{motif.name}\t{names[index]}\t{index}\t{start}\t{end}\t{window}")
    return lines


def match_lines(matches: list[Match]) -> list[str]:
    """TSV of the TOMTOM matches: best JASPAR matrices per motif with p, q, offset, orientation and rank."""
    lines = ["motif\tjaspar_id\tjaspar_name\tp_value\tq_value\toffset\torientation\trank"]
    for m in matches:
        lines.append(f"{m.query}\t{m.target.identifier}\t{m.target.name}\t{m.pvalue:.3g}\t{m.qvalue:.3g}\t"
                     f"{m.offset}\t{m.orientation}\t{m.rank}")
    return lines


def write_motif_outputs(out: Path, motifs: list[Motif], names: list[str], known: list[Matrix],
                        config: MotifConfig) -> list[Match]:
    """Write `out/`: motifs.meme, instances.tsv, logos/<motif>.png|svg and jaspar_matches.tsv; returns the matches."""
    matrices = [Matrix(m.name, m.key, m.frequency_matrix(), len(m.windows)) for m in motifs]
    matches = tomtom_matches(matrices, known, config.tomtom_top)

    def build(work: Path) -> None:
        (work / "logos").mkdir(parents=True)
        write_text_atomic(work / "motifs.meme", meme_text(matrices))
        write_text_atomic(work / "instances.tsv", "\n".join(instance_lines(motifs, names)) + "\n")
        write_text_atomic(work / "jaspar_matches.tsv", "\n".join(match_lines(matches)) + "\n")
        for matrix in matrices:
            draw_logo(work / "logos" / matrix.identifier, matrix)

    build_directory(out, build)
    return matches


def run_motifs(model, rows: LabelledRows, positive: str, out: Path, config: MotifConfig, jaspar: Path | None,
               batch_size: int = 64, max_tokens: int = 512, progress: bool = True) -> tuple[list[Motif], list[Match]]:
    """The whole `dnabert motifs` command: attention on the positives, discovery, outputs under `out`."""
    from dnabert.interpret.attention import nucleotide_attention

    known = read_meme(jaspar) if jaspar else jaspar_core_vertebrates()
    positive_rows, negative_rows = split_by_label(rows, positive)
    positives = [rows.sequences[i] for i in positive_rows]
    negatives = [rows.sequences[i] for i in negative_rows]
    scores: list[np.ndarray] = []
    for batch in nucleotide_attention(model, positives, batch_size, max_tokens, progress):
        scores.extend(batch)
    motifs, _ = discover_motifs(positives, negatives, scores, config)
    matches = write_motif_outputs(out, motifs, [rows.names[i] for i in positive_rows], known, config)
    return motifs, matches
