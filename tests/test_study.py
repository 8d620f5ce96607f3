"""`dnabert study`: declared arms x seeds through the training run, chosen on validation, reused when unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, assert_user_error, dnabert_cli

PROMOTERS = ROOT / "tests" / "data" / "promoter_dm3_600.tsv"
RUN = ["model=tiny", "trainer.max_epochs=1", "callbacks.schedule=null", "data.batch_size=32",
       "+trainer.limit_train_batches=3", "logger=csv"]


@pytest.fixture
def splits(tmp_path) -> dict[str, str]:
    """The fixture's first 480 rows to train on (validation held out of them), the last 120 as the test file."""
    header, *rows = PROMOTERS.read_text().splitlines()
    files = {}
    for split, part in (("train", rows[:480]), ("test", rows[480:])):
        files[split] = str(tmp_path / f"{split}.tsv")
        Path(files[split]).write_text("\n".join([header, *part]) + "\n")
    return files


def write_study(folder: Path, splits: dict, **changes) -> Path:
    """A two-arm, two-seed study file with a declared ensemble and the baselines."""
    study = {"task": "prom300", "data": splits, "overrides": RUN,
             "arms": {"slow": ["task.optimizer.lr=1e-4"], "fast": ["task.optimizer.lr=2e-3"]},
             "seeds": [1, 2], "select": "val/auroc", "ensembles": {"fast": 2}, "baselines": True, "threads": 1}
    study.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.yaml").write_text(yaml.safe_dump(study))
    return folder / "study.yaml"


def run_times(folder: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (folder / "results").glob("*/test_metrics.json")}


