"""Declared fine-tuning studies as Hydra sweeps: arms x seeds (x folds) of the training run, on any launcher, then one
report that chooses the arm on validation only and scores the declared ensembles and the baselines on the same splits.

A study is a folder with `study.yaml`, a primary Hydra config that extends the training config, and one file per arm
under `arm/` (each `# @package _global_`, holding that arm's config changes):

    defaults: [train, _self_, {arm: tiny}, {override task: splice}, {override hydra/sweeper: study}]
    threads: 1                                   # every run's CPU threads (results depend on it)
    data: {train: ../shared/data/splice_primate/train.tsv, test: ../shared/data/splice_primate/test.tsv}
    study:
      select: val/accuracy                       # the validation metric that chooses the arm (test never chooses)
      ensembles: {tiny: 3}                       # arm: seeds per ensemble (mean class probabilities)
      baselines: true                            # logistic regressions on k-mer counts / one-hot, same splits
      choose: true                               # false: the arms are conditions (e.g. genomes), none is chosen
    hydra:
      sweeper: {params: {arm: "tiny,tiny-k3", seed: "1,2,3"}}    # cross-validation: also data.fold: 0,1,2
      sweep: {dir: experiments/splice_primate/results, subdir: "${hydra.runtime.choices.arm}-seed${seed}"}

`python train.py -m -cd FOLDER -cn study [hydra/launcher=joblib|submitit_slurm ...]` runs it through the study
sweeper (`hydra/sweeper=study`), which submits only the runs that the run store cannot reuse; `dnabert study FOLDER`
writes `results.json` and `table.md` beside the declaration from the finished runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from dnabert.atomic import write_json_atomic, write_text_atomic
from dnabert.cluster import check_slurm_layout
from dnabert.data.labelled import LabelledRows
from dnabert.errors import DnabertError
from dnabert.provenance import resolved_config, run_identity
from dnabert.run_store import clear, finished, run_metrics, run_minutes
from dnabert.runs import flatten

ARM = "arm"
"""The config group whose choices are a study's arms."""
STUDY_CONFIG = "study"
"""The name of a study's declaration in its folder (`-cn study`)."""


@dataclass
class StudyRun:
    """One declared run: its arm, seed and fold, where it runs, and what it would run with now."""

    arm: str
    seed: int
    fold: int | None
    directory: Path
    config: dict
    identity: dict


@dataclass
class Study:
    """A study's declaration and its runs, checked: how the arm is chosen, what is reported beside."""

    folder: Path
    select: str
    ensembles: dict[str, int]
    baselines: bool
    choose: bool
    runs: list[StudyRun]

    @property
    def arms(self) -> list[str]:
        return list(dict.fromkeys(run.arm for run in self.runs))

    @property
    def seeds(self) -> list[int]:
        return list(dict.fromkeys(run.seed for run in self.runs))

    @property
    def folds(self) -> list[int | None]:
        return list(dict.fromkeys(run.fold for run in self.runs))

    @classmethod
    def of(cls, folder: Path, primary: DictConfig, jobs: list[list[str]],
           job_config: Callable[[list[str]], DictConfig]) -> Study:
        """The study declared by a composed primary config and its sweep's jobs (each composed by `job_config`);
        every problem is one user error naming the folder."""
        declared = primary.get("study")
        if declared is None:
            raise DnabertError(f"{folder}: no `study:` node (select, ensembles, baselines) in {STUDY_CONFIG}.yaml")
        runs = [study_run(folder, job, job_config) for job in jobs]
        for arm, job in {run.arm: job for run, job in zip(runs, jobs)}.items():
            check_arm_keys(folder, arm, job, job_config)
        study = cls(folder, str(declared.get("select")), dict(declared.get("ensembles") or {}),
                    bool(declared.get("baselines", True)), bool(declared.get("choose", True)), runs)
        study.check()
        return study

    def check(self) -> None:
        """Select on validation, ensembles of declared arms that split their seeds, one directory per run."""
        if not self.select.startswith("val/"):
            raise DnabertError(f"{self.folder}: study.select={self.select}: a study chooses on validation only "
                               "(val/<metric>); the test split is scored once per run and never read to choose")
        declared = sorted(path.stem for path in (self.folder / ARM).glob("*.yaml"))
        for arm, size in self.ensembles.items():
            if arm not in declared:
                raise DnabertError(f"{self.folder}: study.ensembles.{arm}: no arm of that name; arms: "
                                   f"{', '.join(declared)}")
            if arm in self.arms and (not isinstance(size, int) or size < 2 or size > len(self.seeds)
                                     or len(self.seeds) % size):
                raise DnabertError(f"{self.folder}: study.ensembles.{arm}={size}: an ensemble takes 2 or more of "
                                   f"the {len(self.seeds)} seeds, and the seeds split into whole ensembles")
            if len({(run.config["data"]["train"], run.config["data"].get("test")) for run in self.of_arm(arm)}) > 1:
                raise DnabertError(f"{self.folder}: study.ensembles.{arm}: its runs train and test on different rows; "
                                   "an ensemble averages models on one test split (declare none here)")
        directories = [run.directory for run in self.runs]
        if len(set(directories)) < len(directories):
            raise DnabertError(f"{self.folder}: two runs share a directory; name each run by its arm, seed and fold "
                               "in hydra.sweep.subdir (e.g. ${hydra.runtime.choices.arm}-seed${seed})")

    def of_arm(self, arm: str) -> list[StudyRun]:
        return [run for run in self.runs if run.arm == arm]


