"""Figures in READMEs as generated blocks: `dnabert figures` rewrites every block from the committed record it names,
so a figure is never typed by hand (and `dnabert figures --check` says which block drifted from its record).

A block in a Markdown file:

    <!-- figures: study-table experiments/splice_primate -->
    (generated; edits are overwritten)
    <!-- /figures -->

The view (`study-table`, `study-summary`, `studies`, `ensembles`, `rerun`, `file`) says what is written, from the
sources after it (study folders, whose `results.json` and `study.yaml` are read, or a committed Markdown record),
named from the checkout root.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from dnabert.atomic import write_text_atomic
from dnabert.errors import DnabertError, read_json
from dnabert.study import STUDY_CONFIG, best_single_run, cell, table

BLOCK = re.compile(r"(<!-- figures: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.DOTALL)
DOCUMENTS = ("README.md", "experiments/*/README.md")
"""The Markdown files whose blocks `dnabert figures` writes, from the checkout root."""


def record(folder: Path) -> dict:
    """A study's committed record (results.json)."""
    path = folder / "results.json"
    if not path.is_file():
        raise DnabertError(f"{path}: no committed record; report the study first (dnabert study {folder})")
    return read_json(path, "report the study again (dnabert study FOLDER)")


def goal(folder: Path) -> dict | None:
    """The goal the study declared (`study.goal: {metric: test/..., at_least: X}`), if any (a report written
    elsewhere, `dnabert study --out`, declares none)."""
    if not (folder / f"{STUDY_CONFIG}.yaml").is_file():
        return None
    declared = OmegaConf.to_container(OmegaConf.load(folder / f"{STUDY_CONFIG}.yaml"))
    return (declared.get("study") or {}).get("goal")


def headline_metric(folder: Path, results: dict) -> str:
    """The test metric a study is judged by: its goal's, else the test counterpart of its selection metric."""
    declared = goal(folder)
    return declared["metric"] if declared else "test/" + results["select"].split("/", 1)[1]


def values(runs: list[dict], arm: str, stage: str, metric: str) -> list[float]:
    return [run[stage][metric] for run in runs if run["arm"] == arm]


def best_baseline(results: dict, metric: str) -> tuple[str, float] | None:
    """The baseline with the highest mean `metric` over the splits, and that mean (None without baselines)."""
    means = {name: float(np.mean([result[metric] for result in scores]))
             for name, scores in results["baselines"].items() if metric in scores[0]}
    return max(means.items(), key=lambda item: item[1]) if means else None


def verdict(folder: Path, results: dict) -> str:
    """`≥ 0.96: met` or `not met` for the chosen arm's mean over runs, or `no goal declared`."""
    declared = goal(folder)
    if not declared:
        return "no goal declared"
    mean = np.mean(values(results["runs"], results["chosen_on_validation"], "test", declared["metric"]))
    return f"≥ {declared['at_least']}: {'**met**' if mean >= declared['at_least'] else '**not met**'}"


def study_table(root: Path, sources: list[str]) -> str:
    """The study's table, as `dnabert study` writes table.md."""
    return table(record(root / sources[0]))


def study_summary(root: Path, sources: list[str]) -> str:
    """What validation chose, how it scores on test alone, as the best single run and as declared ensembles, beside
    the best baseline, and whether the declared goal is met."""
    folder = root / sources[0]
    results = record(folder)
    runs, select, chosen = results["runs"], results["select"], results["chosen_on_validation"]
    metric = headline_metric(folder, results)
    arms = list(dict.fromkeys(run["arm"] for run in runs))
    others = ", ".join(f"{arm} {cell(values(runs, arm, 'val', select))}" for arm in arms if arm != chosen)
    chosen_runs = values(runs, chosen, "test", metric)
    text = [f"Validation chooses `{chosen}` ({select} {cell(values(runs, chosen, 'val', select))}"
            + (f", against {others}" if others else "") + f"). Its {len(chosen_runs)} runs score {metric} "
            f"{cell(chosen_runs)}"]
    best = best_single_run(results)
    if best:
        text.append(f"; its best run on validation alone (seed {best['seed']}) {best['test'][metric]:.4f}")
    if chosen in results["ensembles"]:
        ensembles = [result[metric] for result in results["ensembles"][chosen]]
        text.append(f"; its declared ensembles {cell(ensembles)} ({len(ensembles)} ensemble"
                    f"{'s' * (len(ensembles) > 1)})")
    baseline = best_baseline(results, metric)
    if baseline:
        text.append(f". The best baseline, {baseline[0]}, scores {baseline[1]:.4f}")
    declared = goal(folder)
    if declared:
        text.append(f". Goal: {metric} ≥ {declared['at_least']} for the arm chosen on validation (its mean over "
                    f"runs): {'**met**' if np.mean(chosen_runs) >= declared['at_least'] else '**not met**'}")
    return "".join(text) + ".\n"


