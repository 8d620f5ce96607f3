"""Fine-tuning study: several initialisations x seeds through `train.py`, plus k-mer logistic regression.

Usage (from the project root):
    .venv/bin/python experiments/finetune_study.py --train T.tsv --test S.tsv --task splice \
        --init pretrained=PATH --init random=random --init "lora=PATH finetune=lora" \
        --seeds 1 2 3 --out experiments/x/results [-- overrides for every run]
    .venv/bin/python experiments/finetune_study.py --cv ALL.tsv --folds 5 ...   # stratified folds per seed

Prints a Markdown table of test metrics, mean +- sd over seeds (and folds), with the baselines on the same
splits (logistic regression on 4-mer counts, on 4-mer counts per third and on one-hot sequence; with --cnn-epochs N
also a small one-hot CNN). With --ensemble N the runs of each initialisation are also scored N consecutive seeds at
a time as deep ensembles (the mean class probabilities of their best-on-validation models, as `dnabert predict A B C`
gives them); with --ensemble-inits also as ensembles that pool those seeds' runs of every initialisation (e.g.
models of different k). With --cv each seed deals the rows of ALL.tsv into stratified folds, written under
OUT/folds/ with the input's own header and lines (so DNABERT's k-mer format stays k-mer format). Runs whose
`study_minutes.json` exists are reused, so a study can be extended with more initialisations.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from transformers.utils.logging import disable_progress_bar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dnabert.baselines import baseline_rows  # noqa: E402
from dnabert.data.finetuning import natural_order  # noqa: E402
from dnabert.data.labelled import LabelledRows  # noqa: E402
from dnabert.data.labelled_layouts import read_labelled  # noqa: E402
from dnabert.models.inference import load_ensemble, output_names, predict  # noqa: E402
from dnabert.study import probability_metrics  # noqa: E402

METRICS = ("accuracy", "f1", "mcc", "auroc")


def test_probabilities(run_dirs: list[Path], test: LabelledRows) -> tuple[list[str], dict[Path, np.ndarray]]:
    """Class names and the test-set class probabilities of each run's best-on-validation model (one prediction per
    run, however many ensembles share it; `load_ensemble` checks the runs are of one task)."""
    models = load_ensemble([run_dir / "checkpoints" / "best.hf" for run_dir in run_dirs])
    return output_names(models[0]), {run_dir: predict(model, test.sequences, progress=False)
                                     for run_dir, model in zip(run_dirs, models)}


def stratified_folds(labels: list[str], folds: int, seed: int) -> np.ndarray:
    """Fold index of every row: each class shuffled (seeded) and dealt round-robin, so folds stay balanced."""
    labels_array = np.array(labels)
    assignment = np.empty(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    dealt = 0
    for label in natural_order(set(labels)):
        members = rng.permutation(np.flatnonzero(labels_array == label))
        assignment[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return assignment


def write_folds(path: Path, folds: int, seed: int, out: Path) -> list[tuple[str, Path, Path]]:
    """(name, train file, test file) of each fold, written with the input's own header and row lines."""
    rows = read_labelled(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assignment = stratified_folds([labels[0] for labels in rows.labels], folds, seed)
    splits = []
    for fold in range(folds):
        directory = out / f"seed{seed}-fold{fold}"
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        for split, chosen in (("train", assignment != fold), ("test", assignment == fold)):
            file = directory / f"{split}{path.suffix}"
            body = [lines[line - 1] for line, keep in zip(rows.lines, chosen) if keep]
            file.write_text("\n".join([lines[0], *body]) + "\n", encoding="utf-8")
            files.append(file)
        splits.append((f"seed{seed}-fold{fold}", *files))
    return splits


def brief(metrics: dict[str, float]) -> str:
    """One progress line's worth of test metrics."""
    return ", ".join(f"{m} {metrics[f'test/{m}']:.4f}" for m in METRICS)


def summary_table(rows: dict[str, list[dict[str, float]]], notes: dict[str, str]) -> str:
    """Markdown table: mean ± sd of each test metric over a row's runs (the single value for one run)."""
    lines = ["| model | " + " | ".join(f"test {m}" for m in METRICS) + " | runs |",
             "|---|" + "---:|" * (len(METRICS) + 1)]
    for name, runs in rows.items():
        cells = []
        for metric in METRICS:
            values = np.array([run[f"test/{metric}"] for run in runs])
            cells.append(f"{values.mean():.4f} ± {values.std(ddof=1):.4f}" if len(values) > 1 else f"{values[0]:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {notes[name]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument("--cv", type=Path, help="one labelled file to cross-validate on (instead of --train/--test)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--task", default="classify")
    parser.add_argument("--init", action="append", default=[],
                        help="'NAME=random|PATH [override ...]' (repeatable; none: baselines only), e.g. "
                             "'lora=DIR finetune=lora task.optimizer.lr=1e-3'")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cnn-epochs", type=int, default=0, help="also train the one-hot CNN reference this long")
    parser.add_argument("--ensemble", type=int, default=0,
                        help="also score ensembles of this many runs (consecutive seeds, classification)")
    parser.add_argument("--ensemble-inits", action="store_true",
                        help="with --ensemble N, also pool the N seeds' runs of every --init into one ensemble")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides (after --)")
    args = parser.parse_args()
    disable_progress_bar()  # the ensembles' "Loading weights" bars
    if (args.cv is None) == (args.train is None or args.test is None):
        parser.error("give either --train and --test, or --cv")
    if args.ensemble and (args.cv is not None or args.ensemble < 2 or len(args.seeds) % args.ensemble):
        parser.error("--ensemble N needs --train/--test, N >= 2 and a number of seeds divisible by N")
    if args.ensemble_inits and (not args.ensemble or len(args.init) < 2):
        parser.error("--ensemble-inits needs --ensemble N and at least two --init")
    if args.cv is not None and args.folds < 2:
        parser.error("--folds must be at least 2")
    args.out.mkdir(parents=True, exist_ok=True)
    splits = {seed: write_folds(args.cv, args.folds, seed, args.out / "folds") if args.cv
              else [(f"seed{seed}", args.train, args.test)] for seed in args.seeds}
    results: dict[str, list[dict]] = {}
    ensembles: dict[str, list[dict]] = {}
    ensemble_test = read_labelled(args.test) if args.ensemble else None
    init_runs: dict[str, list[Path]] = {}
    if len({item.split("=", 1)[0] for item in args.init}) < len(args.init):
        parser.error("each --init needs its own NAME")
    for name, spec in (item.split("=", 1) for item in args.init):
        init, *init_overrides = spec.split()
        run_dirs = []
        for seed in args.seeds:
            for split, train, test in splits[seed]:
                run_dir = args.out / f"{name}-{split}"
                command = [sys.executable, str(ROOT / "train.py"), f"task={args.task}", f"model.init={init}",
                           f"data.train={train}", f"data.test={test}", f"seed={seed}",
                           f"paths.output_dir={run_dir}", "callbacks.progress_bar=null", *args.overrides,
                           *init_overrides]
                timing = run_dir / "study_minutes.json"
                if not timing.exists():
                    started = time.perf_counter()
                    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
                    if completed.returncode != 0:
                        sys.exit(f"{name} {split} failed:\n{completed.stderr[-3000:]}")
                    timing.write_text(json.dumps((time.perf_counter() - started) / 60))
                metrics = json.loads((run_dir / "test_metrics.json").read_text())
                metrics["minutes"] = json.loads(timing.read_text())
                results.setdefault(f"dnabert ({name} init)", []).append(metrics)
                print(f"{name} {split}: {brief(metrics)}", flush=True)
                run_dirs.append(run_dir)
        init_runs[name] = run_dirs
    pooled = f"dnabert ({' + '.join(init_runs)} inits), ensemble of {args.ensemble * len(init_runs)}"
    if args.ensemble:
        classes, probabilities = test_probabilities([d for run_dirs in init_runs.values() for d in run_dirs],
                                                    ensemble_test)
        batches = [(f"dnabert ({name} init), ensemble of {args.ensemble}", name, {name: run_dirs})
                   for name, run_dirs in init_runs.items()]
        batches += [(pooled, "all inits", init_runs)] if args.ensemble_inits else []
        for row, label, runs in batches:
            for start in range(0, len(args.seeds), args.ensemble):
                members = [d for run_dirs in runs.values() for d in run_dirs[start : start + args.ensemble]]
                metrics = probability_metrics(np.mean([probabilities[d] for d in members], axis=0), classes,
                                              ensemble_test)
                ensembles.setdefault(row, []).append(metrics)
                print(f"{label} ensemble of seeds {args.seeds[start : start + args.ensemble]}: {brief(metrics)}",
                      flush=True)
    pairs = dict.fromkeys((train, test) for seed in args.seeds for _, train, test in splits[seed])
    baselines: dict[str, list[dict]] = {}
    for train, test in pairs:
        for name, metrics in baseline_rows(train, test, args.cnn_epochs).items():
            baselines.setdefault(name, []).append(metrics)
    seeds = f"{args.folds} folds x " * bool(args.cv) + f"{len(args.seeds)} seed" + "s" * (len(args.seeds) > 1)
    notes = {name: f"{seeds}, {np.mean([r['minutes'] for r in runs]):.1f} min each"
             for name, runs in results.items()}
    notes.update({name: f"{len(runs)} ensemble{'s' * (len(runs) > 1)} of {args.ensemble} seeds"
                        + f" x {len(init_runs)} inits" * (name == pooled) for name, runs in ensembles.items()})
    notes.update({name: f"same {len(runs)} splits" if len(runs) > 1 else "deterministic"
                  for name, runs in baselines.items()})
    table = summary_table({**results, **ensembles, **baselines}, notes)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps({"dnabert": results, "ensembles": ensembles,
                                                       "baselines": baselines}, indent=1))
    print(table)


if __name__ == "__main__":
    main()