def arm_error(folder: Path, arm: str, error: Exception) -> DnabertError:
    """A run config that does not compose, as one user error naming the arm."""
    return DnabertError(f"{folder}: arm {arm}: {str(error).splitlines()[0]} (in {folder}/{ARM}/{arm}.yaml, "
                        f"{STUDY_CONFIG}.yaml or the command line)")


def sweep_run(cfg: DictConfig) -> tuple[Path, dict]:
    """The directory and resolved run config of one composed job of a sweep (`hydra.sweep.dir/subdir`)."""
    directory = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.paths.output_dir = str(directory.absolute())
    config = resolved_config(cfg)
    check_slurm_layout(launcher, config["trainer"])
    return directory, config


def study_run(folder: Path, overrides: list[str], job_config: Callable[[list[str]], DictConfig]) -> StudyRun:
    """One job of the sweep, composed: a job whose arm does not compose is one user error naming the arm."""
    arm = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == ARM), None)
    try:
        cfg = job_config(overrides)
        arm = cfg.hydra.runtime.choices.get(ARM)
        if arm is None:
            raise DnabertError(f"{folder}: a study's runs are its arms: sweep the `{ARM}` group (hydra.sweeper."
                               f"params.{ARM}: a,b) with one file per arm in {folder}/{ARM}/")
        directory, config = sweep_run(cfg)
    except (HydraException, OmegaConfBaseException) as error:
        raise arm_error(folder, str(arm), error) from None
    data = config["data"]
    return StudyRun(str(arm), int(config["seed"]), data.get("fold") if data.get("folds") else None, directory,
                    config, run_identity(config))


def command_line_folder(config: DictConfig) -> Path:
    """The study folder of a running sweep: the config directory given with `-cd`."""
    for source in config.hydra.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            return Path(source.path)
    raise DnabertError("a study runs from its folder: python train.py -m -cd FOLDER -cn study")


def pending_jobs(master: DictConfig, jobs: list[list[str]], job_config: Callable[[list[str]], DictConfig]
                 ) -> list[list[str]]:
    """The jobs of a sweep that still have to run (each run directory cleared of what another identity, or an
    unfinished run, left there); the others finished as declared and are reused. A study (a config with a `study:`
    node, run from its folder) is checked first; any other sweep (a benchmark suite) is only filtered."""
    if master.get("study") is not None:
        where = command_line_folder(master)
        runs = [(run.directory, run.identity) for run in Study.of(where, master, jobs, job_config).runs]
    else:
        where = Path(str(master.hydra.sweep.dir))
        runs = [(directory, run_identity(config)) for directory, config in
                (sweep_run(job_config(job)) for job in jobs)]
        if len({directory for directory, _ in runs}) < len(runs):
            raise DnabertError(f"{where}: two runs share a directory; name each run in hydra.sweep.subdir")
    pending = [(job, directory) for job, (directory, identity) in zip(jobs, runs)
               if not finished(directory, identity)]
    for _, directory in pending:
        clear(directory)
    print(f"study {where}: {len(jobs)} runs declared, {len(jobs) - len(pending)} finished as declared (reused), "
          f"{len(pending)} to run", flush=True)
    return [job for job, _ in pending]


