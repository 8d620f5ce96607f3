"""Studies as Hydra sweeps: declared arms x seeds run by `python train.py -m -cd FOLDER -cn study` on any launcher,
finished runs reused by the run store's one rule, and `dnabert study FOLDER` choosing on validation only."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, assert_user_error, dnabert_cli, in_process, run

PROMOTERS = ROOT / "tests" / "data" / "promoter_dm3_600.tsv"
ARMS = {"slow": {"task": {"optimizer": {"lr": 1e-4}}}, "fast": {"task": {"optimizer": {"lr": 2e-3}}}}


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> dict[str, str]:
    """The fixture's first 480 rows to train on (validation held out of them), the last 120 as the test file."""
    folder = tmp_path_factory.mktemp("splits")
    header, *rows = PROMOTERS.read_text().splitlines()
    files = {}
    for split, part in (("train", rows[:480]), ("test", rows[480:])):
        files[split] = str(folder / f"{split}.tsv")
        Path(files[split]).write_text("\n".join([header, *part]) + "\n")
    return files


def write_study(folder: Path, data: dict, arms: dict | None = None, seeds: str = "1,2", study: dict | None = None,
                task: str = "prom300", extra: dict | None = None) -> Path:
    """A study folder: study.yaml (tiny runs of 3 steps, one thread) and one file per arm."""
    arms = ARMS if arms is None else arms
    declaration = {
        "defaults": ["train", "_self_", {"arm": next(iter(arms))}, {"override task": task},
                     {"override model": "tiny"}, {"override hydra/sweeper": "study"}],
        "threads": 1, "data": {**data, "batch_size": 32}, "logger": {"csv": {"name": "csv"}},
        "trainer": {"max_epochs": 1, "limit_train_batches": 3},
        "callbacks": {"schedule": None, "progress_bar": None},
        "study": {"select": "val/auroc", "ensembles": {"fast": 2} if "fast" in arms else {}, "baselines": True,
                  **(study or {})},
        "hydra": {"mode": "MULTIRUN", "sweeper": {"params": {"arm": ",".join(arms), "seed": seeds, **(extra or {})}},
                  "sweep": {"dir": str(folder / "results"),
                            "subdir": "${hydra.runtime.choices.arm}-seed${seed}"
                            + ("-fold${data.fold}" if extra else "")}}}
    (folder / "arm").mkdir(parents=True, exist_ok=True)
    (folder / "study.yaml").write_text(yaml.safe_dump(declaration, sort_keys=False))
    for name, values in arms.items():
        (folder / "arm" / f"{name}.yaml").write_text("# @package _global_\n" + yaml.safe_dump(values))
    return folder


def sweep(folder: Path, *overrides: str, **kwargs) -> subprocess.CompletedProcess:
    """`python train.py -m -cd FOLDER -cn study OVERRIDES` from the folder's parent."""
    return run([sys.executable, str(ROOT / "train.py"), "-m", "-cd", str(folder), "-cn", "study", *overrides],
               folder.parent, **kwargs)