def studies(root: Path, sources: list[str]) -> str:
    """One row per study: the arm chosen on validation, its test score over runs, its declared ensembles, the best
    baseline and the goal."""
    lines = ["| study | chosen on validation | test, mean ± sd over runs | declared ensembles of that arm | best "
             "baseline | goal |", "|---|---|---|---|---|---|"]
    for source in sources:
        folder = root / source
        results = record(folder)
        chosen, metric = results["chosen_on_validation"], headline_metric(folder, results)
        runs = values(results["runs"], chosen, "test", metric)
        ensembles = [result[metric] for result in results["ensembles"].get(chosen, [])]
        baseline = best_baseline(results, metric)
        lines.append(f"| [{folder.name}]({source}/) | `{chosen}` | {metric} {cell(runs)} ({len(runs)} "
                     f"runs) | {cell(ensembles) if ensembles else ''} | "
                     f"{f'{baseline[0]} {baseline[1]:.4f}' if baseline else ''} | {verdict(folder, results)} |")
    return "\n".join(lines) + "\n"


def ensembles_sentence(root: Path, sources: list[str]) -> str:
    """The declared ensembles of a study's chosen arm against its single runs, in one sentence."""
    folder = root / sources[0]
    results = record(folder)
    chosen, metric = results["chosen_on_validation"], headline_metric(folder, results)
    runs = values(results["runs"], chosen, "test", metric)
    ensembles = [result[metric] for result in results["ensembles"][chosen]]
    return (f"On the primate splice set ([{folder.name}]({sources[0]}/)), the declared ensembles of the arm "
            f"chosen on validation (`{chosen}`) score {metric} {cell(ensembles)} over {len(ensembles)} ensembles, "
            f"where its single models score {cell(runs)} over {len(runs)} seeds.\n")


def rerun(root: Path, sources: list[str]) -> str:
    """Each run of a rerun record (`dnabert study --out`) beside the same run in the study's record: the selection
    metric, the headline test metric, and the largest difference over every validation and test metric."""
    study, again = record(root / sources[0]), record(root / sources[1])
    select, metric = study["select"], headline_metric(root / sources[0], study)
    lines = [f"| run | {select}, recorded | rerun | {metric}, recorded | rerun | largest difference, any metric |",
             "|---|---:|---:|---:|---:|---:|"]
    for run in again["runs"]:
        key = (run["arm"], run["seed"], run.get("fold"))
        old = next(r for r in study["runs"] if (r["arm"], r["seed"], r.get("fold")) == key)
        gap = max(abs(old[stage][name] - run[stage][name]) for stage in ("val", "test") for name in old[stage])
        name = f"{run['arm']}, seed {run['seed']}" + (f", fold {run['fold']}" if "fold" in run else "")
        lines.append(f"| {name} | {old['val'][select]:.4f} | {run['val'][select]:.4f} | {old['test'][metric]:.4f} | "
                     f"{run['test'][metric]:.4f} | {gap:.2g} |")
    return "\n".join(lines) + "\n"


def committed_file(root: Path, sources: list[str]) -> str:
    """A committed Markdown record, as it is."""
    if not (root / sources[0]).is_file():
        raise DnabertError(f"{sources[0]}: no such committed record")
    return (root / sources[0]).read_text(encoding="utf-8")


VIEWS: dict[str, Callable[[Path, list[str]], str]] = {
    "study-table": study_table, "study-summary": study_summary, "studies": studies,
    "ensembles": ensembles_sentence, "rerun": rerun, "file": committed_file}


def render(spec: str, root: Path, where: str) -> str:
    """The body of one block (`VIEW SOURCE...`), from records under `root`."""
    view, *sources = spec.split()
    if view not in VIEWS or not sources:
        raise DnabertError(f"{where}: figures block '{spec}': give a view ({', '.join(VIEWS)}) and its sources")
    return VIEWS[view](root, sources)


def regenerate(text: str, root: Path, name: str) -> str:
    """`text` with every block rewritten from its records."""
    def body(match: re.Match) -> str:
        line = text.count("\n", 0, match.start()) + 1
        return match.group(1) + render(match.group("spec"), root, f"{name} line {line}") + match.group(4)
    return BLOCK.sub(body, text)


def generated(root: Path) -> dict[Path, str]:
    """What every generated file should hold: each document with its blocks rewritten, and each study report's
    table.md from its results.json."""
    files = {path: regenerate(path.read_text(encoding="utf-8"), root, str(path.relative_to(root)))
             for pattern in DOCUMENTS for path in root.glob(pattern)}
    for declaration in root.glob(f"experiments/*/{STUDY_CONFIG}.yaml"):  # the study's report, and its reruns
        for results in [declaration.parent / "results.json", *declaration.parent.glob("rerun-*/results.json")]:
            if results.is_file():
                files[results.parent / "table.md"] = table(record(results.parent))
    return dict(sorted(files.items()))


def stale(root: Path) -> list[str]:
    """The generated files that differ from what their records give (nothing is written)."""
    return [str(path.relative_to(root)) for path, text in generated(root).items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]


def write_all(root: Path) -> list[str]:
    """Rewrite every generated file from its records; returns those that changed."""
    changed = stale(root)
    for path, text in generated(root).items():
        if str(path.relative_to(root)) in changed:
            write_text_atomic(path, text)
    return changed