def check_jobs(jobs: Sequence[Sequence[str]], job_config: Callable[[list[str]], DictConfig], first_number: int
               ) -> None:
    """Every job of a sweep (numbered from `first_number`, as the launcher numbers them) composes, resolves and fits
    its launcher (`sweep_run`): the first that does not is one user error, before any job is submitted."""
    for number, job in enumerate(jobs, first_number):
        cfg = job_config(list(job))
        with open_dict(cfg):
            cfg.hydra.job.num = number
        sweep_run(cfg)


def check_arm_keys(folder: Path, arm: str, job: list[str], job_config: Callable[[list[str]], DictConfig]) -> None:
    """Every key an arm file sets is one the run config has without it (Hydra merges files without that check): a
    misspelt key is one user error naming the arm."""
    path = folder / ARM / f"{arm}.yaml"
    values = OmegaConf.to_container(OmegaConf.load(path)) or {}
    groups = [f"{key.split()[-1].lstrip('/')}={choice}" for entry in values.pop("defaults", [])
              if isinstance(entry, dict) for key, choice in entry.items()]
    others = [o for o in job if o.split("=", 1)[0].lstrip("+~") != ARM]
    try:
        base = job_config([*others, f"~{ARM}", *groups])
    except (HydraException, OmegaConfBaseException) as error:
        raise arm_error(folder, arm, error) from None
    for key in flatten(values):
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(base, parent) if parent else base
        if not isinstance(node, DictConfig) or leaf not in node.keys():  # keys(): a `???` value is a key too
            raise DnabertError(f"{path}: arm {arm}: {key} is not a key of the run config (see python train.py "
                               "--cfg job)")


