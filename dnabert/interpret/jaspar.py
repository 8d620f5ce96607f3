"""Known motifs: JASPAR matrices (pyjaspar's bundled release or any MEME file), MEME files, TOMTOM comparison."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import false_discovery_control

from dnabert.errors import DnabertError

JASPAR_RELEASE = "JASPAR2024"


@dataclass
class Matrix:
    """A named position probability matrix (4 x width, rows A, C, G, T)."""

    identifier: str
    name: str
    probabilities: np.ndarray
    sites: int = 0


@dataclass
class Match:
    """The TOMTOM comparison of one query matrix with one known matrix."""

    query: str
    target: Matrix
    pvalue: float
    qvalue: float
    offset: int
    orientation: str
    rank: int


def jaspar_core_vertebrates(release: str = JASPAR_RELEASE) -> list[Matrix]:
    """The latest version of every JASPAR CORE vertebrate matrix, read offline from pyjaspar's database."""
    from pyjaspar import jaspardb

    matrices = []
    for motif in jaspardb(release=release).fetch_motifs(collection="CORE", tax_group=["vertebrates"]):
        counts = np.array([motif.counts[base] for base in "ACGT"], dtype=np.float64)
        matrices.append(Matrix(motif.matrix_id, motif.name, counts / counts.sum(0, keepdims=True),
                               int(round(counts[:, 0].sum()))))
    return matrices


def read_meme(path: str | Path) -> list[Matrix]:
    """Matrices of a MEME motif file (`MOTIF id [name]` + `letter-probability matrix` blocks)."""
    from memelite.io import read_meme as read_meme_dict

    path = Path(path)
    if not path.is_file():
        raise DnabertError(f"{path}: MEME motif file not found")
    try:
        motifs = read_meme_dict(str(path))
    except (ValueError, AttributeError, IndexError):
        raise DnabertError(f"{path}: not a readable MEME file (MOTIF + letter-probability matrix blocks)") from None
    if not motifs:
        raise DnabertError(f"{path}: no letter-probability matrices found; is this a MEME motif file?")
    matrices = []
    for title, probabilities in motifs.items():
        identifier, _, name = title.partition(" ")
        matrices.append(Matrix(identifier, name or identifier, np.asarray(probabilities, dtype=np.float64)))
    return matrices


def meme_text(matrices: list[Matrix]) -> str:
    """MEME minimal motif format for a list of matrices (uniform background)."""
    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
             "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for matrix in matrices:
        width = matrix.probabilities.shape[1]
        lines.append(f"MOTIF {matrix.identifier} {matrix.name}".rstrip())
        lines.append(f"letter-probability matrix: alength= 4 w= {width} nsites= {matrix.sites} E= 0")
        lines.extend(" ".join(f"{p:.6f}" for p in column) for column in matrix.probabilities.T)
        lines.append("")
    return "\n".join(lines)


def tomtom_matches(queries: list[Matrix], targets: list[Matrix], top: int = 5) -> list[Match]:
    """The `top` best targets of each query by TOMTOM p-value; q-values are Benjamini-Hochberg over each
    query's p-values against all targets (as MEME's tomtom reports them)."""
    if not queries:
        return []
    from memelite import tomtom

    pvalues, _, offsets, _, strands = tomtom([q.probabilities for q in queries],
                                             [t.probabilities for t in targets], n_jobs=1)
    matches = []
    for i, query in enumerate(queries):
        qvalues = false_discovery_control(np.clip(pvalues[i], 0, 1), method="bh")
        for rank, j in enumerate(np.argsort(pvalues[i], kind="stable")[:top], start=1):
            matches.append(Match(query.identifier, targets[j], float(pvalues[i, j]), float(qvalues[j]),
                                 int(offsets[i, j]), "-" if strands[i, j] else "+", rank))
    return matches
