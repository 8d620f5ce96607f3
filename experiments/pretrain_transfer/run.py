"""The pretrain_transfer study, end to end, as declared in plan.yaml: one command.

    .venv/bin/python experiments/pretrain_transfer/run.py [--only pretrain|hidden|curves|probes|finetune|report]

1. pretraining: pretrain.sh for every corpus x strategy (resumes from last.ckpt; a finished run is kept);
2. hidden: every final checkpoint and random weights scored on the same hidden bases of the held-out sequence
   (`trainer.validate` of the pretraining module, as `train.py` builds it), next to local k-mer statistics;
3. curves: the linear probe on every pretraining snapshot (home task, validation rows);
4. probes: `train.py finetune=frozen_probe` for every checkpoint and random weights, and a 4-mer-count probe;
5. finetune: `train.py task=<preset>` at each number of labelled rows (`data.train_fraction`), random vs pretrained;
6. report: record/results.json, record/table.md and record/*.png (the README's figures and numbers).

Run outputs (checkpoints, per-run directories) stay under results/ (not committed); record/ is committed. A run is
reused only when its command and the checksums of its data files match what is recorded beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS, RECORD = HERE / "results", HERE / "record"
sys.path.insert(0, str(ROOT))

from dnabert.run_store import train_once  # noqa: E402

STUDY = yaml.safe_load((HERE / "plan.yaml").read_text())
SEEDS = STUDY["seeds"]
PARALLEL = [STUDY["parallel"]]
"""Runs at a time (`--parallel` changes it for this call; every run has its own threads, so results do not move)."""
TASKS: list[str] = []
"""Fine-tune on these tasks only (`--task`; all of plan.yaml's when empty)."""
ROWS: list[str] = []
"""Fine-tune at these row counts only (`--rows`; all when empty): the rest wait for a later call."""
LEVERS: list[str] = []
"""Run these declared levers only (`--lever`; when given, the presets' and the old defaults' runs wait)."""
STAGES = ("pretrain", "hidden", "curves", "probes", "finetune", "report")


def checksum(path: str) -> str | None:
    """SHA-256 of a data file named by a run (None for anything else)."""
    from dnabert.genome.shards import file_sha256

    return file_sha256(Path(path)) if Path(path).is_file() else None


def portable(value: str) -> str:
    """An override or path with this study's results folder named from the project root, wherever the checkout is
    (train.py runs from the root), so that a recorded run is recognised in another checkout."""
    marker = "experiments/pretrain_transfer/results/"
    head, _, path = value.rpartition("=") if "=" in value else ("", "", value)
    return (f"{head}=" if head else "") + (path[path.index(marker):] if marker in path else path)


def run_train(out: Path, overrides: list[str]) -> dict:
    """`train.py overrides` into `out` (the study's thread count), or its recorded result where the run store holds
    that run finished with the identity it would have now."""
    overrides = [portable(override) for override in overrides]
    data = {o.split("=", 1)[1]: checksum(ROOT / o.split("=", 1)[1]) for o in overrides
            if o.split("=", 1)[0] in ("data.train", "data.test", "model.init") and "=" in o}
    record_file = out / "study_run.json"
    started = time.perf_counter()
    # train.py runs from the root: no path of this machine in the run's files
    stderr = train_once([*overrides, "logger=csv", f"threads={STUDY['threads']}"], out.relative_to(ROOT),
                        env={"WANDB_MODE": "disabled"})
    if stderr is None and record_file.exists():
        return json.loads(record_file.read_text())
    result = {"overrides": overrides, "data": data, "threads": STUDY["threads"],
              "minutes": (time.perf_counter() - started) / 60,
              "val": json.loads((out / "metrics.json").read_text()),
              "test": json.loads((out / "test_metrics.json").read_text()),
              "warnings": [line for line in (stderr or "").splitlines() if line.startswith("dnabert: warning")]}
    record_file.write_text(json.dumps(result, indent=1))
    return result


def in_parallel(jobs: list) -> list:
    """Run zero-argument callables `parallel` at a time, results in order."""
    with ThreadPoolExecutor(PARALLEL[0]) as pool:
        return list(pool.map(lambda job: job(), jobs))


def pretrain_dir(corpus: str, strategy: str) -> Path:
    return RESULTS / "pretrain" / corpus / strategy


def final_checkpoint(corpus: str, strategy: str, kind: str = "hf") -> Path:
    return pretrain_dir(corpus, strategy) / "checkpoints" / f"last.{kind}"


def composed(overrides: list[str]):
    """The train.py config for `overrides` (composed in this process, as train.py would)."""
    from dnabert.config import composed as compose_config

    return compose_config([*overrides, "paths.output_dir=unused"])


def pretrained(corpus: str, strategy: str) -> bool:
    """Whether the run has reached its last step."""
    import torch
    path = final_checkpoint(corpus, strategy, "ckpt")
    steps = composed(["experiment=pretrain_tiny", "data.genome=unused"]).trainer.max_steps
    return path.exists() and torch.load(path, map_location="cpu", weights_only=True)["global_step"] >= steps


def pretrain() -> None:
    """Every corpus x strategy, two at a time; pretrain.sh resumes an unfinished run."""
    jobs = [(corpus, strategy) for corpus in STUDY["corpora"] for strategy in STUDY["strategies"]
            if not pretrained(corpus, strategy)]

    def job(corpus: str, strategy: str):
        return lambda: subprocess.run([str(HERE / "pretrain.sh"), corpus, strategy], cwd=ROOT, check=True,
                                      capture_output=True)

    in_parallel([job(*item) for item in jobs])


def finished(corpus: str) -> list[str]:
    """The corpus's strategies whose pretraining has finished (later stages take these; run again to add the rest)."""
    return [strategy for strategy in STUDY["strategies"] if pretrained(corpus, strategy)]


def started() -> list[str]:
    """Corpora with at least one finished pretraining run."""
    return [corpus for corpus in STUDY["corpora"] if finished(corpus)]


def ready() -> list[str]:
    """Corpora whose every pretraining run has finished (needed to choose a strategy by validation)."""
    return [corpus for corpus in STUDY["corpora"] if finished(corpus) == STUDY["strategies"]]


def inits(corpus: str | None = None) -> dict[str, str]:
    """Name -> model.init of random weights and the finished final checkpoints (of one corpus, or of all)."""
    names = {"random": "random"}
    for name in STUDY["corpora"] if corpus is None else [corpus]:
        names.update({f"{name}-{s}": str(final_checkpoint(name, s)) for s in finished(name)})
    return names


def hidden() -> dict:
    """Hidden-base accuracy of each final checkpoint (and random weights) vs the local baseline, per masking."""
    import lightning as L

    from dnabert.models.hidden_nucleotides import LocalBaseline
    from dnabert.training import data_and_module

    path, results = recorded("hidden")
    for corpus in started():
        spec = STUDY["corpora"][corpus]
        baseline = None
        for name, init in inits(corpus).items():
            init = str(final_checkpoint(corpus, name.split("-", 1)[1], "ckpt")) if name != "random" else init
            for masking in STUDY["hidden"]["maskings"]:
                key = f"{corpus}/{name}/{masking}"
                if key in results:
                    continue
                cfg = composed(["experiment=pretrain_tiny", f"data.genome={spec['genome']}", f"task/masking={masking}",
                                f"model.init={init}", f"data.val_windows={STUDY['hidden']['val_windows']}"])
                L.seed_everything(cfg.seed)
                data, module = data_and_module(cfg)  # as train.py builds them
                data.prepare_data()
                data.setup("validate")
                baseline = baseline or LocalBaseline(data.train_windows.sequence(), module.val_hidden.orders)
                module.val_hidden.baseline = baseline
                trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                                    enable_progress_bar=False, enable_model_summary=False)
                values = trainer.validate(module, datamodule=data, verbose=False)[0]
                results[key] = {name.removeprefix("val/"): float(value) for name, value in values.items()}
                print(key, json.dumps(results[key]), flush=True)
                write_json(path, results)
    return results


