"""Benchmark suites (GUE, GenomicBenchmarks, Nucleotide Transformer tasks): every task of a suite over several
seeds through the same training run as `python -m dnabert.train benchmark=<suite> benchmark.task=<task>`,
summarised in one table.

A suite is one config, `conf/benchmark/<suite>.yaml`: its data layout, the metric it reports and its tasks (name:
folder). A suite runs as one Hydra sweep of the training run through the study sweeper, on the launcher the
overrides choose (`hydra/launcher=joblib`, `submitit_slurm`): a finished run is reused by the run store's rule
(dnabert/run_store.py: the same resolved config, data, `model.init` and threads), so an interrupted suite continues
where it stopped and a finished one submits nothing.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from dnabert.atomic import write_text_atomic
from dnabert.config import BENCHMARK_SUITES, CONF_DIR, composed
from dnabert.errors import DnabertError, read_json


@dataclass
class TaskResult:
    """One task of a suite: the metric it reports and its test value under each seed."""

    suite: str
    task: str
    metric: str
    values: dict[int, float]

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values())))

    @property
    def sd(self) -> float:
        """Sample standard deviation over seeds (NaN with one seed)."""
        values = list(self.values.values())
        return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def suite_tasks(suite: str) -> list[str]:
    """The tasks of a suite (`benchmark.tasks` of its config), in name order."""
    if suite not in BENCHMARK_SUITES:
        raise DnabertError(f"unknown benchmark suite {suite!r}: use one of {', '.join(BENCHMARK_SUITES)}")
    return sorted(OmegaConf.load(CONF_DIR / "benchmark" / f"{suite}.yaml").benchmark.tasks)


def task_config(suite: str, task: str, init: str, overrides: list[str]) -> DictConfig:
    """The composed config of one task, as `python -m dnabert.train benchmark=<suite> benchmark.task=<task>
    model.init=INIT OVERRIDES` runs it."""
    return composed([f"benchmark={suite}", f"benchmark.task={task}", f"model.init={init}", *overrides])


def run_suite(suite: str, init: str, seeds: list[int], out: Path, tasks: list[str] | None = None,
              overrides: list[str] | None = None) -> list[TaskResult]:
    """Train and test every task (or `tasks`) of `suite` under each seed, as one Hydra sweep of the training run
    (`OUT/<task>/seed<S>/`; any launcher given in `overrides`, finished runs reused by the run store); one
    `TaskResult` per task."""
    available = suite_tasks(suite)
    unknown = [task for task in tasks or [] if task not in available]
    if unknown:
        raise DnabertError(f"{suite} has no task {unknown[0]!r}; its tasks: {', '.join(available)}")
    tasks, overrides = tasks or available, overrides or []
    run_overrides = [override for override in overrides if not override.startswith("hydra")]  # not the launcher's
    configs = {task: task_config(suite, task, init, run_overrides) for task in tasks}
    missing = [task for task, cfg in configs.items()
               if not all(Path(cfg.data[split]).exists() for split in ("train", "test"))]
    if missing:  # before hours of training on the tasks that are there
        first = configs[missing[0]]
        raise DnabertError(f"{first.data.train}: not found; no local copy of {len(missing)} {suite} task(s) "
                           f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}) under "
                           f"benchmark.root={first.benchmark.root}: download the suite "
                           f"(conf/benchmark/{suite}.yaml says how), set --root, or choose --tasks")
    sweep = [sys.executable, "-m", "dnabert.train", "-m", "hydra/sweeper=study", f"benchmark={suite}",
             f"benchmark.task={','.join(tasks)}", f"seed={','.join(map(str, seeds))}", f"model.init={init}",
             f"hydra.sweep.dir={out}", "hydra.sweep.subdir=${benchmark.task}/seed${seed}", *overrides]
    if subprocess.run(sweep).returncode != 0:
        raise DnabertError(f"the {suite} sweep into {out} failed (its own message is above); rerun to continue: "
                           "finished runs are reused")
    results = []
    for task in tasks:
        metric = configs[task].benchmark.metric
        result = TaskResult(suite, task, metric, {})
        for seed in seeds:
            metrics = read_json(out / task / f"seed{seed}" / "test_metrics.json", "rerun the benchmark")
            if f"test/{metric}" not in metrics:
                raise DnabertError(f"{out / task / f'seed{seed}'}/test_metrics.json: no test/{metric}; the run "
                                   f"reported {sorted(metrics)}")
            result.values[seed] = metrics[f"test/{metric}"]
        results.append(result)
    return results


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def write_tables(results: list[TaskResult], out: Path) -> list[Path]:
    """`OUT/results.tsv` (one row per task: mean, sd, per-seed values) and `OUT/results.md`."""
    tsv = ["suite\ttask\tmetric\tmean\tsd\tseeds\tper_seed"]
    markdown = ["| task | metric | mean ± sd | seeds | per seed |", "|---|---|---:|---:|---|"]
    for r in results:
        per_seed = " ".join(f"{seed}:{_number(value)}" for seed, value in r.values.items())
        tsv.append("\t".join([r.suite, r.task, r.metric, _number(r.mean), _number(r.sd), str(len(r.values)),
                              per_seed]))
        spread = "" if math.isnan(r.sd) else f" ± {r.sd:.3f}"
        markdown.append(f"| {r.task} | {r.metric} | {r.mean:.3f}{spread} | {len(r.values)} | "
                        f"{', '.join(f'{v:.3f}' for v in r.values.values())} |")
    paths = [out / "results.tsv", out / "results.md"]
    for path, lines in zip(paths, (tsv, markdown)):
        write_text_atomic(path, "\n".join(lines) + "\n")
    return paths


def plot_results(results: list[TaskResult], stem: Path, title: str) -> list[Path]:
    """Horizontal bars of each task's mean with its sd over seeds, PNG + SVG."""
    from dnabert.interpret.plots import plt, save_figure

    figure, axis = plt.subplots(figsize=(7, 0.35 * len(results) + 1.2))
    labels = [f"{r.task} ({r.metric})" for r in results]
    errors = [0.0 if math.isnan(r.sd) else r.sd for r in results]
    positions = np.arange(len(results))
    axis.barh(positions, [r.mean for r in results], xerr=errors, color="#4477aa", capsize=3)
    axis.set_yticks(positions, labels)
    axis.invert_yaxis()
    axis.set_xlim(min([0.0] + [r.mean - e for r, e in zip(results, errors)]), 1.0)  # every suite metric is <= 1
    axis.set_xlabel("test metric, mean ± sd over seeds")
    axis.set_title(title)
    axis.grid(axis="x", alpha=0.3)
    return save_figure(figure, stem)