def test_a_study_runs_chooses_on_validation_and_reuses_unchanged_runs(tmp_path, splits):
    path = write_study(tmp_path / "study", splits)
    first = dnabert_cli(["study", str(path)], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((path.parent / "results.json").read_text())
    assert sorted((run["arm"], run["seed"]) for run in results["runs"]) == [("fast", 1), ("fast", 2), ("slow", 1),
                                                                           ("slow", 2)]
    means = {arm: np.mean([run["val"]["val/auroc"] for run in results["runs"] if run["arm"] == arm])
             for arm in ("slow", "fast")}
    assert results["chosen_on_validation"] == max(means, key=means.get) and results["threads"] == 1
    for run in results["runs"]:  # each run's numbers are its own files'
        folder = path.parent / "results" / f"{run['arm']}-seed{run['seed']}"
        assert run["test"] == json.loads((folder / "test_metrics.json").read_text())
        assert run["val"] == json.loads((folder / "val_metrics.json").read_text())
    assert len(results["ensembles"]["fast"]) == 1 and "4-mer logistic regression" in results["baselines"]
    table = (path.parent / "table.md").read_text()
    assert f"{results['chosen_on_validation']} (chosen on val/auroc)" in table
    chosen = [run for run in results["runs"] if run["arm"] == results["chosen_on_validation"]]
    best = max(chosen, key=lambda run: run["val"]["val/auroc"])
    assert results["best_single_run"] == {"arm": best["arm"], "seed": best["seed"]}
    alone = f"{best['arm']}, seed {best['seed']} alone (the best val/auroc of its seeds)"
    assert f"{alone} | {best['val']['val/auroc']:.4f}" in table
    assert "fast, ensembles of 2 seeds (declared)" in table and "4-mer logistic regression" in table
    assert results["repeated_test_rows"] == {"test_rows": 120, "also_in_train": 0}
    assert "0 of 120 test sequences also occur in the training or validation rows" in table

    before = run_times(path.parent)
    again = dnabert_cli(["study", str(path)], tmp_path)
    assert again.returncode == 0 and again.stdout.count("reused") == 4, again.stdout + again.stderr[-2000:]
    assert run_times(path.parent) == before

    write_study(tmp_path / "study", splits, arms={"slow": ["task.optimizer.lr=1e-4"],
                                                 "fast": ["task.optimizer.lr=3e-3"]})
    changed = dnabert_cli(["study", str(path)], tmp_path)
    assert changed.returncode == 0, changed.stderr[-3000:]
    after = run_times(path.parent)
    assert {run: after[run] == before[run] for run in before} == {"slow-seed1": True, "slow-seed2": True,
                                                                 "fast-seed1": False, "fast-seed2": False}


@pytest.mark.parametrize("changes,fragments", [
    ({"select": "test/auroc"}, ["select=test/auroc", "validation only"]),
    ({"data": {"train": "missing.tsv", "test": "missing.tsv"}}, ["data.train=missing.tsv", "not found"]),
    ({"arms": {"fast": ["task.no_such_option=1"]}}, ["task.no_such_option"]),
    ({"seeds": []}, ["seeds must be a non-empty list"]),
    ({"arms": {"k=3, 30 epochs": ["model.k=3"]}}, ["arm 'k=3, 30 epochs'", "letters, digits"]),
    ({"ensembles": {"fast": 3}}, ["ensembles.fast=3", "2 or more of the 2 seeds"]),
    ({"data": {"cv": str(PROMOTERS), "folds": 1}}, ["data.folds=1", "2 or more folds"]),
    ({"data": {"cv": str(PROMOTERS), "test": str(PROMOTERS)}}, ["or cv (one file) and folds"]),
])
def test_a_bad_study_is_one_line_and_writes_nothing(tmp_path, splits, changes, fragments):
    path = write_study(tmp_path / "study", splits, **changes)
    assert_user_error(dnabert_cli(["study", str(path)], tmp_path), str(path), *fragments)
    assert sorted(p.name for p in path.parent.iterdir()) == ["study.yaml"]


def test_test_rows_that_repeat_a_training_sequence_on_either_strand_are_counted(tmp_path):
    from dnabert.study import repeated_test_rows
    from dnabert.tokenization import reverse_complement_text

    rows = PROMOTERS.read_text().splitlines()[1:]
    (tmp_path / "train.tsv").write_text("sequence\tlabel\n" + "\n".join(rows[:100]) + "\n")
    first, second = (row.split("\t") for row in rows[:2])
    test = [f"{first[0].lower()}\t{first[1]}", f"{reverse_complement_text(second[0])}\t{second[1]}", *rows[100:110]]
    (tmp_path / "test.tsv").write_text("sequence\tlabel\n" + "\n".join(test) + "\n")
    data = {"train": str(tmp_path / "train.tsv"), "val": None, "test": str(tmp_path / "test.tsv")}
    assert repeated_test_rows(data) == {"test_rows": 12, "also_in_train": 2}


def test_a_cross_validated_study_deals_stratified_folds_in_the_files_own_layout(tmp_path):
    rows_file = ROOT / "tests" / "data" / "dnabert_format_6mer_200.tsv"
    study = {"task": "tfbs", "data": {"cv": str(rows_file), "folds": 2}, "overrides": RUN,
             "arms": {"tiny": []}, "seeds": [1, 2], "select": "val/auroc", "ensembles": {"tiny": 2},
             "baselines": True, "threads": 1}
    path = tmp_path / "cv" / "study.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(study))
    first = dnabert_cli(["study", str(path)], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]

    header, *lines = rows_file.read_text().splitlines()
    folds = [(path.parent / "results" / "folds" / f"fold{fold}" / "test.tsv").read_text().splitlines()
             for fold in range(2)]
    assert all(fold[0] == header for fold in folds)  # the 6-mer layout and its header, as the input has them
    assert sorted(folds[0][1:] + folds[1][1:]) == sorted(lines)
    for fold in range(2):
        train = (path.parent / "results" / "folds" / f"fold{fold}" / "train.tsv").read_text().splitlines()[1:]
        assert sorted(train) == sorted(folds[1 - fold][1:])
    positives = [[row.split("\t")[-1] for row in fold[1:]].count("1") for fold in folds]
    assert sorted(positives) == [53, 54]  # the fixture's 107 bound rows, dealt evenly between the folds

    results = json.loads((path.parent / "results.json").read_text())
    assert sorted((run["seed"], run["fold"]) for run in results["runs"]) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert len(results["ensembles"]["tiny"]) == 2 and len(results["baselines"]["4-mer logistic regression"]) == 2
    assert results["repeated_test_rows"]["test_rows"] == 200
    assert "2 folds x 2 seeds" in (path.parent / "table.md").read_text() and results["best_single_run"] is None
    again = dnabert_cli(["study", str(path)], tmp_path)
    assert again.returncode == 0 and again.stdout.count("reused") == 4, again.stdout + again.stderr[-2000:]
