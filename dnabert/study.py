"""Declared fine-tuning studies (`dnabert study CONFIG`): arms x seeds through the training run, reference models
on the same splits, ensembles declared in advance, and the arm chosen on validation only.

A study is one YAML file in its experiment folder:

    task: prom300                        # the train.py task preset of every run
    data: {train: T.tsv, val: null, test: S.tsv}
    overrides: [model=tiny]              # train.py overrides of every run
    arms:                                # name: overrides of that arm (model.init, levers, ...)
      random: [model.init=random]
      pretrained: [model.init=runs/hg38/checkpoints/last.hf]
    seeds: [1, 2, 3]
    select: val/auroc                    # the validation metric that chooses the arm (test never chooses)
    ensembles: {random: 3}               # arm: seeds per ensemble (mean class probabilities of their best models)
    baselines: true                      # logistic regressions on k-mer counts / one-hot (the same splits)
    threads: 1                           # OMP/torch threads of every run (recorded: results depend on it)

Runs go to `results/<arm>-seed<S>/` beside the file (ignored by git); a run is reused only when its resolved config,
the checksums of its data and of its model.init, and the thread count are the ones it would run with now.
`results.json` (every run's validation and test metrics, config hash, minutes, and how many test sequences repeat a
training one) and `table.md` are written beside the study file, to be committed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
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


@dataclass
class Study:
    """A study file, checked: what runs, how the arm is chosen, what is reported beside."""

    path: Path
    task: str
    data: dict[str, str | None]
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

        data = need("data", dict)
        if "train" not in data or "test" not in data or set(data) - set(SPLITS):
            raise DnabertError(f"{path}: data has train, test and optionally val (files), not {sorted(data)}")
        for split in SPLITS:
            file = data.get(split)
            if file is not None and not Path(file).exists():
                raise DnabertError(f"{path}: data.{split}={file}: file not found")
        arms = {str(name): [str(o) for o in (overrides or [])] for name, overrides in need("arms", dict).items()}
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
        return cls(path, str(need("task", str)), data, [str(o) for o in need("overrides", list, [])], arms, seeds,
                   select, dict(ensembles), bool(need("baselines", bool, True)), threads)

    @property
    def results(self) -> Path:
        """The folder of the study's runs (not committed)."""
        return self.path.parent / "results"

    def run_dir(self, arm: str, seed: int) -> Path:
        return self.results / f"{arm}-seed{seed}"

    def overrides_of(self, arm: str, seed: int) -> list[str]:
        """The train.py overrides of one run."""
        data = [f"data.{split}={file}" for split, file in self.data.items() if file is not None]
        return [f"task={self.task}", *data, *self.overrides, *self.arms[arm], f"seed={seed}",
                f"paths.output_dir={self.run_dir(arm, seed)}"]


@functools.cache
def checksum(path: str) -> str | None:
    """`path_checksum` of a file or directory, once per study call (the same splits serve every run)."""
    return path_checksum(Path(path))


def run_identity(study: Study, arm: str, seed: int) -> dict:
    """What makes a finished run reusable: its resolved config's hash, its data's and model.init's checksums and the
    thread count (the same seed on another thread count gives other numbers)."""
    from dnabert.config import composed

    try:
        config = resolved_config(composed(study.overrides_of(arm, seed)))
    except (HydraException, OmegaConfBaseException) as error:  # an unknown or malformed override
        raise DnabertError(f"{study.path}: arm {arm} (seed {seed}): {str(error).splitlines()[0]} "
                           "(an override of the task preset, the study's overrides or the arm's)") from None
    text = json.dumps(config, sort_keys=True)
    paths = {**{f"data.{key}": config["data"].get(key) for key in SPLITS}, "model.init": config["model"]["init"]}
    return {"config_sha256": hashlib.sha256(text.encode()).hexdigest(), "threads": study.threads,
            "checksums": {key: checksum(value) for key, value in paths.items()
                          if value and value != "random"}}


