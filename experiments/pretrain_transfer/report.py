"""The pretrain_transfer study's record: results.json, table.md and the figures, from the stages' JSON files and the
pretraining runs' metrics (called by run.py; every number in the README comes from here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dnabert.runs import logged_rows
from dnabert.study import cell

GOALS = {"c": 0.03}
"""Goal (c): at 5 % of the labels or fewer, pretrained beats random init by this much test AUROC (mean of seeds)."""
ROOT = Path(__file__).resolve().parents[2]
ALL_ROWS_STUDY = ROOT / "experiments" / "promoter_dm3"
"""Goal (d), every promoter row: that study's random and fly arms (its study.yaml says why the runs live there)."""


def training_rows(study: dict, task: str) -> int:
    """Rows of a task's training file (its header aside)."""
    with open(study["tasks"][task]["train"]) as handle:
        return sum(1 for _ in handle) - 1


def metric_cells(runs: list[dict], metrics: list[str]) -> str:
    """Table cells `mean ± sd` over runs, one per metric (`val/auroc`, `test/accuracy`, ...)."""
    return " | ".join(cell([run[metric.split("/")[0]][metric] for run in runs]) for metric in metrics)


def pretraining_record(study: dict, results: Path) -> dict:
    """Per corpus and strategy: the validation rows of its run (step, loss, masked and hidden accuracy, baseline),
    the probe callback's rows where it ran, and the run's wall-clock minutes."""
    record = {}
    for corpus in study["corpora"]:
        for strategy in study["strategies"]:
            run = results / "pretrain" / corpus / strategy
            rows = logged_rows(run)  # a resumed run's later log replaces the steps it repeats
            keep = ("val/loss", "val/accuracy", "val/hidden_accuracy", "val/local_baseline", "val/local_baseline_order",
                    "val/hidden_fraction", "probe/auroc")
            record[f"{corpus}/{strategy}"] = [
                {"step": int(row["step"]), **{key: float(row[key]) for key in keep if row.get(key)}}
                for row in rows if row.get("val/loss") or row.get("probe/auroc")]
    return record


def hidden_table(study: dict, hidden: dict) -> list[str]:
    lines = ["| corpus | model | masking (bases per span) | hidden-base accuracy | local k-mer baseline (best m) | "
             "model - baseline |", "|---|---|---|---:|---:|---:|"]
    for key, values in hidden.items():
        corpus, model, masking = key.split("/")
        per_span = {"dnabert": "1", "span": "6"}[masking]
        difference = values["hidden_accuracy"] - values["local_baseline"]
        lines.append(f"| {corpus} | {model} | {masking} ({per_span}) | {values['hidden_accuracy']:.4f} | "
                     f"{values['local_baseline']:.4f} (m = {values['local_baseline_order']:.0f}) | {difference:+.4f} |")
    return lines


def probe_table(probes: dict) -> list[str]:
    lines = ["| task | encoder | layers (chosen on validation) | val AUROC | test AUROC | test accuracy | seeds |",
             "|---|---|---|---:|---:|---:|---:|"]
    for task, encoders in probes.items():
        for name, entry in encoders.items():
            runs = entry["runs"]
            layers = entry.get("layers", "4-mer counts")
            cells = metric_cells(runs, ["val/auroc", "test/auroc", "test/accuracy"])
            lines.append(f"| {task} | {name} | {layers} | {cells} | {len(runs)} |")
    return lines


