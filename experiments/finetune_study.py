"""Fine-tuning study: several initialisations x seeds through `train.py`, plus k-mer logistic regression.

Usage (from the project root):
    .venv/bin/python experiments/finetune_study.py --train T.tsv --test S.tsv --task splice \
        --init pretrained=PATH --init random=random --seeds 1 2 3 --out experiments/x/results [-- extra overrides]

Prints a Markdown table of test metrics, mean +- sd over seeds, with the baselines in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dnabert.data.labelled import read_labelled  # noqa: E402
from dnabert.data.finetuning import natural_order  # noqa: E402
from dnabert.models.metrics import metric_inputs, task_metrics  # noqa: E402

METRICS = ("accuracy", "f1", "mcc", "auroc")


def kmer_counts(sequences: list[str], k: int) -> np.ndarray:
    """Normalised counts of every k-mer (ACGT order) per sequence."""
    index = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    features = np.zeros((len(sequences), len(index)), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        for i in range(len(sequence) - k + 1):
            column = index.get(sequence[i : i + k])
            if column is not None:
                features[row, column] += 1
    return features / np.maximum(features.sum(1, keepdims=True), 1)


def one_hot(sequences: list[str]) -> np.ndarray:
    """Position-specific one-hot encoding (sequences of equal length)."""
    table = {"A": 0, "C": 1, "G": 2, "T": 3}
    width = max(map(len, sequences))
    features = np.zeros((len(sequences), width, 4), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        for column, base in enumerate(sequence):
            if base in table:
                features[row, column, table[base]] = 1
    return features.reshape(len(sequences), -1)


def logistic_regression(train_x, train_y, test_x, classes: int, l2: float = 1e-3) -> np.ndarray:
    """Multinomial logistic regression (L-BFGS, L2 penalty, standardised features); test logits."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.from_numpy((train_x - mean) / std)
    y = torch.from_numpy(train_y)
    weights = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weights + bias, y) + l2 * weights.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return (torch.from_numpy((test_x - mean) / std) @ weights + bias)


def baseline_rows(train_path: Path, test_path: Path) -> dict[str, dict[str, float]]:
    """Test metrics of 4-mer-count and one-hot logistic regression."""
    train, test = read_labelled(train_path), read_labelled(test_path)
    classes = natural_order({labels[0] for labels in train.labels})
    lookup = {name: i for i, name in enumerate(classes)}
    train_y = np.array([lookup[labels[0]] for labels in train.labels])
    test_y = torch.tensor([lookup[labels[0]] for labels in test.labels])
    rows = {}
    for name, features in (("4-mer logistic regression", lambda s: kmer_counts(s, 4)), ("one-hot logistic regression", one_hot)):
        if name.startswith("one-hot") and len({len(s) for s in train.sequences + test.sequences}) > 1:
            continue
        logits = logistic_regression(features(train.sequences), train_y, features(test.sequences), len(classes))
        metrics = task_metrics("classification", len(classes))
        metrics.update(metric_inputs("classification", logits), test_y)
        rows[name] = {key: float(value) for key, value in metrics.compute().items()}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--task", default="classify")
    parser.add_argument("--init", action="append", required=True, help="NAME=random|PATH (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides (after --)")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    for name, init in (item.split("=", 1) for item in args.init):
        for seed in args.seeds:
            run_dir = args.out / f"{name}-seed{seed}"
            command = [sys.executable, str(ROOT / "train.py"), f"task={args.task}", f"model.init={init}",
                       f"data.train={args.train}", f"data.test={args.test}", f"seed={seed}",
                       f"paths.output_dir={run_dir}", "callbacks.progress_bar=null", *args.overrides]
            started = time.perf_counter()
            completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            if completed.returncode != 0:
                sys.exit(f"{name} seed {seed} failed:\n{completed.stderr[-3000:]}")
            metrics = json.loads((run_dir / "test_metrics.json").read_text())
            metrics["minutes"] = (time.perf_counter() - started) / 60
            results.setdefault(f"dnabert ({name} init)", []).append(metrics)
            print(f"{name} seed {seed}: " + ", ".join(f"{m} {metrics[f'test/{m}']:.4f}" for m in METRICS), flush=True)
    baselines = baseline_rows(args.train, args.test)
    lines = ["| model | " + " | ".join(f"test {m}" for m in METRICS) + " | runs |", "|---|" + "---:|" * (len(METRICS) + 1)]
    for name, runs in results.items():
        cells = []
        for metric in METRICS:
            values = np.array([run[f"test/{metric}"] for run in runs])
            cells.append(f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(runs)} seeds, {np.mean([r['minutes'] for r in runs]):.1f} min each |")
    for name, metrics in baselines.items():
        lines.append(f"| {name} | " + " | ".join(f"{metrics[m]:.4f}" for m in METRICS) + " | deterministic |")
    table = "\n".join(lines)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps({"dnabert": results, "baselines": baselines}, indent=1))
    print(table)


if __name__ == "__main__":
    main()