def probe_data(task: str, seed: int):
    """The task's training file split as train.py splits it for `seed` (validation held out), and its test file,
    tokenized as 6-mers."""
    from dnabert.data.finetuning import LabelledDataModule
    spec = STUDY["tasks"][task]
    data = LabelledDataModule(spec["train"], test=spec["test"], seed=seed, k=6)
    data.setup()
    return data


def curves() -> dict:
    """Validation probe AUROC of every pretraining snapshot on its corpus's home task (step 0: random weights)."""
    import torch
    from hydra.utils import instantiate
    from transformers import BertModel

    from dnabert.models.embedding import load_encoder
    from dnabert.models.linear_probe import probe_scores

    path, results = recorded("curves")
    for corpus in started():
        data = probe_data(STUDY["corpora"][corpus]["home"], seed=SEEDS[0])
        for strategy in finished(corpus):
            snapshots = sorted(pretrain_dir(corpus, strategy).glob("snapshots/step*.hf"),
                               key=lambda p: int(p.name[4:-3]))
            for step, snapshot in [(0, None), *((int(p.name[4:-3]), p) for p in snapshots)]:
                key = f"{corpus}/{strategy}/{step}"
                if key in results:
                    continue
                if snapshot is None:  # the random weights pretraining starts from
                    cfg = composed(["experiment=pretrain_tiny", "data.genome=unused"])
                    torch.manual_seed(cfg.seed)
                    encoder = BertModel(instantiate(cfg.model.config)).eval()
                else:
                    encoder = load_encoder(snapshot)
                scores = probe_scores(encoder, data.splits["train"], data.splits["val"],
                                      data.label_info.num_labels, max_rows=STUDY["probe"]["curve_max_rows"],
                                      seed=SEEDS[0])
                results[key] = scores
                print(key, f"val AUROC {scores['auroc']:.4f}", flush=True)
                write_json(path, results)
    return results


