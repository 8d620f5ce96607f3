"""Declared fine-tuning studies (`dnabert study CONFIG`): arms x seeds through the training run, reference models
on the same splits, ensembles declared in advance, and the arm chosen on validation only.

A study is one YAML file in its experiment folder:

    task: prom300                        # the train.py task preset of every run
    data: {train: T.tsv, val: null, test: S.tsv}  # or {cv: ALL.tsv, folds: 3}: stratified folds, each tested once
    overrides: [model=tiny]              # train.py overrides of every run
    arms:                                # name: overrides of that arm (model.init, levers, ...)
      random: [model.init=random]
      pretrained: [model.init=runs/hg38/checkpoints/last.hf]
    seeds: [1, 2, 3]
    select: val/auroc                    # the validation metric that chooses the arm (test never chooses)
    ensembles: {random: 3}               # arm: seeds per ensemble (mean class probabilities of their best models)
    baselines: true                      # logistic regressions on k-mer counts / one-hot (the same splits)
    threads: 1                           # OMP/torch threads of every run (recorded: results depend on it)

Runs go to `results/<arm>-seed<S>/` (`<arm>-seed<S>-fold<F>/` with cv) beside the file (ignored by git); a run is
reused only when its resolved config, the checksums of its data and of its model.init, and the thread count are the
ones it would run with now. With cv the rows of the one file are dealt once into stratified folds (the same folds for
every arm and seed, written under `results/folds/` in the file's own layout); each run trains on the other folds
(validation held out of them) and is tested on its own; baselines and ensembles are scored fold by fold.
`results.json` (every run's validation and test metrics, config hash, minutes, and how many test sequences repeat a
training one) and `table.md` are written beside the study file, to be committed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dnabert.atomic import write_json_atomic, write_text_atomic
from dnabert.data.labelled import LabelledRows
from dnabert.errors import DnabertError, read_json
from dnabert.provenance import path_checksum, resolved_config

KEYS = {"task", "data", "overrides", "arms", "seeds", "select", "ensembles", "baselines", "threads"}
SPLITS = ("train", "val", "test")
FOLD_SEED = 0
"""Seed of the cross-validation folds' dealing (the run seeds vary training only, so arms share folds)."""
ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class Study:
    """A study file, checked: what runs, how the arm is chosen, what is reported beside."""

    path: Path
    task: str
    data: dict[str, str | None]
    folds: int
    """Cross-validation folds of data['cv'] (0: data names train/test files)."""
    overrides: list[str]
    arms: dict[str, list[str]]
    seeds: list[int]
    select: str
    ensembles: dict[str, int]
    baselines: bool
    threads: int

    @classmethod
    def read(cls, path: Path) -> Study:
        """Read and check a study file; every problem is one user error naming the file and key."""
        if not path.is_file():
            raise DnabertError(f"{path}: study file not found")
        try:
            values = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        except (OmegaConfBaseException, ValueError) as error:
            raise DnabertError(f"{path}: not a study file ({str(error).splitlines()[0]})") from None
        if not isinstance(values, dict):
            raise DnabertError(f"{path}: a study file is a mapping of {', '.join(sorted(KEYS))}")
        unknown = sorted(set(values) - KEYS)
        if unknown:
            raise DnabertError(f"{path}: unknown key {unknown[0]!r}; a study has {', '.join(sorted(KEYS))}")

        def need(key: str, kind: type, default: object = None) -> object:
            value = values.get(key, default)
            if not isinstance(value, kind) or (kind in (list, dict) and not value and default is None):
                raise DnabertError(f"{path}: {key} must be a non-empty {kind.__name__}")
            return value

        data = dict(need("data", dict))
        folds = data.pop("folds", 0) if "cv" in data else 0
        if set(data) != {"cv"} and ("train" not in data or "test" not in data or set(data) - set(SPLITS)):
            raise DnabertError(f"{path}: data has train, test and optionally val (files), or cv (one file) and "
                               f"folds, not {sorted(data)}")
        if "cv" in data and (not isinstance(folds, int) or isinstance(folds, bool) or folds < 2):
            raise DnabertError(f"{path}: data.folds={folds}: cross-validation needs an integer of 2 or more folds")
        for split in ("cv", *SPLITS):
            file = data.get(split)
            if file is not None and not Path(file).exists():
                raise DnabertError(f"{path}: data.{split}={file}: file not found")
        arms = {str(name): [str(o) for o in (overrides or [])] for name, overrides in need("arms", dict).items()}
        for name in arms:
            if not ARM_NAME.fullmatch(name):
                raise DnabertError(f"{path}: arm {name!r}: an arm name names its run folders, so letters, digits, "
                                   "'.', '_' and '-' only (e.g. tiny-k3-lr1e-3)")
        seeds = need("seeds", list)
        if not all(isinstance(seed, int) for seed in seeds) or len(set(seeds)) < len(seeds):
            raise DnabertError(f"{path}: seeds must be distinct integers, not {seeds}")
        select = str(need("select", str))
        if not select.startswith("val/"):
            raise DnabertError(f"{path}: select={select}: a study chooses on validation only (val/<metric>); the "
                               "test split is scored once per run and never read to choose")
        ensembles = need("ensembles", dict, {})
        for arm, size in ensembles.items():
            if arm not in arms:
                raise DnabertError(f"{path}: ensembles.{arm}: no arm of that name; arms: {', '.join(arms)}")
            if not isinstance(size, int) or size < 2 or size > len(seeds) or len(seeds) % size:
                raise DnabertError(f"{path}: ensembles.{arm}={size}: an ensemble takes 2 or more of the "
                                   f"{len(seeds)} seeds, and the seeds split into whole ensembles")
        threads = need("threads", int, 1)
        if threads < 1:
            raise DnabertError(f"{path}: threads={threads}: must be at least 1")
        return cls(path, str(need("task", str)), data, folds, [str(o) for o in need("overrides", list, [])], arms,
                   seeds, select, dict(ensembles), bool(need("baselines", bool, True)), threads)

    @property
    def results(self) -> Path:
        """The folder of the study's runs (not committed)."""
        return self.path.parent / "results"

    @property
    def splits(self) -> list[dict[str, str | None]]:
        """The train/val/test files of each split: the data's own, or one per cross-validation fold."""
        if not self.folds:
            return [self.data]
        suffix = Path(self.data["cv"]).suffix
        return [{"train": str(self.results / "folds" / f"fold{fold}" / f"train{suffix}"), "val": None,
                 "test": str(self.results / "folds" / f"fold{fold}" / f"test{suffix}")} for fold in range(self.folds)]

    def run_dir(self, arm: str, seed: int, fold: int = 0) -> Path:
        return self.results / (f"{arm}-seed{seed}" + f"-fold{fold}" * bool(self.folds))

    def overrides_of(self, arm: str, seed: int, fold: int = 0) -> list[str]:
        """The train.py overrides of one run."""
        data = [f"data.{split}={file}" for split, file in self.splits[fold].items() if file is not None]
        return [f"task={self.task}", *data, *self.overrides, *self.arms[arm], f"seed={seed}",
                f"paths.output_dir={self.run_dir(arm, seed, fold)}"]

    @property
    def runs(self) -> list[tuple[str, int, int]]:
        """(arm, seed, fold) of every declared run."""
        return [(arm, seed, fold) for arm in self.arms for seed in self.seeds for fold in range(max(self.folds, 1))]