def finetune_table(finetune: dict) -> list[str]:
    lines = ["| task | labelled rows | init | test AUROC | test accuracy | test MCC | minutes | one-class warnings |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for task, by_rows in finetune.items():
        for rows, by_init in by_rows.items():
            for name, runs in by_init.items():
                warned = sum(bool(r["warnings"]) for r in runs)
                cells = metric_cells(runs, ["test/auroc", "test/accuracy", "test/mcc"])
                lines.append(f"| {task} | {rows} | {name} | {cells} | {np.mean([r['minutes'] for r in runs]):.1f} | "
                             f"{warned} of {len(runs)} |")
    return lines


def goals(study: dict, hidden: dict, probes: dict, finetune: dict, chosen: dict) -> list[str]:
    """The issue's goals (a)-(d), each with its numbers and met / not met."""
    lines = []
    best = max(hidden.items(), key=lambda item: item[1]["hidden_accuracy"] - item[1]["local_baseline"])
    margin = best[1]["hidden_accuracy"] - best[1]["local_baseline"]
    lines.append(f"- (a) best margin over the local baseline: {best[0]} {margin:+.4f} "
                 f"({'met' if margin > 0 else 'not met'})")
    promoter = probes.get("promoter_dm3", {})
    if promoter:
        def test_auroc(name: str) -> float:
            return float(np.mean([r["test"]["test/auroc"] for r in promoter[name]["runs"]]))
        fly = f"fly-{chosen['fly']}"
        kmer = test_auroc("4-mer counts")
        lines.append(f"- (b) promoter_dm3 frozen probe, {fly}: test AUROC {test_auroc(fly):.4f} vs frozen random "
                     f"{test_auroc('random'):.4f} and 4-mer counts {kmer:.4f} "
                     f"({'met' if test_auroc(fly) >= kmer and test_auroc(fly) > test_auroc('random') else 'not met'})")
    rows = finetune.get("promoter_dm3", {})
    fly = f"fly-{chosen['fly']}"

    def compare(label: str, where: str, pre: np.ndarray, rnd: np.ndarray) -> str:
        gain = pre.mean() - rnd.mean()
        apart = pre.mean() - pre.std(ddof=1) > rnd.mean() + rnd.std(ddof=1)
        met = (gain >= GOALS["c"] and apart) if label == "(c)" else gain >= -max(pre.std(ddof=1), rnd.std(ddof=1))
        return (f"- {label} promoter_dm3, {where}: {fly} {cell(pre)} vs random {cell(rnd)} "
                f"(difference {gain:+.4f}; {'met' if met else 'not met'})")

    for count, by_init in rows.items():
        if fly in by_init and int(count) <= 0.05 * training_rows(study, "promoter_dm3"):
            lines.append(compare("(c)", f"{count} rows", *(np.array([r["test"]["test/auroc"] for r in by_init[arm]])
                                                          for arm in (fly, "random"))))
    every_row = ALL_ROWS_STUDY / "results.json"  # goal (d): the promoter_dm3 study's runs on every row
    runs = json.loads(every_row.read_text())["runs"] if every_row.is_file() else []
    by_arm = {arm: np.array([r["test"]["test/auroc"] for r in runs if r["arm"] == arm]) for arm in (fly, "random")}
    if all(len(values) > 1 for values in by_arm.values()):
        lines.append(compare("(d)", f"all rows ({ALL_ROWS_STUDY.name} study)", by_arm[fly], by_arm["random"]))
    else:
        lines.append(f"- (d) promoter_dm3, all rows: pending (`python train.py -m -cd "
                     f"{ALL_ROWS_STUDY.relative_to(ROOT)} -cn study`)")
    return lines


def learning_curves(study: dict, finetune: dict, out: Path) -> None:
    """Test AUROC against labelled rows, one panel per task, one line per init (mean ± sd over seeds)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(finetune), figsize=(5 * len(finetune), 4), squeeze=False)
    for ax, (task, by_rows) in zip(axes[0], finetune.items()):
        sizes = {rows: (training_rows(study, task) if rows == "all" else int(rows)) for rows in by_rows}
        names = sorted({name for by_init in by_rows.values() for name in by_init})
        for name in names:
            points = [(sizes[rows], [r["test"]["test/auroc"] for r in by_init[name]])
                      for rows, by_init in by_rows.items() if name in by_init]
            if len(points) < 2:
                continue
            x = [p[0] for p in points]
            y = np.array([np.mean(p[1]) for p in points])
            e = np.array([np.std(p[1], ddof=1) for p in points])
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=name)
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("labelled training rows (log scale; 'all': every row of the file)")
        ax.set_ylabel("test AUROC")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def pretraining_curves(record: dict, curves: dict, out: Path) -> None:
    """Per corpus: validation hidden-base accuracy vs the local baseline, and the probe's validation AUROC, by step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = sorted({key.split("/")[0] for key in record})
    fig, axes = plt.subplots(2, len(corpora), figsize=(6 * len(corpora), 7), squeeze=False)
    for column, corpus in enumerate(corpora):
        top, bottom = axes[0][column], axes[1][column]
        for key, rows in record.items():
            if not key.startswith(corpus + "/"):
                continue
            strategy = key.split("/")[1]
            valid = [row for row in rows if "val/hidden_accuracy" in row]
            line = top.plot([r["step"] for r in valid], [r["val/hidden_accuracy"] for r in valid], marker="o",
                            label=f"{strategy}: model")[0]
            top.plot([r["step"] for r in valid], [r["val/local_baseline"] for r in valid], linestyle="--",
                     color=line.get_color(), label=f"{strategy}: local baseline")
            points = sorted((int(k.split("/")[2]), v["auroc"]) for k, v in curves.items()
                            if k.startswith(f"{corpus}/{strategy}/"))
            bottom.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=strategy,
                        color=line.get_color())
        top.set_title(f"{corpus}: hidden bases of its own masking (validation)")
        top.set_xlabel("step")
        top.set_ylabel("accuracy")
        top.legend(fontsize=7)
        bottom.set_title(f"{corpus}: linear probe on its home task (validation AUROC)")
        bottom.set_xlabel("pretraining step (0: random weights)")
        bottom.set_ylabel("AUROC")
        bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def report(study: dict, record_dir: Path, results: Path) -> None:
    """Write record/results.json, record/table.md and the figures from what the stages recorded."""
    def load(name: str) -> dict:
        path = record_dir / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    hidden, curves, probes, finetune = load("hidden"), load("curves"), load("probes"), load("finetune")
    # the runs whose pretraining has finished (the curves stage probes exactly those); a run whose logs are not in
    # this checkout's results/ (another machine ran it) keeps what was recorded of it
    recorded = load("pretraining")
    pretraining = {key: rows or recorded.get(key, []) for key, rows in pretraining_record(study, results).items()
                   if any(name.startswith(key + "/") for name in curves)}
    from experiments.pretrain_transfer.run import chosen_strategy
    chosen = {corpus: strategy for corpus in study["corpora"] if (strategy := chosen_strategy(probes, corpus))}
    (record_dir / "pretraining.json").write_text(json.dumps(pretraining, indent=1) + "\n")
    sections = ["## Hidden bases of held-out sequence (goal a)", *hidden_table(study, hidden),
                "", "## Frozen linear probes (goal b)", *probe_table(probes),
                "", f"Strategy chosen per corpus on validation probe AUROC: {chosen}",
                "", "## Fine-tuning by labelled rows (goals c, d; issue 15 item 5)", *finetune_table(finetune),
                "", "## Goals", *(goals(study, hidden, probes, finetune, chosen) if "fly" in chosen else [])]
    (record_dir / "table.md").write_text("\n".join(sections) + "\n")
    (record_dir / "results.json").write_text(json.dumps({"chosen": chosen, "hidden": hidden, "probes": probes,
                                                         "finetune": finetune, "curves": curves}, indent=1) + "\n")
    if finetune:
        learning_curves(study, finetune, record_dir / "label_efficiency.png")
    if pretraining:
        pretraining_curves(pretraining, curves, record_dir / "pretraining.png")
    print("\n".join(sections))
