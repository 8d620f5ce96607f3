"""`dnabert motifs`: motifs a fine-tuned model learnt (TF-MoDISco on attributions, or DNABERT-viz on attention) as
MEME matrices, instances, logos and JASPAR matches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from dnabert.atomic import build_directory, write_text_atomic
from dnabert.data.labelled import LabelledRows
from dnabert.errors import DnabertError
from dnabert.interpret.attribution import attribution_batches, modisco_inputs, save_modisco_inputs
from dnabert.interpret.jaspar import Match, Matrix, jaspar_core_vertebrates, meme_text, read_meme, tomtom_matches
from dnabert.interpret.modisco import ModiscoConfig, Pattern, require_modisco, run_modisco
from dnabert.interpret.motifs import Motif, MotifConfig, Settings, discover_motifs
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


INSTANCE_HEADER = "motif\tsequence\tsequence_index\tstart\tend\tstrand\twindow"
"""instances.tsv: motif, sequence name and index (among positives), 0-based half-open span, strand it reads on."""


def attention_instances(motifs: list[Motif], names: list[str]) -> list[str]:
    """instances.tsv lines of DNABERT-viz motifs: every instance window (forward strand)."""
    return [f"{motif.name}\t{names[index]}\t{index}\t{start}\t{end}\t+\t{window}"
            for motif in motifs for (index, start, end), window in zip(motif.window_instances, motif.windows)]


def seqlet_instances(patterns: list[Pattern], names: list[str], sequences: list[str]) -> list[str]:
    """instances.tsv lines of TF-MoDISco patterns: every seqlet, trimmed like its pattern's matrix."""
    return [f"{pattern.name}\t{names[index]}\t{index}\t{start}\t{end}\t{strand}\t{sequences[index][start:end]}"
            for pattern in patterns for index, start, end, strand in pattern.seqlets]


def match_lines(matches: list[Match]) -> list[str]:
    """TSV of the TOMTOM matches: best JASPAR matrices per motif with p, q, offset, orientation and rank."""
    lines = ["motif\tjaspar_id\tjaspar_name\tp_value\tq_value\toffset\torientation\trank"]
    for m in matches:
        lines.append(f"{m.query}\t{m.target.identifier}\t{m.target.name}\t{m.pvalue:.3g}\t{m.qvalue:.3g}\t"
                     f"{m.offset}\t{m.orientation}\t{m.rank}")
    return lines


def write_motif_outputs(out: Path, matrices: list[Matrix], instances: list[str], known: list[Matrix], top: int,
                        extra: Callable[[Path], None] | None = None) -> list[Match]:
    """Write `out/`: motifs.meme, instances.tsv, logos/<motif>.png|svg, jaspar_matches.tsv (and what `extra` writes
    into the directory being built), all or nothing; returns the TOMTOM matches."""
    matches = tomtom_matches(matrices, known, top)

    def build(work: Path) -> None:
        (work / "logos").mkdir(parents=True)
        write_text_atomic(work / "motifs.meme", meme_text(matrices))
        write_text_atomic(work / "instances.tsv", "\n".join([INSTANCE_HEADER, *instances]) + "\n")
        write_text_atomic(work / "jaspar_matches.tsv", "\n".join(match_lines(matches)) + "\n")
        for matrix in matrices:
            draw_logo(work / "logos" / matrix.identifier, matrix)
        if extra is not None:
            extra(work)

    build_directory(out, build)
    return matches


def consensus(probabilities: np.ndarray) -> str:
    """The most probable base of each column (rows A, C, G, T)."""
    return "".join("ACGT"[i] for i in probabilities.argmax(0))


def attention_motifs(model, positives: list[str], negatives: list[str], names: list[str], config: MotifConfig,
                     batch_size: int, max_tokens: int, progress: bool) -> tuple[list[Matrix], list[str], None]:
    """DNABERT-viz on the attention of the positives against the negatives: matrices, instance lines."""
    from dnabert.interpret.attention import nucleotide_attention

    scores: list[np.ndarray] = []
    for batch in nucleotide_attention(model, positives, batch_size, max_tokens, progress):
        scores.extend(batch)
    motifs, _ = discover_motifs(positives, negatives, scores, config)
    matrices = [Matrix(m.name, m.key, m.frequency_matrix(), len(m.windows)) for m in motifs]
    return matrices, attention_instances(motifs, names), None


def modisco_motifs(model, positives: list[str], target: int, names: list[str], config: ModiscoConfig,
                   batch_size: int, max_tokens: int, progress: bool
                   ) -> tuple[list[Matrix], list[str], Callable[[Path], None]]:
    """TF-MoDISco on the integrated-gradients hypothetical contributions of the positives to output `target`:
    matrices, instance lines, and the writer of modisco's own results (modisco.h5, one_hot.npy, hypothetical.npy)."""
    require_modisco()
    hypothetical: list[np.ndarray] = []
    for batch in attribution_batches(model, positives, target, config.steps, batch_size, max_tokens, progress):
        hypothetical.extend(batch.hypothetical)
    one_hot, hypothetical = modisco_inputs(positives, hypothetical)
    result = run_modisco(one_hot, hypothetical, config)
    patterns = result.patterns(config)
    matrices = [Matrix(p.name, consensus(p.probabilities), p.probabilities, len(p.seqlets)) for p in patterns]

    def write(work: Path) -> None:
        result.save(work / "modisco.h5")
        save_modisco_inputs(work, one_hot, hypothetical)

    return matrices, seqlet_instances(patterns, names, positives), write


def run_motifs(model, rows: LabelledRows, positive: str, target: int | None, out: Path, method: str,
               config: Settings, jaspar: Path | None, batch_size: int = 64, max_tokens: int = 512,
               progress: bool = True) -> tuple[list[Matrix], list[Match]]:
    """The whole `dnabert motifs` command: motifs of the positives by `method`, outputs under `out`."""
    known = read_meme(jaspar) if jaspar else jaspar_core_vertebrates()
    positive_rows, negative_rows = split_by_label(rows, positive)
    positives = [rows.sequences[i] for i in positive_rows]
    names = [rows.names[i] for i in positive_rows]
    if method == "modisco":
        if target is None:
            raise DnabertError(f"motifs --method modisco: --positive {positive} is not one of the model's classes, "
                               "so there is no output to explain; give a class the model predicts")
        found = modisco_motifs(model, positives, target, names, config, batch_size, max_tokens, progress)
    else:
        negatives = [rows.sequences[i] for i in negative_rows]
        found = attention_motifs(model, positives, negatives, names, config, batch_size, max_tokens, progress)
    matrices, instances, extra = found
    return matrices, write_motif_outputs(out, matrices, instances, known, config.tomtom_top, extra)