def stratified_folds(labels: list[str], folds: int, seed: int) -> np.ndarray:
    """Fold index of every row: each class shuffled (seeded) and dealt round-robin, so folds stay balanced."""
    from dnabert.data.finetuning import natural_order

    labels_array = np.array(labels)
    assignment = np.empty(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    dealt = 0
    for label in natural_order(set(labels)):
        members = rng.permutation(np.flatnonzero(labels_array == label))
        assignment[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return assignment


def write_folds(study: Study) -> None:
    """Each fold's train and test files, with the cv file's own header and row lines (so DNABERT's k-mer layout
    stays k-mer layout); unchanged files are left as they are."""
    from dnabert.data.labelled_layouts import read_labelled

    path = Path(study.data["cv"])
    rows = read_labelled(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assignment = stratified_folds([labels[0] for labels in rows.labels], study.folds, FOLD_SEED)
    for fold, files in enumerate(study.splits):
        for split, chosen in (("train", assignment != fold), ("test", assignment == fold)):
            body = [lines[line - 1] for line, keep in zip(rows.lines, chosen) if keep]
            text = "\n".join([lines[0], *body]) + "\n"
            target = Path(files[split])
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                target.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(target, text)


@functools.cache
def checksum(path: str) -> str | None:
    """`path_checksum` of a file or directory, once per study call (the same splits serve every run)."""
    return path_checksum(Path(path))


def run_config(study: Study, arm: str, seed: int, fold: int = 0) -> dict:
    """The resolved train.py config of one run (an unknown or malformed override is one user error)."""
    from dnabert.config import composed

    try:
        return resolved_config(composed(study.overrides_of(arm, seed, fold)))
    except (HydraException, OmegaConfBaseException) as error:
        raise DnabertError(f"{study.path}: arm {arm} (seed {seed}): {str(error).splitlines()[0]} "
                           "(an override of the task preset, the study's overrides or the arm's)") from None


def run_identity(study: Study, config: dict) -> dict:
    """What makes a finished run reusable: its resolved config's hash, its data's and model.init's checksums and the
    thread count (the same seed on another thread count gives other numbers)."""
    text = json.dumps(config, sort_keys=True)
    paths = {**{f"data.{key}": config["data"].get(key) for key in SPLITS}, "model.init": config["model"]["init"]}
    return {"config_sha256": hashlib.sha256(text.encode()).hexdigest(), "threads": study.threads,
            "checksums": {key: checksum(value) for key, value in paths.items()
                          if value and value != "random"}}


def train_run(study: Study, arm: str, seed: int, fold: int, identity: dict) -> dict:
    """One run's record (metrics, identity, minutes): read back when finished with this identity, else trained now
    by `python -m dnabert.train` (after clearing what a run of another identity left there)."""
    directory = study.run_dir(arm, seed, fold)
    record_file = directory / "study_run.json"
    if record_file.is_file():
        record = read_json(record_file, "remove the run directory to train it again")
        if record.get("identity") == identity:
            return record | {"reused": True}
    if directory.exists():
        shutil.rmtree(directory)  # another config's checkpoints must not be resumed
    environment = {**os.environ, "OMP_NUM_THREADS": str(study.threads), "MKL_NUM_THREADS": str(study.threads)}
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "dnabert.train", "callbacks.progress_bar=null",
                                *study.overrides_of(arm, seed, fold)], capture_output=True, text=True,
                               env=environment)
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.splitlines() if line.strip()] or ["(no output)"]
        raise DnabertError(f"{study.path}: run {directory.name} failed: {lines[-1]}")
    record = {"arm": arm, "seed": seed, **({"fold": fold} if study.folds else {}), "identity": identity,
              "minutes": (time.perf_counter() - started) / 60,
              "val": read_json(directory / "val_metrics.json", "rerun the study"),
              "test": read_json(directory / "test_metrics.json", "rerun the study")}
    write_json_atomic(record_file, record)
    return record | {"reused": False}


