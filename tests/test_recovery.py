"""Recovery of planted motifs (dnabert/interpret/recovery.py), on hand-worked rows: log-odds matches on either strand,
rank AUROC with ties, per-matrix AUROC, the rank-1 recovery rule, and the planted sites' own matrices."""

from __future__ import annotations

import numpy as np
import pytest

from dnabert.interpret.jaspar import Matrix
from dnabert.interpret.recovery import (auroc, oracle_auroc, own_matrix_auroc, per_matrix_auroc,
                                        planted_matrix_scores, recovery, site_matrices)
from dnabert.tokenization import reverse_complement_text

BASES = "ACGT"


def consensus_matrix(identifier: str, name: str, consensus: str, top: float = 0.97) -> Matrix:
    """A 4 x width matrix giving `top` to each consensus base and the rest evenly to the others."""
    probabilities = np.full((4, len(consensus)), (1 - top) / 3)
    for column, base in enumerate(consensus):
        probabilities[BASES.index(base), column] = top
    return Matrix(identifier, name, probabilities)


def row(sequence: str, label: str, motif: str = "", start: int = 0, strand: str = "+") -> dict:
    return {"sequence": sequence, "label": label, "motif": motif, "start": str(start), "strand": strand}


AACG = consensus_matrix("MA0001.1", "ONE", "AACG")
GGTA = consensus_matrix("MA0002.1", "TWO", "GGTA")
ROWS = [row("TTTAACGTTT", "1", AACG.identifier, 3), row("TTTTT" + reverse_complement_text("AACG") + "T", "1",
                                                         AACG.identifier, 5, "-"),
        row("TGGTATTTTT", "1", GGTA.identifier, 1), row("TTTTTTTTTT", "0"), row("CCCCCCCCCC", "0")]


def test_a_matrix_scores_its_site_on_either_strand_alike():
    scores = planted_matrix_scores(ROWS, {AACG.identifier: AACG})[AACG.identifier]
    best = 4 * np.log((0.97 + 1e-3) / 0.25)
    assert scores[0] == pytest.approx(best, rel=1e-6) and scores[1] == pytest.approx(best, rel=1e-6)
    assert scores[3] < best - 1 and scores[4] < best - 1


def test_auroc_counts_ties_as_half():
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True])) == pytest.approx(0.75)
    assert auroc(np.array([1.0, 1.0]), np.array([True, False])) == pytest.approx(0.5)


def test_per_matrix_auroc_scores_each_matrix_s_positives_against_every_negative():
    scores = np.array([0.9, 0.8, 0.1, 0.5, 0.4])  # AACG's rows above the negatives, GGTA's below
    assert per_matrix_auroc(ROWS, scores, [AACG.identifier, GGTA.identifier]) == {AACG.identifier: 1.0,
                                                                                   GGTA.identifier: 0.0}
    planted = planted_matrix_scores(ROWS, {AACG.identifier: AACG, GGTA.identifier: GGTA})
    assert own_matrix_auroc(ROWS, planted) == {AACG.identifier: 1.0, GGTA.identifier: 1.0}
    assert oracle_auroc(ROWS, planted) == pytest.approx(1.0)


def test_a_matrix_is_recovered_only_by_a_rank_1_match_of_itself_or_its_tf_under_the_cutoff(tmp_path):
    other = consensus_matrix("MA0003.1", "THREE", "CCGG")
    header = "motif\trank\tjaspar_id\tjaspar_name\tq_value\n"
    lines = ["m1\t2\tMA0001.1\tONE\t0.001", "m2\t1\tMA9999.1\tone\t0.004",  # ONE: rank 1 by another ONE matrix
             "m3\t4\tMA0002.1\tTWO\t0.0001",  # TWO: found, but only at rank 4
             "m4\t1\tMA0003.1\tTHREE\t0.02"]  # THREE: rank 1, above the q cutoff
    matches = tmp_path / "jaspar_matches.tsv"
    matches.write_text(header + "\n".join(lines) + "\n")
    rows = {r["jaspar_id"]: r for r in recovery(matches, {m.identifier: m for m in (AACG, GGTA, other)}, 0.01)}
    assert rows["MA0001.1"] | {"q_value": 0} == {"jaspar_id": "MA0001.1", "tf": "ONE", "motif": "m2",
                                                 "matched": "MA9999.1", "rank": 1, "q_value": 0, "recovered": True,
                                                 "recovered_top3": True}
    assert not rows["MA0002.1"]["recovered"] and not rows["MA0002.1"]["recovered_top3"]
    assert rows["MA0002.1"]["rank"] == 4
    assert not rows["MA0003.1"]["recovered"] and rows["MA0003.1"]["motif"] == ""


def test_the_planted_sites_give_the_planted_consensus_read_on_the_strand_written():
    (found,) = site_matrices(ROWS, {AACG.identifier: AACG})
    assert found.identifier == AACG.identifier and found.sites == 2
    assert "".join(BASES[i] for i in found.probabilities.argmax(0)) == "AACG"
    assert np.allclose(found.probabilities.max(0), 1.0)