def sweep_in_process(folder: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`sweep` in this process (seconds, not an interpreter start): for sweeps that stop before any run."""
    from dnabert.train import run as train_main

    argv = ["train.py", "-m", "-cd", str(folder), "-cn", "study", *overrides]
    saved = sys.argv
    try:
        sys.argv = argv
        return in_process(train_main, folder.parent, argv)
    finally:
        sys.argv = saved


def finish_times(folder: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (folder / "results").glob("*/metrics.json")}


def assert_same_report(first: Path, second: Path) -> None:
    """Two reports of one study: the same runs, choice, ensembles and baselines, metrics equal to 1e-6."""
    a, b = (json.loads((folder / "results.json").read_text()) for folder in (first, second))
    assert a["chosen_on_validation"] == b["chosen_on_validation"]
    assert a["best_single_run"] == b["best_single_run"]
    for x, y in zip(a["runs"], b["runs"], strict=True):
        assert (x["arm"], x["seed"], x["identity"]["threads"]) == (y["arm"], y["seed"], y["identity"]["threads"])
        for stage in ("val", "test"):
            assert x[stage].keys() == y[stage].keys()
            assert all(abs(x[stage][key] - y[stage][key]) <= 1e-6 for key in x[stage]), (x[stage], y[stage])
    for section in ("ensembles", "baselines"):
        for name in a[section]:
            for x, y in zip(a[section][name], b[section][name], strict=True):
                assert all(abs(x[key] - y[key]) <= 1e-6 for key in x), (name, x, y)


def test_a_study_runs_on_any_launcher_reports_on_validation_and_reuses_finished_runs(tmp_path, splits):
    folder = write_study(tmp_path / "basic", splits)
    first = sweep(folder)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 runs declared, 0 finished as declared (reused), 4 to run" in first.stdout
    report = dnabert_cli(["study", str(folder)], tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    results = json.loads((folder / "results.json").read_text())
    assert sorted((r["arm"], r["seed"]) for r in results["runs"]) == [("fast", 1), ("fast", 2), ("slow", 1),
                                                                       ("slow", 2)]
    means = {arm: np.mean([r["val"]["val/auroc"] for r in results["runs"] if r["arm"] == arm]) for arm in ARMS}
    assert results["chosen_on_validation"] == max(means, key=means.get) and results["threads"] == 1
    for record in results["runs"]:  # each run's numbers are its own files'
        run_dir = folder / "results" / f"{record['arm']}-seed{record['seed']}"
        assert record["test"] == json.loads((run_dir / "test_metrics.json").read_text())
        assert record["val"] == json.loads((run_dir / "val_metrics.json").read_text())
        assert record["identity"] == json.loads((run_dir / "provenance.json").read_text())["identity"]
    chosen = [r for r in results["runs"] if r["arm"] == results["chosen_on_validation"]]
    best = max(chosen, key=lambda r: r["val"]["val/auroc"])
    assert results["best_single_run"] == {"arm": best["arm"], "seed": best["seed"]}
    table = (folder / "table.md").read_text()
    assert f"{best['arm']}, seed {best['seed']} alone (the best val/auroc of its seeds) | " \
           f"{best['val']['val/auroc']:.4f}" in table
    assert len(results["ensembles"]["fast"]) == 1 and "fast, ensembles of 2 seeds (declared)" in table
    assert "4-mer logistic regression" in results["baselines"] and "4-mer logistic regression" in table
    assert results["repeated_test_rows"] == {"test_rows": 120, "also_in_train": 0}

    before = finish_times(folder)
    again = sweep(folder)
    assert again.returncode == 0 and "4 finished as declared (reused), 0 to run" in again.stdout, again.stderr[-2000:]
    assert finish_times(folder) == before

    parallel = write_study(tmp_path / "joblib", splits)
    result = sweep(parallel, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    assert dnabert_cli(["study", str(parallel)], tmp_path).returncode == 0
    assert_same_report(folder, parallel)

    (folder / "arm" / "fast.yaml").write_text("# @package _global_\ntask:\n  optimizer:\n    lr: 0.003\n")
    changed = sweep(folder)
    assert changed.returncode == 0 and "2 finished as declared (reused), 2 to run" in changed.stdout
    after = finish_times(folder)
    assert {name: after[name] == before[name] for name in before} == {"slow-seed1": True, "slow-seed2": True,
                                                                     "fast-seed1": False, "fast-seed2": False}


def test_a_run_killed_half_way_is_not_reused(tmp_path, splits):
    folder = write_study(tmp_path / "killed", splits, arms={"slow": ARMS["slow"]}, seeds="1",
                         study={"ensembles": {}})
    args = [sys.executable, str(ROOT / "train.py"), "-m", "-cd", str(folder), "-cn", "study",
            "trainer.limit_train_batches=200", "trainer.max_epochs=3"]
    run_dir = folder / "results" / "slow-seed1"
    with subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        deadline = time.monotonic() + 120
        while not list(run_dir.glob("csv/*/metrics.csv")) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    assert (run_dir / "provenance.json").is_file() and not (run_dir / "metrics.json").exists()
    assert_user_error(dnabert_cli(["study", str(folder)], tmp_path), "1 of 1 runs have not finished")
    again = sweep(folder, "trainer.limit_train_batches=200", "trainer.max_epochs=3")
    assert again.returncode == 0 and "0 finished as declared (reused), 1 to run" in again.stdout, again.stderr[-2000:]
    assert (run_dir / "metrics.json").is_file()
    assert len(list(run_dir.glob("csv/version_*"))) == 1  # trained afresh in a cleared directory, not resumed


def test_a_cross_validated_study_tests_every_row_once_in_stratified_folds(tmp_path):
    from dnabert.study import composed_study, labelled_splits

    rows_file = ROOT / "tests" / "data" / "dnabert_format_6mer_200.tsv"
    folder = write_study(tmp_path / "cv", {"train": str(rows_file), "folds": 2}, arms={"tiny": {}}, task="tfbs",
                         study={"ensembles": {"tiny": 2}}, extra={"data.fold": "0,1"})
    result = sweep(folder)
    assert result.returncode == 0, result.stderr[-3000:]
    study = composed_study(folder, [])
    assert sorted((run.seed, run.fold) for run in study.runs) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    tests = [labelled_splits(run.config)[1] for run in study.runs if run.seed == 1]
    header, *lines = rows_file.read_text().splitlines()
    assert sorted(tests[0].lines + tests[1].lines) == list(range(2, len(lines) + 2))  # every row tested once
    assert sorted(label[0] for fold in tests for label in fold.labels).count("1") == 107
    assert sorted([label[0] for label in fold.labels].count("1") for fold in tests) == [53, 54]  # dealt evenly
    for first_seed, test in zip([job for job in study.runs if job.seed == 1], tests):
        assert json.loads((first_seed.directory / "test_metrics.json").read_text())["test/auroc"] >= 0
        assert labelled_splits(first_seed.config)[0].lines == sorted(set(range(2, len(lines) + 2)) - set(test.lines))
    assert dnabert_cli(["study", str(folder)], tmp_path).returncode == 0
    results = json.loads((folder / "results.json").read_text())
    assert len(results["ensembles"]["tiny"]) == 2 and len(results["baselines"]["4-mer logistic regression"]) == 2
    assert results["repeated_test_rows"]["test_rows"] == 200 and results["best_single_run"] is None
    assert "2 folds x 2 seeds" in (folder / "table.md").read_text()


@pytest.mark.parametrize("change,overrides,fragments", [
    ({"study": {"select": "test/auroc"}}, [], ["study.select=test/auroc", "validation only"]),
    ({"arms": {"slow": ARMS["slow"], "fast": {"task": {"no_such_option": 1}}}}, [],
     ["arm fast", "task.no_such_option is not a key"]),
    ({}, ["arm=slow,huge"], ["arm huge", "Could not find 'arm/huge'"]),
    ({"arms": {"slow": ARMS["slow"], "fast": {"defaults": [{"override /model": "huge"}]}}}, [],
     ["arm fast", "Could not find 'model/huge'"]),
    ({}, ["hydra/launcher=ray"], ["hydra/launcher/ray", "pip install hydra-ray-launcher"]),
    ({"study": {"ensembles": {"fast": 3}}}, [], ["study.ensembles.fast=3", "2 or more of the 2 seeds"]),
    ({"study": {"ensembles": {"fats": 2}}}, [], ["study.ensembles.fats", "no arm of that name"]),
])
def test_a_bad_study_is_one_line_and_submits_nothing(tmp_path, splits, change, overrides, fragments):
    folder = write_study(tmp_path / "bad", splits, **change)
    written = sorted(path.relative_to(folder) for path in folder.rglob("*"))
    assert_user_error(sweep_in_process(folder, *overrides), *fragments)
    assert sorted(path.relative_to(folder) for path in folder.rglob("*")) == written


def test_a_report_of_a_study_with_no_finished_run_is_one_line(tmp_path, splits):
    folder = write_study(tmp_path / "unrun", splits)
    assert_user_error(dnabert_cli(["study", str(folder)], tmp_path), "4 of 4 runs have not finished",
                      f"python train.py -m -cd {folder} -cn study")
    assert_user_error(dnabert_cli(["study", str(tmp_path)], tmp_path), "no study.yaml here")
    assert not (folder / "results.json").exists() and not (folder / "results").exists()


def test_test_rows_that_repeat_a_training_sequence_on_either_strand_are_counted(tmp_path):
    from dnabert.data.labelled_layouts import read_labelled
    from dnabert.study import repeated_test_rows
    from dnabert.tokenization import reverse_complement_text

    rows = PROMOTERS.read_text().splitlines()[1:]
    (tmp_path / "train.tsv").write_text("sequence\tlabel\n" + "\n".join(rows[:100]) + "\n")
    first, second = (row.split("\t") for row in rows[:2])
    test = [f"{first[0].lower()}\t{first[1]}", f"{reverse_complement_text(second[0])}\t{second[1]}", *rows[100:110]]
    (tmp_path / "test.tsv").write_text("sequence\tlabel\n" + "\n".join(test) + "\n")
    counts = repeated_test_rows(read_labelled(tmp_path / "train.tsv"), read_labelled(tmp_path / "test.tsv"))
    assert counts == {"test_rows": 12, "also_in_train": 2}


@pytest.mark.parametrize("name,runs", [("splice_primate", 18), ("tfbs_dnabert_sample", 18), ("tfbs_oct4_mafk", 6),
                                       ("promoter_dm3", 6), ("motif_recovery", 6)])
def test_every_committed_study_composes_with_its_declared_arms(name, runs):
    from dnabert.study import ARM, composed_study

    study = composed_study(ROOT / "experiments" / name, [])
    assert len(study.runs) == runs and len({run.directory for run in study.runs}) == runs
    assert sorted(study.arms) == sorted(path.stem for path in (study.folder / ARM).glob("*.yaml"))
    assert {run.config["threads"] for run in study.runs} == {1}


def test_a_script_s_single_run_is_trained_once_and_again_only_when_it_changed(tmp_path, splits):
    from dnabert.run_store import train_once

    overrides = ["task=prom300", "model=tiny", f"data.train={splits['train']}", f"data.test={splits['test']}",
                 "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "callbacks.schedule=null", "logger=csv",
                 f"paths.cache_dir={tmp_path / 'cache'}", "threads=1"]
    out = tmp_path / "run"
    assert train_once(overrides, out) is not None and (out / "test_metrics.json").is_file()
    assert not (out / "hydra").exists()
    finished = (out / "metrics.json").stat().st_mtime_ns
    assert train_once(overrides, out) is None and (out / "metrics.json").stat().st_mtime_ns == finished
    (out / "metrics.json").unlink()  # as a run killed before its end leaves it
    assert train_once(overrides, out) is not None
    assert train_once([*overrides, "seed=7"], out) is not None
    assert json.loads((out / "provenance.json").read_text())["config"]["seed"] == 7
