"""Recovery of planted motifs (dnabert/interpret/recovery.py), on hand-worked rows: log-odds matches on either strand,
rank AUROC with ties, per-matrix AUROC, the rank-1 recovery rule, and the planted sites' own matrices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnabert.interpret.jaspar import Matrix
from dnabert.interpret.recovery import (
    auroc,
    oracle_auroc,
    own_matrix_auroc,
    per_matrix_auroc,
    planted_matrix_scores,
    recovery,
    site_matrices,
)
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


def test_the_motif_recovery_study_plants_trains_discovers_and_reports_per_background(tmp_path):
    """The committed declaration on fixtures (its arms' genomes swapped for fixture genomes, smaller sets): each run
    plants its own set from its genome (seeded, the test split from other parts of the contigs), trains, runs
    discovery on its test split by the best model; the report tabulates recovery per background without choosing
    one; a rerun reuses every run."""
    import csv
    import shutil

    from dnabert.genome.shards import open_genome
    from dnabert.interpret.planted import planted_lines, planted_matrices, planted_rows
    from tests.conftest import ROOT, data_file, dnabert_cli
    from tests.test_study import sweep

    study = tmp_path / "motif_recovery"
    shutil.copytree(ROOT / "experiments" / "motif_recovery", study, ignore=shutil.ignore_patterns("record", "results"))
    genomes = {"human_chr22": data_file("hg19_chr22_300kb.fa.gz"), "s_aureus": data_file("staph_aureus_200kb.fa.gz")}
    for arm, genome in genomes.items():
        (study / "arm" / f"{arm}.yaml").write_text(f"# @package _global_\ndata:\n  genome: {genome}\n")
    jaspar = data_file("jaspar2024_subset.meme")
    overrides = [f"data.jaspar={jaspar}", "data.motifs=[MA0139.2,MA0080.7]", "data.train_rows.per_motif=60",
                 "data.train_rows.negatives=120", "data.test_rows.per_motif=30", "data.test_rows.negatives=60",
                 "trainer.max_epochs=1", "callbacks.schedule=null", "model.k=3",
                 "callbacks.motif_recovery.methods=[attention]", f"paths.cache_dir={tmp_path / 'cache'}",
                 "seed=1", f"hydra.sweep.dir={tmp_path / 'runs'}"]
    result = sweep(study, *overrides)
    assert result.returncode == 0 and "2 to run" in result.stdout, result.stderr[-3000:]
    again = sweep(study, *overrides)
    assert again.returncode == 0 and "2 finished as declared (reused), 0 to run" in again.stdout, again.stderr[-2000:]

    planted = tmp_path / "runs" / "s_aureus-seed1" / "data"
    matrices = planted_matrices(jaspar, ["MA0139.2", "MA0080.7"])
    shards = open_genome(genomes["s_aureus"], tmp_path / "cache", progress=False)
    expected = planted_rows(shards, {i: m.probabilities for i, m in matrices.items()}, 30, 60, 80, 1001,
                            part=(0.8, 1.0))
    assert (planted / "test.tsv").read_text() == "\n".join(planted_lines(expected)) + "\n"
    test = {r["sequence"] for r in csv.DictReader((planted / "test.tsv").read_text().splitlines(), delimiter="\t")}
    train = {r["sequence"] for r in csv.DictReader((planted / "train.tsv").read_text().splitlines(), delimiter="\t")}
    assert len(train) == 240 and not test & train

    result = dnabert_cli(["study", str(study), *overrides, "--out", str(tmp_path / "report")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "report" / "results.json").read_text())
    assert record["chosen_on_validation"] is None and record["best_single_run"] is None
    width = matrices["MA0080.7"].probabilities.shape[1]
    assert record["motif_recovery"]["matrices"]["MA0080.7"] == pytest.approx(
        {"tf": "Spi1", "width": width, "gc": matrices["MA0080.7"].probabilities[1:3].sum(0).mean()})
    assert len(record["runs"]) == 2
    for run in record["runs"]:
        recovered = run["motif_recovery"]
        assert recovered["test_metrics"] == run["test"]
        assert [m["jaspar_id"] for m in recovered["methods"]["attention"]] == ["MA0139.2", "MA0080.7"]
        assert all(m["recovered"] for m in recovered["planted_sites"])  # the sites themselves pass the rule
        assert 0.5 < recovered["planted_matrices_auroc"] <= 1 and len(recovered["val_auroc_by_epoch"]) == 1
    table = (tmp_path / "report" / "table.md").read_text()
    assert "chosen on" not in table and f"| MA0080.7 | Spi1 | {width} |" in table
    assert "| human_chr22 | " in table and "| s_aureus | " in table