def four_mer_probe(task: str, seed: int) -> dict:
    """Validation and test metrics of the same LinearProbe on normalised 4-mer counts, on train.py's split."""
    import torch

    from dnabert.baselines import kmer_counts
    from dnabert.models.linear_probe import LinearProbe
    from dnabert.models.metrics import task_metrics
    from dnabert.problems import metric_inputs

    data = probe_data(task, seed)
    classes = data.label_info.num_labels
    features = {split: kmer_counts(data.splits[split].sequences, 4) for split in ("train", "val", "test")}
    probe = LinearProbe.fit(features["train"], data.splits["train"].labels.ravel(), classes, seed=seed)
    result = {}
    for split in ("val", "test"):
        metrics = task_metrics("classification", classes)
        metrics.update(metric_inputs("classification", torch.from_numpy(probe.logits(features[split]))),
                       torch.from_numpy(data.splits[split].labels.ravel()))
        result[split] = {f"{split}/{name}": float(value) for name, value in metrics.compute().items()}
    return result


def task_overrides(task: str, init: str, seed: int) -> list[str]:
    spec = STUDY["tasks"][task]
    return [f"task={spec['preset']}", "model=tiny", f"model.init={init}", f"data.train={spec['train']}",
            f"data.test={spec['test']}", f"seed={seed}"]


def probes() -> dict:
    """frozen_probe runs: seed 1 with each layer set, then the validation-chosen layers for the other seeds."""
    def layer_text(layers: list[int]) -> str:
        return "[" + ",".join(map(str, layers)) + "]"

    def probe_job(task: str, name: str, init: str, layers: list[int], seed: int):
        out = RESULTS / "probes" / task / f"{name}-layers{'_'.join(map(str, layers))}-seed{seed}"
        overrides = [*task_overrides(task, init, seed), "finetune=frozen_probe",
                     f"finetune.layers={layer_text(layers)}"]
        return lambda: run_train(out, overrides)

    results: dict = {}
    for task in STUDY["probe"]["tasks"]:
        first = [(name, init, layers) for name, init in inits().items() for layers in STUDY["probe"]["layers"]]
        done = in_parallel([probe_job(task, name, init, layers, SEEDS[0]) for name, init, layers in first])
        chosen = {}
        for (name, _, layers), result in zip(first, done):
            results.setdefault(task, {}).setdefault(name, {})[f"seed1 layers {layers}"] = result
            if name not in chosen or result["val"]["val/auroc"] > chosen[name][1]:
                chosen[name] = (layers, result["val"]["val/auroc"])
        rest = [(name, init, chosen[name][0], seed) for name, init in inits().items() for seed in SEEDS[1:]]
        later = in_parallel([probe_job(task, *item) for item in rest])
        for name in inits():
            layers = chosen[name][0]
            runs = [results[task][name][f"seed1 layers {layers}"]]
            runs += [result for item, result in zip(rest, later) if item[0] == name]
            results[task][name] = {"layers": layers, "runs": runs}
        results[task]["4-mer counts"] = {"runs": [four_mer_probe(task, seed) for seed in SEEDS]}
    write_json(RECORD / "probes.json", results)
    return results


def chosen_strategy(probe_results: dict, corpus: str) -> str | None:
    """The corpus's strategy with the highest seed-averaged validation probe AUROC on its home task (None until
    every strategy has its probes)."""
    home = STUDY["corpora"][corpus]["home"]
    if any(f"{corpus}-{s}" not in probe_results.get(home, {}) for s in STUDY["strategies"]):
        return None
    scores = {s: np.mean([r["val"]["val/auroc"] for r in probe_results[home][f"{corpus}-{s}"]["runs"]])
              for s in STUDY["strategies"]}
    return max(scores, key=scores.get)


def row_order(task: str, rows: str) -> int:
    """Position of a recorded row count in plan.yaml's list for the task (the report's order)."""
    return [str(count) for count in STUDY["finetune"]["rows"][task]].index(rows)


def fraction(task: str, rows: int | str) -> float:
    """data.train_fraction giving `rows` training-file rows ('all': every row)."""
    if rows == "all":
        return 1.0
    with open(STUDY["tasks"][task]["train"]) as handle:
        total = sum(1 for _ in handle) - 1
    return rows / total