def probability_metrics(probabilities: np.ndarray, classes: list[str], test: LabelledRows) -> dict[str, float]:
    """Test metrics (`test/...`) of class probabilities for the test rows (e.g. an ensemble's mean)."""
    from dnabert.data.labelled import encode_labels
    from dnabert.models.metrics import task_metrics
    from dnabert.problems import metric_inputs

    metrics = task_metrics("classification", len(classes))
    metrics.update(metric_inputs("classification", torch.from_numpy(probabilities).log()),
                   torch.from_numpy(encode_labels(test, "classification", classes)))
    return {f"test/{key}": float(value) for key, value in metrics.compute().items()}


def ensemble_metrics(study: Study, arm: str, size: int) -> list[dict[str, float]]:
    """Test metrics of each declared ensemble of `arm` (consecutive seeds, `size` at a time; on each fold with cv):
    the mean class probabilities of the members' best-on-validation models, as `dnabert predict A B C` averages them."""
    from dnabert.data.labelled_layouts import read_labelled
    from dnabert.models.inference import load_ensemble, output_names, predict_ensemble

    results = []
    for fold, files in enumerate(study.splits):
        test = read_labelled(files["test"])
        for first in range(0, len(study.seeds), size):
            models = load_ensemble([study.run_dir(arm, seed, fold) / "checkpoints" / "best.hf"
                                    for seed in study.seeds[first : first + size]])
            probabilities = predict_ensemble(models, test.sequences, progress=False)
            results.append(probability_metrics(probabilities, output_names(models[0]), test))
    return results


def repeated_test_rows(data: dict) -> dict[str, int]:
    """How many test rows of one split repeat the sequence of a training or validation row, on either strand (a model
    can score those from memory): reported beside the study's table, not removed (the split is the data owner's)."""
    from dnabert.data.labelled_layouts import read_labelled
    from dnabert.tokenization import reverse_complement_text

    seen = set()
    for split in ("train", "val"):
        for sequence in read_labelled(data[split]).sequences if data.get(split) else []:
            seen.update((sequence.upper(), reverse_complement_text(sequence.upper())))
    test = [sequence.upper() for sequence in read_labelled(data["test"]).sequences]
    return {"test_rows": len(test), "also_in_train": sum(sequence in seen for sequence in test)}