def train_run(study: Study, arm: str, seed: int, identity: dict) -> dict:
    """One run's record (metrics, identity, minutes): read back when finished with this identity, else trained now
    by `python -m dnabert.train` (after clearing what a run of another identity left there)."""
    directory = study.run_dir(arm, seed)
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
                                *study.overrides_of(arm, seed)], capture_output=True, text=True, env=environment)
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.splitlines() if line.strip()] or ["(no output)"]
        raise DnabertError(f"{study.path}: run {arm} seed {seed} failed: {lines[-1]}")
    record = {"arm": arm, "seed": seed, "identity": identity, "minutes": (time.perf_counter() - started) / 60,
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
    """Test metrics of each declared ensemble of `arm` (consecutive seeds, `size` at a time): the mean class
    probabilities of the members' best-on-validation models, as `dnabert predict A B C` averages them."""
    from dnabert.data.labelled_layouts import read_labelled
    from dnabert.models.inference import load_ensemble, output_names, predict_ensemble

    test = read_labelled(study.data["test"])
    results = []
    for first in range(0, len(study.seeds), size):
        models = load_ensemble([study.run_dir(arm, seed) / "checkpoints" / "best.hf"
                                for seed in study.seeds[first : first + size]])
        probabilities = predict_ensemble(models, test.sequences, progress=False)
        results.append(probability_metrics(probabilities, output_names(models[0]), test))
    return results


def repeated_test_rows(data: dict) -> dict[str, int]:
    """How many test rows repeat the sequence of a training or validation row, on either strand (a model can score
    those from memory): reported beside the study's table, not removed (the split is the data owner's)."""
    from dnabert.data.labelled_layouts import read_labelled
    from dnabert.tokenization import reverse_complement_text

    seen = set()
    for split in ("train", "val"):
        for sequence in read_labelled(data[split]).sequences if data.get(split) else []:
            seen.update((sequence.upper(), reverse_complement_text(sequence.upper())))
    test = [sequence.upper() for sequence in read_labelled(data["test"]).sequences]
    return {"test_rows": len(test), "also_in_train": sum(sequence in seen for sequence in test)}


def cell(values: list[float]) -> str:
    """mean ± sd (sample) of a metric over runs; the value alone for one run."""
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def table(study: Study, runs: list[dict], ensembles: dict[str, list[dict]], baselines: dict[str, dict],
          chosen: str, repeated: dict[str, int]) -> str:
    """Markdown: each arm's selection metric and test metrics (mean ± sd over seeds), ensembles, baselines."""
    metrics = sorted(set.intersection(*(set(run["test"]) for run in runs)))
    lines = [f"| model | {study.select} | " + " | ".join(metrics) + " | runs |",
             "|---|---:|" + "---:|" * len(metrics) + "---|"]
    for arm in study.arms:
        mine = [run for run in runs if run["arm"] == arm]
        name = f"{arm} (chosen on {study.select})" if arm == chosen else arm
        minutes = np.mean([run["minutes"] for run in mine])
        lines.append(f"| {name} | {cell([run['val'][study.select] for run in mine])} | "
                     + " | ".join(cell([run["test"][m] for run in mine]) for m in metrics)
                     + f" | {len(mine)} seeds, {minutes:.1f} min each |")
    for arm, results in ensembles.items():
        lines.append(f"| {arm}, ensembles of {study.ensembles[arm]} seeds (declared) | | "
                     + " | ".join(cell([r[m] for r in results]) if m in results[0] else "" for m in metrics)
                     + f" | {len(results)} ensemble{'s' * (len(results) > 1)} |")
    for name, result in baselines.items():
        lines.append(f"| {name} | | " + " | ".join(f"{result[m]:.4f}" if m in result else "" for m in metrics)
                     + " | the same splits |")
    lines.append(f"\n{repeated['also_in_train']:,} of {repeated['test_rows']:,} test sequences also occur in the "
                 "training or validation rows (either strand); they are scored with the rest.")
    return "\n".join(lines) + "\n"


def run_study(path: Path) -> tuple[str, str]:
    """Run (or read back) every declared run of a study, then write results.json and table.md beside it; returns
    the chosen arm and the table."""
    from dnabert.baselines import baseline_rows

    study = Study.read(path)
    identities = {(arm, seed): run_identity(study, arm, seed)
                  for arm in study.arms for seed in study.seeds}  # every override checked before anything runs
    runs = []
    for (arm, seed), identity in identities.items():
        record = train_run(study, arm, seed, identity)
        print(f"{arm} seed {seed}: {'reused' if record['reused'] else 'trained'}, {study.select} "
              f"{record['val'][study.select]:.4f}", flush=True)
        runs.append(record)
    chosen = max(study.arms, key=lambda arm: np.mean([r["val"][study.select] for r in runs if r["arm"] == arm]))
    ensembles = {arm: ensemble_metrics(study, arm, size) for arm, size in study.ensembles.items()}
    baselines = baseline_rows(study.data["train"], study.data["test"]) if study.baselines else {}
    repeated = repeated_test_rows(study.data)
    text = table(study, runs, ensembles, baselines, chosen, repeated)
    write_json_atomic(path.parent / "results.json", {
        "study": path.name, "chosen_on_validation": chosen, "select": study.select, "threads": study.threads,
        "runs": [{key: value for key, value in run.items() if key != "reused"} for run in runs],
        "ensembles": ensembles, "baselines": baselines, "repeated_test_rows": repeated})
    write_text_atomic(path.parent / "table.md", text)
    return chosen, text