def finetune(probe_results: dict) -> dict:
    """Every task x rows x init x seed through train.py with the task's preset defaults (random weights, and the
    checkpoints whose pretraining has finished), then the declared levers (labelled as such)."""
    settings = STUDY["finetune"]
    jobs, keys = [], []
    tasks = TASKS or list(settings["rows"])
    for task in tasks if not LEVERS else []:
        corpus = settings["corpus"][task]
        best = chosen_strategy(probe_results, corpus)
        for rows in [rows for rows in settings["rows"][task] if not ROWS or str(rows) in ROWS]:
            every = task in settings["strategies_for"] and rows != "all" and rows <= settings["every_strategy_up_to"]
            strategies = finished(corpus) if every else [best] if best else []
            names = {"random": "random", **{f"{corpus}-{s}": str(final_checkpoint(corpus, s)) for s in strategies}}
            for name, init in names.items():
                for seed in SEEDS:
                    out = RESULTS / "finetune" / task / f"rows{rows}-{name}-seed{seed}"
                    overrides = [*task_overrides(task, init, seed), f"data.train_fraction={fraction(task, rows)}"]
                    jobs.append(lambda out=out, overrides=overrides: run_train(out, overrides))
                    keys.append((task, str(rows), name))
    old = settings["old_defaults"]
    for task in [task for task in old["tasks"] if task in tasks and not LEVERS]:
        for rows in [rows for rows in old["rows"] if not ROWS or str(rows) in ROWS]:
            for seed in SEEDS:
                out = RESULTS / "finetune" / task / f"rows{rows}-random-old-defaults-seed{seed}"
                overrides = [*task_overrides(task, "random", seed), f"data.train_fraction={fraction(task, rows)}",
                             *old["overrides"]]
                jobs.append(lambda out=out, overrides=overrides: run_train(out, overrides))
                keys.append((task, str(rows), "random, old defaults"))
    for lever, spec in [(name, spec) for name, spec in settings.get("levers", {}).items()
                        if not LEVERS or name in LEVERS]:
        for task in [task for task in spec["tasks"] if task in tasks]:
            corpus = settings["corpus"][task]
            strategy = chosen_strategy(probe_results, corpus) if spec["init"] == "chosen" else spec["init"]
            if strategy is None:
                continue
            for rows in [rows for rows in spec["rows"] if not ROWS or str(rows) in ROWS]:
                for seed in SEEDS:
                    tag = f"rows{rows}-{corpus}-{strategy}-{lever.replace(' ', '')}-seed{seed}"
                    out = RESULTS / "finetune" / task / tag
                    overrides = [*task_overrides(task, str(final_checkpoint(corpus, strategy)), seed),
                                 f"data.train_fraction={fraction(task, rows)}", *spec["overrides"]]
                    jobs.append(lambda out=out, overrides=overrides: run_train(out, overrides))
                    keys.append((task, str(rows), f"{corpus}-{strategy}, lever: {lever}"))
    path, results = recorded("finetune")
    for task, rows, name in set(keys):  # what this call runs replaces what was recorded
        results.get(task, {}).get(rows, {}).pop(name, None)
    for (task, rows, name), result in zip(keys, in_parallel(jobs)):
        results.setdefault(task, {}).setdefault(rows, {}).setdefault(name, []).append(result)
    write_json(path, {task: dict(sorted(by_rows.items(), key=lambda item: row_order(task, item[0])))
                      for task, by_rows in results.items()})
    return results


def recorded(stage: str) -> tuple[Path, dict]:
    """A stage's record file and what earlier calls wrote there (a call adds to it)."""
    path = RECORD / f"{stage}.json"
    return path, json.loads(path.read_text()) if path.exists() else {}


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=STAGES, action="append", help="run these stages only (repeatable)")
    parser.add_argument("--parallel", type=int, help=f"runs at a time (plan.yaml: {STUDY['parallel']})")
    parser.add_argument("--task", choices=list(STUDY["finetune"]["rows"]), action="append",
                        help="fine-tune on this task only (repeatable; the finetune stage records the tasks it ran)")
    parser.add_argument("--rows", action="append", help="fine-tune at this row count only (repeatable: 100, all, ...)")
    parser.add_argument("--lever", choices=list(STUDY["finetune"].get("levers", {})), action="append",
                        help="run this declared lever only (repeatable)")
    args = parser.parse_args()
    stages = args.only or STAGES
    PARALLEL[0] = args.parallel or PARALLEL[0]
    TASKS.extend(args.task or [])
    ROWS.extend(args.rows or [])
    LEVERS.extend(args.lever or [])
    if "pretrain" in stages:
        pretrain()
    if "hidden" in stages:
        hidden()
    if "curves" in stages:
        curves()
    probe_results = probes() if "probes" in stages else recorded("probes")[1]
    if "finetune" in stages:
        finetune(probe_results)
    if "report" in stages:
        from experiments.pretrain_transfer.report import report
        report(STUDY, RECORD, RESULTS)


if __name__ == "__main__":
    main()
