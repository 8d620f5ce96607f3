"""Benchmark suites: small local copies of a GUE, a GenomicBenchmarks and a Nucleotide Transformer task, in each
suite's published layout, built from real sequences in tests/data, run by `dnabert benchmark` with 2 seeds."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dnabert.cli import main as dnabert_main
from dnabert.data.finetuning import LabelledDataModule
from dnabert.data.labelled_layouts import read_labelled
from tests.conftest import data_file

TASKS = {"gue": "prom_300_all", "genomic_benchmarks": "human_nontata_promoters", "nt": "splice_sites_all"}


def sample(path: Path, count: int, seed: int) -> list[tuple[str, str]]:
    """`count` (sequence, label) rows of a labelled TSV, drawn evenly from its classes."""
    rows = read_labelled(path)
    pairs = [(sequence, labels[0]) for sequence, labels in zip(rows.sequences, rows.labels)]
    rng = np.random.default_rng(seed)
    classes = sorted({label for _, label in pairs})
    chosen = []
    for label in classes:
        members = [pair for pair in pairs if pair[1] == label]
        chosen += [members[i] for i in rng.permutation(len(members))[: count // len(classes)]]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def build_suites(root: Path) -> dict[str, Path]:
    """{suite: root of its local copy}: GUE prom_300_all (fly promoters, 300 nt: train/dev/test.csv),
    GenomicBenchmarks human_nontata_promoters (Oct4 vs MafK peaks, 200 nt: one file per sequence in class
    folders) and NT splice_sites_all (primate splice junctions, 60 nt: FASTA with `|label` headers)."""
    promoters = data_file("promoter_dm3_600.tsv")
    gue = root / "GUE" / "prom" / "prom_300_all"
    gue.mkdir(parents=True)
    pool = sample(promoters, 160, seed=0)
    for split, rows in (("train", pool[:96]), ("dev", pool[96:128]), ("test", pool[128:])):
        with open(gue / f"{split}.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([("sequence", "label"), *rows])
    peaks = data_file("oct4_mafk_train_400.tsv")
    pool = sample(peaks, 128, seed=0)
    for split, rows in (("train", pool[:96]), ("test", pool[96:])):
        for i, (sequence, label) in enumerate(rows, start=0 if split == "train" else 96):
            folder = root / "genomic_benchmarks" / TASKS["genomic_benchmarks"] / split / (
                "positive" if label == "1" else "negative")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}.txt").write_text(sequence)
    splice = data_file("splice_primate_train.tsv")
    codes = {"ei": "1", "ie": "2", "n": "0"}
    pool = sample(splice, 132, seed=0)
    nt = root / "nt" / TASKS["nt"]
    nt.mkdir(parents=True)
    for split, rows in (("train", pool[:99]), ("test", pool[99:])):
        (nt / f"{split}.fna").write_text("".join(f">{split}_{i}|{codes[label]}\n{sequence}\n"
                                                 for i, (sequence, label) in enumerate(rows)))
    return {"gue": root / "GUE", "genomic_benchmarks": root / "genomic_benchmarks", "nt": root / "nt"}


@pytest.fixture(scope="module")
def suites(tmp_path_factory) -> dict[str, Path]:
    return build_suites(tmp_path_factory.mktemp("suites"))


def test_suite_layouts_read_as_labelled_sets(suites):
    """Each layout reads back with the right classes, and a suite without validation rows gets them from train."""
    gb = suites["genomic_benchmarks"] / TASKS["genomic_benchmarks"]
    rows = read_labelled(gb / "train")
    assert len(rows.sequences) == 96 and set(map(tuple, rows.labels)) == {("negative",), ("positive",)}
    assert all(len(sequence) == 200 for sequence in rows.sequences)
    nt = read_labelled(suites["nt"] / TASKS["nt"] / "train.fna")
    assert {labels[0] for labels in nt.labels} == {"0", "1", "2"} and all(len(s) == 60 for s in nt.sequences)
    data = LabelledDataModule(train=str(gb / "train"), test=str(gb / "test"), seed=3)
    data.setup()
    val, train, test = (set(data.splits[s].names) for s in ("val", "train", "test"))
    assert len(val) == 10 and len(train) == 86 and not val & train
    assert val <= set(rows.names) and not val & test


def test_benchmark_command_runs_three_suites_with_two_seeds(suites, tmp_path):
    tiny = ["model=tiny", "trainer.max_epochs=1", "callbacks.schedule=null", "data.batch_size=16",
            "task.optimizer.lr=1e-3", "callbacks.progress_bar=null", "logger=csv",
            f"paths.cache_dir={tmp_path / 'cache'}"]
    for suite, task in TASKS.items():
        out = tmp_path / suite
        argv = ["benchmark", suite, *tiny, "--init", "random", "--seeds", "2", "--tasks", task,
                "--root", str(suites[suite]), "--out", str(out)]
        dnabert_main(argv)
        with open(out / "results.tsv") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        assert [(r["suite"], r["task"]) for r in rows] == [(suite, task)]
        row = rows[0]
        assert row["metric"] == {"gue": "mcc", "genomic_benchmarks": "accuracy", "nt": "mcc"}[suite]
        per_seed = dict(item.split(":") for item in row["per_seed"].split())
        assert sorted(per_seed) == ["1", "2"] and row["seeds"] == "2"
        values = [float(v) for v in per_seed.values()]
        assert all(math.isfinite(v) for v in values)
        assert float(row["mean"]) == pytest.approx(np.mean(values), abs=1e-4)
        assert float(row["sd"]) == pytest.approx(np.std(values, ddof=1), abs=1e-4) and math.isfinite(float(row["sd"]))
        markdown = (out / "results.md").read_text().splitlines()
        assert markdown[0].startswith("| task | metric | mean ± sd") and markdown[2].startswith(f"| {task} |")
        assert (out / "results.png").stat().st_size > 0 and (out / "results.svg").stat().st_size > 0
        for seed in (1, 2):
            assert (out / task / f"seed{seed}" / "checkpoints" / "best.hf" / "config.json").is_file()
    # a finished suite is read back, not trained again
    finished = (tmp_path / "nt" / TASKS["nt"] / "seed1" / "test_metrics.json").stat().st_mtime_ns
    dnabert_main(["benchmark", "nt", *tiny, "--init", "random", "--seeds", "2", "--root", str(suites["nt"]),
                  "--tasks", TASKS["nt"], "--out", str(tmp_path / "nt")])
    assert (tmp_path / "nt" / TASKS["nt"] / "seed1" / "test_metrics.json").stat().st_mtime_ns == finished
    dnabert_main(["benchmark", "nt", *tiny, "trainer.max_epochs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                  "--init", "random", "--seeds", "2", "--root", str(suites["nt"]), "--tasks", TASKS["nt"],
                  "--out", str(tmp_path / "nt")])  # ... unless its config differs: then it is trained again
    retrained = tmp_path / "nt" / TASKS["nt"] / "seed1"
    assert (retrained / "test_metrics.json").stat().st_mtime_ns != finished
    assert json.loads((retrained / "provenance.json").read_text())["config"]["trainer"]["max_epochs"] == 2
    assert (tmp_path / "nt" / "multirun.yaml").read_text().count("JoblibLauncher") == 1  # on the launcher given


def test_benchmark_names_an_unknown_task(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        dnabert_main(["benchmark", "gue", "--init", "random", "--tasks", "prom_999", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "gue has no task 'prom_999'" in capsys.readouterr().err


def test_fasta_with_a_label_table_reads_like_the_table(tmp_path):
    """Issue 3's third input form: sequences in FASTA, labels in a table keyed by record name (any order)."""
    table = read_labelled(data_file("splice_primate_test.tsv"))
    fasta = tmp_path / "test.fa"
    fasta.write_text("".join(f">s{i} splice\n{s[:30]}\n{s[30:].lower()}\n" for i, s in enumerate(table.sequences)))
    labels = tmp_path / "labels.csv"
    rows_last_first = reversed(list(enumerate(table.labels)))
    labels.write_text("label,name\n" + "".join(f"{values[0]},s{i}\n" for i, values in rows_last_first))
    rows = read_labelled(fasta, labels=labels)
    assert rows.sequences == table.sequences and rows.labels == table.labels
    assert rows.names[:2] == ["s0", "s1"] and rows.places[1] == f"{fasta} line 4"


def test_every_benchmark_preset_composes_to_its_suite_layout():
    """All 55 tasks (GUE 28, GenomicBenchmarks 9, NT 18) resolve to their suite's files and metric."""
    from dnabert.benchmarks import suite_tasks
    from dnabert.config import composed

    layout = {"gue": ("train.csv", "dev.csv", "test.csv"), "genomic_benchmarks": ("train", None, "test"),
              "nt": ("train.fna", None, "test.fna")}
    counts = {}
    for suite, files in layout.items():
        counts[suite] = len(suite_tasks(suite))
        for task in suite_tasks(suite):
            cfg = composed([f"benchmark={suite}", f"benchmark.task={task}", "benchmark.root=/b", "paths.output_dir=o"])
            data = cfg.data
            assert cfg.task._target_.endswith("SequenceClassifier") and cfg.benchmark.task == task
            assert [Path(p).name if p else None for p in (data.train, data.val, data.test)] == list(files)
            assert data.train.startswith(f"/b/{cfg.benchmark.path}/") and cfg.benchmark.metric in (
                "mcc", "accuracy", "f1")
    assert counts == {"gue": 28, "genomic_benchmarks": 9, "nt": 18}
