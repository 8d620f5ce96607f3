"""How well motifs planted into sequences are recovered: the discovered motifs that match each planted matrix (rank
and q-value), each matrix's best log-odds match per row, AUROCs of any per-row score on each matrix's positives, and
the frequency matrices of the planted sites themselves (the ceiling of a discovery). Rows are `planted_lines` rows
(`sequence`, `label`, `motif`, `start`, `strand`) as dicts."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from dnabert.interpret.attribution import one_hot as nucleotide_one_hot
from dnabert.interpret.jaspar import Matrix


def recovery(matches_file: Path, matrices: dict[str, Matrix], cutoff: float) -> list[dict]:
    """Per planted matrix: the discovered motif matching it best (that matrix or another JASPAR matrix of the same
    TF, at q < cutoff) as rank 1 (`recovered`) and as rank <= 3 (`recovered_top3`)."""
    matches = [m for m in csv.DictReader(open(matches_file), delimiter="\t") if float(m["q_value"]) < cutoff]
    rows = []
    for identifier, matrix in matrices.items():
        hits = sorted((m for m in matches if m["jaspar_id"] == identifier
                       or m["jaspar_name"].upper() == matrix.name.upper()), key=lambda m: float(m["q_value"]))
        first = [m for m in hits if m["rank"] == "1"]
        best = (first or hits or [None])[0]
        rows.append({"jaspar_id": identifier, "tf": matrix.name, "motif": best["motif"] if best else "",
                     "matched": best["jaspar_id"] if best else "", "rank": int(best["rank"]) if best else None,
                     "q_value": float(best["q_value"]) if best else None, "recovered": bool(first),
                     "recovered_top3": any(int(m["rank"]) <= 3 for m in hits)})
    return rows


def matrix_scores(one_hot: np.ndarray, matrix: Matrix) -> np.ndarray:
    """Each row's best log-odds match to `matrix` (either strand) over the uniform background, from (N, L, 4)
    one-hot rows."""
    log_odds = np.log((matrix.probabilities + 1e-3) / 0.25).T  # width x 4
    windows = np.lib.stride_tricks.sliding_window_view(one_hot, len(log_odds), axis=1)  # N, L-w+1, 4, w
    # the reverse complement reads ACGT -> TGCA backwards
    return np.max([np.einsum("nlcw,wc->nl", windows, w).max(1) for w in (log_odds, log_odds[::-1, ::-1])], axis=0)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of scores for boolean labels (ties count half)."""
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - labels.sum() * (labels.sum() + 1) / 2) / (labels.sum() * (~labels).sum()))


def planted_matrix_scores(rows: list[dict], matrices: dict[str, Matrix]) -> dict[str, np.ndarray]:
    """Per planted matrix, each row's best log-odds match to it (`matrix_scores`)."""
    one_hot = np.stack([nucleotide_one_hot(r["sequence"]) for r in rows])
    return {identifier: matrix_scores(one_hot, matrix) for identifier, matrix in matrices.items()}


def oracle_auroc(rows: list[dict], scores: dict[str, np.ndarray]) -> float:
    """AUROC of the planted matrices themselves (`planted_matrix_scores`): each row scored by its best match to any
    of them: what separating planted from unplanted rows allows at best."""
    return auroc(np.max(list(scores.values()), axis=0), np.array([r["label"] == "1" for r in rows]))


def per_matrix_auroc(rows: list[dict], scores: np.ndarray, identifiers: Iterable[str]) -> dict[str, float]:
    """Per planted matrix (of `identifiers`), the AUROC of per-row `scores` on its positives against all negatives."""
    negative = np.array([r["label"] == "0" for r in rows])
    result = {}
    for identifier in identifiers:
        mine = np.array([r["motif"] == identifier for r in rows]) | negative
        result[identifier] = auroc(scores[mine], ~negative[mine])
    return result


def own_matrix_auroc(rows: list[dict], scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Per planted matrix, `per_matrix_auroc` of its own best log-odds match: what that matrix allows at best."""
    return {identifier: per_matrix_auroc(rows, values, [identifier])[identifier]
            for identifier, values in scores.items()}


def planted_sites(rows: list[dict], tracks, identifier: str, width: int) -> list[np.ndarray]:
    """The (width, 4) slices of each row's track (ACGT columns) at its planted `identifier` site, read on the strand
    it was written (the reverse complement of ACGT columns is both axes reversed)."""
    sites = []
    for row, track in zip(rows, tracks):
        if row["motif"] == identifier:
            site = track[int(row["start"]) : int(row["start"]) + width]
            sites.append(site if row["strand"] == "+" else site[::-1, ::-1])
    return sites


def site_matrices(rows: list[dict], matrices: dict[str, Matrix]) -> list[Matrix]:
    """Per planted matrix, the frequency matrix of its planted sites in `rows`: what a discovery that found every
    site, exactly aligned, would report."""
    one_hots = [nucleotide_one_hot(r["sequence"]) for r in rows]
    found = []
    for identifier, matrix in matrices.items():
        sites = planted_sites(rows, one_hots, identifier, matrix.probabilities.shape[1])
        counts = np.sum(sites, axis=0).T  # 4 x width, rows A, C, G, T
        found.append(Matrix(identifier, matrix.name, counts / counts.sum(0, keepdims=True), len(sites)))
    return found
