"""`dnabert runs DIR...`: the outcome of a sweep (or of any run directories) offline, in one table and one plot:
the config values that differ between the runs, each run's final and best value of the optimised metric (sorted by
it) and its test score, and the learning curves from the runs' CSV logs."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from dnabert.atomic import write_text_atomic
from dnabert.errors import DnabertError, read_json
from dnabert.run_store import IDENTITY_FILE


def natural_key(path: Path) -> list:
    """Sort key that puts `sweep/2` before `sweep/10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def logged_rows(run: Path) -> list[dict[str, str]]:
    """The rows of a run's CSV logs in step order; a resumed run's later log replaces the steps it repeats."""
    rows: list[dict[str, str]] = []
    for path in sorted(run.glob("csv/version_*/metrics.csv"), key=natural_key):
        with open(path, newline="") as handle:
            later = list(csv.DictReader(handle))
        if later:
            rows = [row for row in rows if int(row["step"]) < int(later[0]["step"])] + later
    return rows


def flatten(node: object, prefix: str = "") -> dict[str, object]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists stay values."""
    if not isinstance(node, dict):
        return {prefix: node}
    return {key: value for name, child in node.items()
            for key, value in flatten(child, f"{prefix}.{name}" if prefix else str(name)).items()}


@dataclass
class Run:
    """One finished (or stopped) training run read from its directory."""

    directory: Path
    config: dict[str, object]
    final: dict[str, float]
    test: dict[str, float]
    rows: list[dict[str, str]]

    @classmethod
    def read(cls, directory: Path) -> Run:
        provenance = read_json(directory / IDENTITY_FILE, "a run directory written by train.py")
        metrics, val, test = (directory / f"{name}.json" for name in ("metrics", "val_metrics", "test_metrics"))
        rows = logged_rows(directory)
        if val.exists() and rows:  # the best checkpoint's validation after training, logged at the last step: not
            rescored = read_json(val, "the best checkpoint's validation metrics")  # a point of the learning curve
            last = next((i for i in reversed(range(len(rows))) if any(rows[i].get(key) for key in rescored)), None)
            if last is not None and all(rows[last].get(k) and math.isclose(float(rows[last][k]), v)
                                        for k, v in rescored.items()):
                rows = rows[:last] + rows[last + 1:]
        return cls(directory, flatten(provenance.get("config", {})),
                   read_json(metrics, "the run's final metrics") if metrics.exists() else {},
                   read_json(test, "the run's test metrics") if test.exists() else {}, rows)

    def curve(self, metric: str) -> tuple[list[int], list[float]]:
        """(steps, values) of a logged metric."""
        points = [(int(row["step"]), float(row[metric])) for row in self.rows if row.get(metric)]
        return [step for step, _ in points], [value for _, value in points]


def find_runs(directories: list[Path]) -> list[Path]:
    """The run directories given, or found below the folders given (a Hydra multirun, a study's results)."""
    found: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            raise DnabertError(f"{directory}: not a directory; give run directories or a sweep folder")
        marked = [directory] if (directory / IDENTITY_FILE).exists() else [path.parent for path in
                                                                         directory.rglob(IDENTITY_FILE)]
        if not marked:
            raise DnabertError(f"{directory}: no runs here (a run directory holds {IDENTITY_FILE}, which train.py "
                               "writes); give a sweep folder (multirun/<date>/<time>) or run directories")
        found += sorted(marked, key=natural_key)
    return list(dict.fromkeys(found))


def direction(runs: list[Run], metric: str) -> str:
    """`min` or `max`: the sweeper's direction where the sweep recorded one (multirun.yaml), else by the metric's
    name (losses are minimised, every other metric of dnabert's tasks is maximised)."""
    for run in runs:
        sweep = run.directory.parent / "multirun.yaml"
        if sweep.exists():
            chosen = OmegaConf.select(OmegaConf.load(sweep), "hydra.sweeper.direction")
            if chosen in ("minimize", "maximize"):
                return chosen[:3]
    return "min" if "loss" in metric else "max"


def differing(runs: list[Run]) -> list[str]:
    """Config keys whose values differ between runs, without those that only hold each run's own paths or the
    tracking id derived from them (`logger.wandb.id`)."""
    keys = sorted({key for run in runs for key in run.config})
    own_paths = {key for run in runs for key in keys if str(run.directory.resolve()) in str(run.config.get(key))
                 or key.endswith(".id")}
    return [key for key in keys if key not in own_paths and len({repr(run.config.get(key)) for run in runs}) > 1]


def best(values: list[float], mode: str) -> float:
    return (min if mode == "min" else max)(values) if values else math.nan


def cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def compare(directories: list[Path], out: Path, metric: str | None = None, mode: str | None = None) -> list[Path]:
    """Read the runs, write `runs.md` (the table, also returned for printing first), `runs.tsv` and `curves.png`/
    `.svg` into `out`; returns the paths written."""
    runs = [Run.read(path) for path in find_runs(directories)]
    metric = metric or str(runs[0].config.get("optimized_metric") or "val/loss")
    mode = mode or direction(runs, metric)
    keys = differing(runs)
    test_metric = "test/" + metric.split("/", 1)[-1]
    rows = []
    for run in runs:
        steps, values = run.curve(metric)
        rows.append({"run": run.directory.name if len(runs) > 1 else str(run.directory),
                     **{key: run.config.get(key) for key in keys},
                     "steps": max([int(row["step"]) for row in run.rows], default=None),
                     f"final {metric}": run.final.get(metric, math.nan), f"best {metric}": best(values, mode),
                     test_metric: run.test.get(test_metric, math.nan), "directory": str(run.directory)})
    sign = 1 if mode == "min" else -1
    rows.sort(key=lambda row: (math.isnan(row[f"final {metric}"]), sign * row[f"final {metric}"]
                               if not math.isnan(row[f"final {metric}"]) else 0.0))
    columns = [column for column in rows[0] if column != "directory"]
    if all(math.isnan(row[test_metric]) for row in rows):
        columns.remove(test_metric)
    table = [f"{len(runs)} runs, sorted by final {metric} ({mode}imised); config values that differ: "
             f"{', '.join(keys) or 'none'}", "", "| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if column not in ("run", *keys) else "---" for column in columns) + "|"]
    table += ["| " + " | ".join(cell(row[column]) for column in columns) + " |" for row in rows]
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "runs.md", "\n".join(table) + "\n")
    tsv = [[*columns, "directory"], *([cell(row[column]) for column in [*columns, "directory"]] for row in rows)]
    write_text_atomic(out / "runs.tsv", "".join("\t".join(line) + "\n" for line in tsv))
    return [out / "runs.md", out / "runs.tsv", *plot_curves(runs, keys, metric, out / "curves")]


def plot_curves(runs: list[Run], keys: list[str], metric: str, stem: Path) -> list[Path]:
    """The optimised metric (and the training loss, where logged) against the step, one line per run."""
    from dnabert.interpret.plots import plt, save_figure

    metrics = [metric, *(["train/loss"] if any(run.curve("train/loss")[0] for run in runs) and metric != "train/loss"
                         else [])]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for axis, name in zip(axes[0], metrics):
        for run in runs:
            steps, values = run.curve(name)
            label = ", ".join(f"{key}={cell(run.config.get(key))}" for key in keys) or run.directory.name
            axis.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=label)
        axis.set_xlabel("step")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return save_figure(figure, stem)
