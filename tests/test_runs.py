"""`dnabert runs`: a real 2 x 2 sweep compared offline in one table and one plot."""

from __future__ import annotations

import csv
import json
import sys

import pytest

from tests.conftest import ROOT, assert_user_error, data_file, dnabert_cli, run


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Four tiny fine-tuning runs: learning rate x hidden dropout, two validations per epoch."""
    cwd = tmp_path_factory.mktemp("sweep")
    result = run([sys.executable, str(ROOT / "train.py"), "-m", "callbacks.progress_bar=null", "task=classify",
                  "model=tiny", "data.max_tokens=64", "trainer.max_epochs=2", "callbacks.schedule=null",
                  "+trainer.limit_train_batches=4", "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2",
                  "trainer.val_check_interval=2", f"data.train={data_file('splice_primate_train.tsv')}",
                  f"data.test={data_file('splice_primate_test.tsv')}", "logger=csv", f"paths.cache_dir={cwd / 'cache'}",
                  "task.optimizer.lr=1e-4,1e-3", "task.hidden_dropout_prob=0,0.1", f"hydra.sweep.dir={cwd / 'sweep'}"],
                 cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "sweep"


def test_runs_tabulates_what_differs_sorted_by_the_optimised_metric_and_plots_the_curves(sweep, tmp_path):
    result = dnabert_cli(["runs", str(sweep)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "config values that differ: task.hidden_dropout_prob, task.optimizer.lr" in result.stdout
    with open(sweep / "runs.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert sorted(row["run"] for row in rows) == ["0", "1", "2", "3"]
    finals = [float(row["final val/loss"]) for row in rows]
    assert finals == sorted(finals)
    for row in rows:
        job = sweep / row["run"]
        assert float(row["final val/loss"]) == pytest.approx(json.loads((job / "metrics.json").read_text())["val/loss"],
                                                             rel=1e-3)
        assert float(row["test/loss"]) == pytest.approx(
            json.loads((job / "test_metrics.json").read_text())["test/loss"], rel=1e-3)
        config = json.loads((job / "provenance.json").read_text())["config"]
        assert float(row["task.optimizer.lr"]) == config["task"]["optimizer"]["lr"]
        logged = [float(r["val/loss"]) for r in csv.DictReader(open(job / "csv" / "version_0" / "metrics.csv"))
                  if r["val/loss"]]
        # 4 validations during training; the best checkpoint's validation after it is not a point of the curve
        assert float(row["best val/loss"]) == pytest.approx(min(logged[:4]), rel=1e-3) and len(logged) == 5
    assert (sweep / "runs.md").read_text() in result.stdout
    for suffix in ("png", "svg"):
        assert (sweep / f"curves.{suffix}").stat().st_size > 1000


def test_runs_of_named_directories_writes_where_asked(sweep, tmp_path):
    result = dnabert_cli(["runs", str(sweep / "0"), str(sweep / "3"), "--out-dir", str(tmp_path / "cmp"),
                          "--metric", "val/auroc"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 runs, sorted by final val/auroc (maximised)" in result.stdout
    assert {path.name for path in (tmp_path / "cmp").iterdir()} == {"runs.md", "runs.tsv", "curves.png", "curves.svg"}


def test_runs_on_a_folder_without_runs_is_one_line(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    result = dnabert_cli(["runs", str(tmp_path / "empty")], tmp_path)
    assert result.returncode == 2
    assert_user_error(result, str(tmp_path / "empty"), "no runs here")
    assert list((tmp_path / "empty").rglob("*.*")) == []