def sweep_jobs(params: dict, arguments: list[str]) -> list[list[str]]:
    """The overrides of every job of a basic sweep over `params` and the command line's `arguments`."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = OverridesParser.create().parse_overrides([f"{key}={value}" for key, value in params.items()]
                                                      + list(arguments))
    return BasicSweeper.split_arguments(parsed, None)[0]


def composed_study(folder: Path, overrides: list[str]) -> Study:
    """The study of `folder` as `python train.py -m -cd FOLDER -cn study OVERRIDES` would run it."""
    from hydra import compose, initialize_config_dir

    from dnabert.config import CONF_DIR, register_resolvers

    if not (folder / f"{STUDY_CONFIG}.yaml").is_file():
        raise DnabertError(f"{folder}: no {STUDY_CONFIG}.yaml here; a study folder holds its declaration "
                           f"({STUDY_CONFIG}.yaml) and one file per arm ({ARM}/NAME.yaml)")
    register_resolvers()
    search = f"hydra.searchpath=[file://{CONF_DIR}]"
    with initialize_config_dir(str(folder.absolute()), version_base="1.3"):
        def job_config(job: list[str]) -> DictConfig:
            return compose(STUDY_CONFIG, overrides=[search, *job], return_hydra_config=True)

        parsed = OverridesParser.create().parse_overrides(overrides)
        single = [override.input_line for override in parsed if not override.is_sweep_override()]
        try:
            primary = compose(STUDY_CONFIG, overrides=[search, *single], return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as error:
            raise DnabertError(f"{folder}/{STUDY_CONFIG}.yaml: {str(error).splitlines()[0]}") from None
        params = OmegaConf.to_container(primary.hydra.sweeper.get("params") or {})
        return Study.of(folder, primary, sweep_jobs(params, overrides), job_config)


def labelled_splits(config: dict) -> tuple[LabelledRows, LabelledRows]:
    """The training rows (validation still among them) and test rows of one run's data config, as its data module
    deals them (a cross-validation fold included)."""
    from dnabert.data.finetuning import stratified_folds
    from dnabert.data.labelled_layouts import read_labelled

    data = config["data"]
    train = read_labelled(data["train"])
    if not data.get("folds"):
        return train, read_labelled(data["test"])
    assignment = stratified_folds([labels[0] for labels in train.labels], data["folds"])

    def part(mask: np.ndarray) -> LabelledRows:
        rows = np.flatnonzero(mask)
        return replace(train, sequences=[train.sequences[i] for i in rows], labels=[train.labels[i] for i in rows],
                       lines=[train.lines[i] for i in rows], names=[train.names[i] for i in rows] if train.names
                       else [], sources=[train.sources[i] for i in rows] if train.sources else [])
    return part(assignment != data["fold"]), part(assignment == data["fold"])


def probability_metrics(probabilities: np.ndarray, classes: list[str], test: LabelledRows) -> dict[str, float]:
    """Test metrics (`test/...`) of class probabilities for the test rows (e.g. an ensemble's mean)."""
    from dnabert.data.labelled import encode_labels
    from dnabert.models.metrics import task_metrics
    from dnabert.problems import metric_inputs

    metrics = task_metrics("classification", len(classes))
    metrics.update(metric_inputs("classification", torch.from_numpy(probabilities).log()),
                   torch.from_numpy(encode_labels(test, "classification", classes)))
    return {f"test/{key}": float(value) for key, value in metrics.compute().items()}


def ensemble_metrics(study: Study, arm: str, size: int, tests: list[LabelledRows]) -> list[dict[str, float]]:
    """Test metrics of each declared ensemble of `arm` (consecutive seeds, `size` at a time; on each fold, whose
    test rows `tests` holds in `study.folds` order): the mean class probabilities of the members' best-on-validation
    models, as `dnabert predict A B C` averages them."""
    from dnabert.models.inference import load_ensemble, output_names, predict_ensemble

    results = []
    for fold, test in zip(study.folds, tests):
        members = [run for run in study.of_arm(arm) if run.fold == fold]
        for first in range(0, len(members), size):
            models = load_ensemble([run.directory / "checkpoints" / "best.hf" for run in members[first:first + size]])
            probabilities = predict_ensemble(models, test.sequences, progress=False)
            results.append(probability_metrics(probabilities, output_names(models[0]), test))
    return results


def repeated_test_rows(train: LabelledRows, test: LabelledRows) -> dict[str, int]:
    """How many test rows repeat the sequence of a training or validation row, on either strand (a model can score
    those from memory): reported beside the study's table, not removed (the split is the data owner's)."""
    from dnabert.tokenization import reverse_complement_text

    seen = set()
    for sequence in train.sequences:
        seen.update((sequence.upper(), reverse_complement_text(sequence.upper())))
    tested = [sequence.upper() for sequence in test.sequences]
    return {"test_rows": len(tested), "also_in_train": sum(sequence in seen for sequence in tested)}


def cell(values: list[float], digits: int = 4) -> str:
    """mean ± sd (sample) of a metric over runs, `digits` decimals; the value alone for one run."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def best_single_run(record: dict) -> dict | None:
    """The one model a user would keep: the chosen arm's run with the best validation metric (the first seed on a
    tie); None with cross-validation, where every fold has its own model, and where no arm is chosen."""
    if record["chosen_on_validation"] is None:
        return None
    mine = [run for run in record["runs"] if run["arm"] == record["chosen_on_validation"]]
    return None if any("fold" in run for run in mine) else max(mine, key=lambda run: run["val"][record["select"]])


def table(record: dict) -> str:
    """Markdown from a study's record (results.json): each arm's selection metric and test metrics (mean ± sd over
    seeds, and folds), the single model chosen on validation, the declared ensembles, the baselines."""
    runs, select, chosen = record["runs"], record["select"], record["chosen_on_validation"]
    arms = list(dict.fromkeys(run["arm"] for run in runs))
    seeds = len({run["seed"] for run in runs})
    folds = len({run.get("fold") for run in runs})
    folds_text = f"{folds} folds x " if folds > 1 else ""
    metrics = sorted(set.intersection(*(set(run["test"]) for run in runs)))
    lines = [f"| model | {select} | " + " | ".join(metrics) + " | runs |",
             "|---|---:|" + "---:|" * len(metrics) + "---|"]
    for arm in arms:
        mine = [run for run in runs if run["arm"] == arm]
        name = f"{arm} (chosen on {select})" if arm == chosen else arm
        lines.append(f"| {name} | {cell([run['val'][select] for run in mine])} | "
                     + " | ".join(cell([run["test"][m] for run in mine]) for m in metrics)
                     + f" | {folds_text}{seeds} seeds, {np.mean([run['minutes'] for run in mine]):.1f} min each |")
    best = best_single_run(record)
    if best:
        lines.append(f"| {chosen}, seed {best['seed']} alone (the best {select} of its seeds) | "
                     f"{best['val'][select]:.4f} | " + " | ".join(f"{best['test'][m]:.4f}" for m in metrics)
                     + " | one run |")
    for arm, results in record["ensembles"].items():
        size = seeds * folds // len(results)
        lines.append(f"| {arm}, ensembles of {size} seeds (declared) | | "
                     + " | ".join(cell([r[m] for r in results]) if m in results[0] else "" for m in metrics)
                     + f" | {len(results)} ensemble{'s' * (len(results) > 1)}{' (over the folds)' * (folds > 1)} |")
    for name, results in record["baselines"].items():
        same = f"{folds} folds" if folds > 1 else "splits"
        lines.append(f"| {name} | | " + " | ".join(cell([r[m] for r in results]) if m in results[0] else ""
                                                   for m in metrics) + f" | the same {same} |")
    repeated = record["repeated_test_rows"]
    lines.append(f"\n{repeated['also_in_train']:,} of {repeated['test_rows']:,} test sequences also occur in the "
                 "training or validation rows (either strand); they are scored with the rest.")
    if record.get("motif_recovery"):
        from dnabert.interpret.recovery import recovery_tables

        lines += ["", recovery_tables(record)]
    return "\n".join(lines) + "\n"


def run_record(run: StudyRun) -> dict:
    """What the report keeps of a finished run: arm, seed, fold, identity, minutes, validation and test metrics, and
    the motifs it recovered where it ran `callbacks=motif_recovery`."""
    recovered = run.directory / "motif_recovery.json"
    return {"arm": run.arm, "seed": run.seed, **({"fold": run.fold} if run.fold is not None else {}),
            "identity": run.identity, "minutes": run_minutes(run.directory), **run_metrics(run.directory),
            **({"motif_recovery": json.loads(recovered.read_text())} if recovered.is_file() else {})}


def report(folder: Path, overrides: list[str] | None = None, out: Path | None = None) -> tuple[str, str]:
    """Read every declared run of a finished study, choose the arm on validation, score the declared ensembles and
    the baselines on the same splits, and write results.json and table.md into `out` (the study folder); returns the
    chosen arm and the table."""
    from dnabert.baselines import baseline_rows

    study = composed_study(folder, overrides or [])
    waiting = [run for run in study.runs if not finished(run.directory, run.identity)]
    if waiting:
        raise DnabertError(f"{folder}: {len(waiting)} of {len(study.runs)} runs have not finished as declared (first: "
                           f"{waiting[0].directory}); run the study first: python train.py -m -cd {folder} -cn "
                           f"{STUDY_CONFIG}")
    records = [run_record(run) for run in study.runs]
    chosen = max(study.arms, key=lambda arm: np.mean([r["val"][study.select] for r in records if r["arm"] == arm])
                 ) if study.choose else None
    # every distinct split the runs trained and tested on (one per fold; one per run where each plants its own)
    def split_of(run: StudyRun) -> tuple:
        return run.config["data"]["train"], run.config["data"].get("test"), run.fold

    read: dict[tuple, tuple[LabelledRows, LabelledRows]] = {}
    for run in study.runs:  # each distinct split read once: baselines, repeated rows and ensembles share it
        if split_of(run) not in read:
            read[split_of(run)] = labelled_splits(run.config)
    splits = list(read.values())
    tests = [read[split_of(next(run for run in study.runs if run.fold == fold))][1] for fold in study.folds]
    ensembles = {arm: ensemble_metrics(study, arm, size, tests)
                 for arm, size in study.ensembles.items() if arm in study.arms}
    baselines: dict[str, list[dict]] = {}
    for train, test in splits if study.baselines else []:
        for name, result in baseline_rows(train, test).items():
            baselines.setdefault(name, []).append(result)
    counts = [repeated_test_rows(train, test) for train, test in splits]
    record = {"study": folder.name, "chosen_on_validation": chosen, "select": study.select,
              "threads": records[0]["identity"]["threads"], "best_single_run": None, "runs": records,
              "ensembles": ensembles, "baselines": baselines,
              "repeated_test_rows": {key: sum(count[key] for count in counts) for key in counts[0]}}
    best = best_single_run(record)
    record["best_single_run"] = {key: best[key] for key in ("arm", "seed")} if best else None
    if any("motif_recovery" in run for run in records):
        from dnabert.interpret.recovery import recovery_declaration

        record["motif_recovery"] = recovery_declaration(study.runs[0].config)
    out = out or folder
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", record)
    text = table(record)
    write_text_atomic(out / "table.md", text)
    return chosen, text