def cell(values: list[float], digits: int = 4) -> str:
    """mean ± sd (sample) of a metric over runs, `digits` decimals; the value alone for one run."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def best_single_run(study: Study, runs: list[dict], chosen: str) -> dict | None:
    """The one model a user would keep: the chosen arm's run with the best validation metric (the first seed on a
    tie); None with cross-validation, where every fold has its own model."""
    mine = [run for run in runs if run["arm"] == chosen]
    return None if study.folds else max(mine, key=lambda run: run["val"][study.select])


def table(study: Study, runs: list[dict], ensembles: dict[str, list[dict]], baselines: dict[str, list[dict]],
          chosen: str, repeated: dict[str, int]) -> str:
    """Markdown: each arm's selection metric and test metrics (mean ± sd over seeds, and folds), the single model
    chosen on validation, ensembles, baselines."""
    metrics = sorted(set.intersection(*(set(run["test"]) for run in runs)))
    folds = f"{study.folds} folds x " if study.folds else ""
    lines = [f"| model | {study.select} | " + " | ".join(metrics) + " | runs |",
             "|---|---:|" + "---:|" * len(metrics) + "---|"]
    for arm in study.arms:
        mine = [run for run in runs if run["arm"] == arm]
        name = f"{arm} (chosen on {study.select})" if arm == chosen else arm
        minutes = np.mean([run["minutes"] for run in mine])
        lines.append(f"| {name} | {cell([run['val'][study.select] for run in mine])} | "
                     + " | ".join(cell([run["test"][m] for run in mine]) for m in metrics)
                     + f" | {folds}{len(study.seeds)} seeds, {minutes:.1f} min each |")
    best = best_single_run(study, runs, chosen)
    if best:
        lines.append(f"| {chosen}, seed {best['seed']} alone (the best {study.select} of its seeds) | "
                     f"{best['val'][study.select]:.4f} | " + " | ".join(f"{best['test'][m]:.4f}" for m in metrics)
                     + " | one run |")
    for arm, results in ensembles.items():
        lines.append(f"| {arm}, ensembles of {study.ensembles[arm]} seeds (declared) | | "
                     + " | ".join(cell([r[m] for r in results]) if m in results[0] else "" for m in metrics)
                     + f" | {len(results)} ensemble{'s' * (len(results) > 1)}{' (over the folds)' * bool(folds)} |")
    for name, results in baselines.items():
        lines.append(f"| {name} | | " + " | ".join(cell([r[m] for r in results]) if m in results[0] else ""
                                                   for m in metrics) + f" | the same {folds or 'splits'} |")
    lines.append(f"\n{repeated['also_in_train']:,} of {repeated['test_rows']:,} test sequences also occur in the "
                 "training or validation rows (either strand); they are scored with the rest.")
    return "\n".join(lines) + "\n"


def run_study(path: Path) -> tuple[str, str]:
    """Run (or read back) every declared run of a study, then write results.json and table.md beside it; returns
    the chosen arm and the table."""
    from dnabert.baselines import baseline_rows

    study = Study.read(path)
    configs = {run: run_config(study, *run) for run in study.runs}  # every override checked before anything runs
    if study.folds:
        write_folds(study)
    runs = []
    for (arm, seed, fold), config in configs.items():
        record = train_run(study, arm, seed, fold, run_identity(study, config))
        print(f"{study.run_dir(arm, seed, fold).name}: {'reused' if record['reused'] else 'trained'}, "
              f"{study.select} {record['val'][study.select]:.4f}", flush=True)
        runs.append(record)
    chosen = max(study.arms, key=lambda arm: np.mean([r["val"][study.select] for r in runs if r["arm"] == arm]))
    ensembles = {arm: ensemble_metrics(study, arm, size) for arm, size in study.ensembles.items()}
    baselines = {}
    for files in study.splits if study.baselines else []:
        for name, result in baseline_rows(files["train"], files["test"]).items():
            baselines.setdefault(name, []).append(result)
    counts = [repeated_test_rows(files) for files in study.splits]
    repeated = {key: sum(count[key] for count in counts) for key in counts[0]}
    text = table(study, runs, ensembles, baselines, chosen, repeated)
    write_json_atomic(path.parent / "results.json", {
        "study": path.name, "chosen_on_validation": chosen, "select": study.select, "threads": study.threads,
        "best_single_run": {key: best[key] for key in ("arm", "seed")} if (best := best_single_run(study, runs, chosen))
        else None,
        "runs": [{key: value for key, value in run.items() if key != "reused"} for run in runs],
        "ensembles": ensembles, "baselines": baselines, "repeated_test_rows": repeated})
    write_text_atomic(path.parent / "table.md", text)
    return chosen, text
