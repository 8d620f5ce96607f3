"""Planted-motif recovery: plant JASPAR motifs into real backgrounds, fine-tune one classifier per background and
seed, run `dnabert motifs` with every method on its held-out split, count the planted matrices TOMTOM finds.

    .venv/bin/python experiments/motif_recovery/run.py [experiments/motif_recovery/config.yaml] [key=value ...]

Every stage is skipped when its output exists, so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from scipy.stats import rankdata

from dnabert.atomic import write_json_atomic, write_text_atomic
from dnabert.data.planted import planted_lines, planted_rows
from dnabert.genome.shards import open_genome
from dnabert.interpret.attribution import one_hot as nucleotide_one_hot
from dnabert.interpret.jaspar import Matrix, read_meme, tomtom_matches
from dnabert.interpret.motif_outputs import match_lines
from dnabert.study import cell

ROOT = Path(__file__).resolve().parents[2]


def load_config(argv: list[str]):
    """The YAML recipe (first argument, else config.yaml beside this file) with `key=value` overrides."""
    files = [a for a in argv if "=" not in a]
    path = Path(files[0]) if files else Path(__file__).with_name("config.yaml")
    return OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist([a for a in argv if "=" in a]))


def planted_matrices(cfg) -> dict[str, Matrix]:
    """The configured JASPAR matrices by id."""
    known = {m.identifier: m for m in read_meme(Path(cfg.jaspar))}
    missing = [identifier for identifier in cfg.motifs if identifier not in known]
    if missing:
        sys.exit(f"{cfg.jaspar}: no matrices {missing}")
    return {identifier: known[identifier] for identifier in cfg.motifs}


def make_data(cfg, fasta: str, seed: int, out: Path, matrices: dict[str, Matrix]) -> None:
    """train.tsv and test.tsv with the motifs planted, their backgrounds from disjoint parts of every contig."""
    if (out / "test.tsv").exists():
        return
    shards = open_genome(Path(fasta), Path(cfg.output_dir) / "cache", progress=False)
    parts = {"train": (0.0, 1.0 - cfg.test_part), "test": (1.0 - cfg.test_part, 1.0)}
    for offset, split in enumerate(("train", "test")):
        rows = planted_rows(shards, {i: m.probabilities for i, m in matrices.items()}, cfg[split].per_motif,
                            cfg[split].negatives, cfg.length, 1000 * seed + offset, part=parts[split])
        write_text_atomic(out / f"{split}.tsv", "\n".join(planted_lines(rows)) + "\n")


def run(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def train(cfg, seed: int, out: Path) -> dict:
    """Fine-tune on train.tsv (validation held out of it), score test.tsv once; the test metrics."""
    metrics = out / "model" / "test_metrics.json"
    if not metrics.exists():
        run([sys.executable, "train.py", *cfg.train_overrides, f"data.train={out / 'train.tsv'}",
             f"data.test={out / 'test.tsv'}", f"seed={seed}", f"paths.output_dir={out / 'model'}",
             f"hydra.run.dir={out / 'hydra'}", f"paths.cache_dir={Path(cfg.output_dir) / 'cache'}",
             "callbacks.progress_bar=null"])
    return json.loads(metrics.read_text())


def discover(cfg, out: Path, method: str) -> Path:
    """`dnabert motifs --method` on the test split; its output directory."""
    motifs = out / f"motifs-{method}"
    if not (motifs / "jaspar_matches.tsv").exists():
        run([sys.executable, "-m", "dnabert.cli", "motifs", str(out / "model" / "checkpoints" / "best.hf"),
             "--input", str(out / "test.tsv"), "--out", str(motifs), "--method", method, "--jaspar", cfg.jaspar,
             "--quiet"])
    return motifs


def predictions_on_test(out: Path) -> np.ndarray:
    """P(label 1) per test row by the chosen model (`dnabert predict`, its output kept in test_predictions.tsv)."""
    predictions = out / "test_predictions.tsv"
    if not predictions.exists():
        run([sys.executable, "-m", "dnabert.cli", "predict", str(out / "model" / "checkpoints" / "best.hf"),
             "--input", str(out / "test.tsv"), "--out", str(predictions), "--quiet"])
    return np.array([float(r["p_1"]) for r in csv.DictReader(open(predictions), delimiter="\t")])


def validation_curve(model_dir: Path) -> list[float]:
    """Validation AUROC after each epoch of a fine-tuning run (its CSV log)."""
    log = next(model_dir.glob("csv/version_*/metrics.csv"))
    return [float(r["val/auroc"]) for r in csv.DictReader(open(log)) if r.get("val/auroc")]


def recovery(matches_file: Path, matrices: dict[str, Matrix], cutoff: float) -> list[dict]:
    """Per planted matrix: the discovered motif matching it best (that matrix or another JASPAR matrix of the same
    TF, at q < cutoff) as rank 1 (`recovered`) and as rank <= 3 (`recovered_top3`)."""
    matches = [m for m in csv.DictReader(open(matches_file), delimiter="\t") if float(m["q_value"]) < cutoff]
    rows = []
    for identifier, matrix in matrices.items():
        hits = sorted((m for m in matches if m["jaspar_id"] == identifier
                       or m["jaspar_name"].upper() == matrix.name.upper()), key=lambda m: float(m["q_value"]))
        first = [m for m in hits if m["rank"] == "1"]
        best = (first or hits or [None])[0]
        rows.append({"jaspar_id": identifier, "tf": matrix.name, "motif": best["motif"] if best else "",
                     "matched": best["jaspar_id"] if best else "", "rank": int(best["rank"]) if best else None,
                     "q_value": float(best["q_value"]) if best else None, "recovered": bool(first),
                     "recovered_top3": any(int(m["rank"]) <= 3 for m in hits)})
    return rows


def matrix_scores(one_hot: np.ndarray, matrix: Matrix) -> np.ndarray:
    """Each row's best log-odds match to `matrix` (either strand) over the uniform background, from (N, L, 4)
    one-hot rows."""
    log_odds = np.log((matrix.probabilities + 1e-3) / 0.25).T  # width x 4
    windows = np.lib.stride_tricks.sliding_window_view(one_hot, len(log_odds), axis=1)  # N, L-w+1, 4, w
    # the reverse complement reads ACGT -> TGCA backwards
    return np.max([np.einsum("nlcw,wc->nl", windows, w).max(1) for w in (log_odds, log_odds[::-1, ::-1])], axis=0)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of scores for boolean labels (ties count half)."""
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - labels.sum() * (labels.sum() + 1) / 2) / (labels.sum() * (~labels).sum()))


def planted_matrix_scores(rows: list[dict], matrices: dict[str, Matrix]) -> dict[str, np.ndarray]:
    """Per planted matrix, each row's best log-odds match to it (`matrix_scores`)."""
    one_hot = np.stack([nucleotide_one_hot(r["sequence"]) for r in rows])
    return {identifier: matrix_scores(one_hot, matrix) for identifier, matrix in matrices.items()}


def oracle_auroc(rows: list[dict], scores: dict[str, np.ndarray]) -> float:
    """AUROC of the planted matrices themselves (`planted_matrix_scores`): each row scored by its best match to any
    of them: what separating planted from unplanted rows allows at best."""
    return auroc(np.max(list(scores.values()), axis=0), np.array([r["label"] == "1" for r in rows]))


def per_matrix_auroc(rows: list[dict], scores: np.ndarray, identifiers: Iterable[str]) -> dict[str, float]:
    """Per planted matrix (of `identifiers`), the AUROC of per-row `scores` on its positives against all negatives."""
    negative = np.array([r["label"] == "0" for r in rows])
    result = {}
    for identifier in identifiers:
        mine = np.array([r["motif"] == identifier for r in rows]) | negative
        result[identifier] = auroc(scores[mine], ~negative[mine])
    return result


def own_matrix_auroc(rows: list[dict], scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Per planted matrix, `per_matrix_auroc` of its own best log-odds match: what that matrix allows at best."""
    return {identifier: per_matrix_auroc(rows, values, [identifier])[identifier]
            for identifier, values in scores.items()}


def planted_sites(rows: list[dict], tracks, identifier: str, width: int) -> list[np.ndarray]:
    """The (width, 4) slices of each row's track (ACGT columns) at its planted `identifier` site, read on the strand
    it was written (the reverse complement of ACGT columns is both axes reversed)."""
    sites = []
    for row, track in zip(rows, tracks):
        if row["motif"] == identifier:
            site = track[int(row["start"]) : int(row["start"]) + width]
            sites.append(site if row["strand"] == "+" else site[::-1, ::-1])
    return sites


def site_matrices(rows: list[dict], matrices: dict[str, Matrix]) -> list[Matrix]:
    """Per planted matrix, the frequency matrix of its planted sites in `rows`: what a discovery that found every
    site, exactly aligned, would report."""
    one_hots = [nucleotide_one_hot(r["sequence"]) for r in rows]
    found = []
    for identifier, matrix in matrices.items():
        sites = planted_sites(rows, one_hots, identifier, matrix.probabilities.shape[1])
        counts = np.sum(sites, axis=0).T  # 4 x width, rows A, C, G, T
        found.append(Matrix(identifier, matrix.name, counts / counts.sum(0, keepdims=True), len(sites)))
    return found


def gc_content(sequences: list[str]) -> float:
    """Fraction of G and C among the nucleotides."""
    text = "".join(sequences)
    return (text.count("G") + text.count("C")) / max(len(text), 1)


def run_one(cfg, background: str, fasta: str, seed: int, matrices: dict[str, Matrix], known: list[Matrix]) -> dict:
    """Data, model and every method's recovery for one background and seed (the committed per-run record)."""
    out = Path(cfg.output_dir) / background / f"seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    make_data(cfg, fasta, seed, out, matrices)
    test = train(cfg, seed, out)
    rows = list(csv.DictReader(open(out / "test.tsv"), delimiter="\t"))
    scores = planted_matrix_scores(rows, matrices)
    record = {"background": background, "seed": seed,
              "background_gc": gc_content([r["sequence"] for r in rows if r["label"] == "0"]),
              "test_metrics": test, "val_auroc_by_epoch": validation_curve(out / "model"),
              "planted_matrices_auroc": oracle_auroc(rows, scores),
              "per_matrix_auroc": {"classifier": per_matrix_auroc(rows, predictions_on_test(out), matrices),
                                   "own_matrix": own_matrix_auroc(rows, scores)},
              "methods": {}, "motifs_found": {}}
    sites = out / "planted_sites_matches.tsv"
    write_text_atomic(sites, "\n".join(match_lines(tomtom_matches(site_matrices(rows, matrices), known))) + "\n")
    record["planted_sites"] = recovery(sites, matrices, cfg.q_cutoff)
    for method in cfg.methods:
        motifs = discover(cfg, out, method)
        record["methods"][method] = recovery(motifs / "jaspar_matches.tsv", matrices, cfg.q_cutoff)
        record["motifs_found"][method] = (motifs / "motifs.meme").read_text().count("\nMOTIF ")
    (Path(cfg.record_dir) / "runs").mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(cfg.record_dir) / "runs" / f"{background}-seed{seed}.json", record)
    return record


def percent(values: list[float]) -> str:
    """mean ± sd of fractions, as percentages."""
    return cell([100 * v for v in values], digits=0)


def tables(cfg, records: list[dict], matrices: dict[str, Matrix]) -> str:
    """The summary table (per background and method) and the per-matrix table, as Markdown."""
    backgrounds = list(cfg.backgrounds)
    seeds = len(cfg.seeds)
    lines = [f"| background | GC | classifier test AUROC | planted matrices' AUROC | method | "
             f"recovered (rank 1, q < {cfg.q_cutoff}) | recovered (rank <= 3) |", "|---|---:|---:|---:|---|---:|---:|"]
    for background in backgrounds:
        runs = [r for r in records if r["background"] == background]
        auroc = cell([r["test_metrics"]["test/auroc"] for r in runs], digits=3)
        bound = cell([r["planted_matrices_auroc"] for r in runs], digits=3)
        gc = f"{100 * np.mean([r['background_gc'] for r in runs]):.0f} %"
        for method in cfg.methods:
            found = [[m["recovered"] for m in r["methods"][method]] for r in runs]
            top3 = [[m["recovered_top3"] for m in r["methods"][method]] for r in runs]
            lines.append(f"| {background} | {gc} | {auroc} | {bound} | {method} | "
                         f"{percent([np.mean(f) for f in found])} % | "
                         f"{percent([np.mean(t) for t in top3])} % |")
    exact = [sum(m["recovered"] for m in r["planted_sites"]) for r in records]
    span = f"{min(exact)}" if min(exact) == max(exact) else f"{min(exact)} to {max(exact)}"
    lines += ["", f"The planted sites' own matrices (every site of the test split, exactly aligned) pass the same rule "
              f"for {span} of {len(matrices)} matrices per run."]
    lines += ["", f"Seeds recovering each matrix (rank 1 / rank <= 3), of {seeds}, and per background the AUROC of "
              "its test positives against all test negatives by the classifier / by the matrix itself (mean over "
              "seeds):", "",
              "| matrix | TF | width | GC | " + " | ".join(f"{b} {m}" for b in backgrounds for m in cfg.methods)
              + " | " + " | ".join(f"{b} AUROC classifier / matrix" for b in backgrounds) + " |",
              "|---|---|---:|---:|" + "---:|" * (len(backgrounds) * (len(cfg.methods) + 1))]
    for identifier, matrix in matrices.items():
        cells = []
        for background in backgrounds:
            for method in cfg.methods:
                rows = [next(m for m in r["methods"][method] if m["jaspar_id"] == identifier)
                        for r in records if r["background"] == background]
                cells.append(f"{sum(m['recovered'] for m in rows)} / {sum(m['recovered_top3'] for m in rows)}")
        for background in backgrounds:
            runs = [r["per_matrix_auroc"] for r in records if r["background"] == background]
            cells.append(" / ".join(f"{np.mean([r[by][identifier] for r in runs]):.3f}"
                                    for by in ("classifier", "own_matrix")))
        gc = matrix.probabilities[1:3].sum(0).mean()
        lines.append(f"| {identifier} | {matrix.name} | {matrix.probabilities.shape[1]} | {100 * gc:.0f} % | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    cfg = load_config(argv)
    os.chdir(ROOT)  # config paths are project-relative, and so is every path the runs record
    matrices = planted_matrices(cfg)
    known = read_meme(Path(cfg.jaspar))
    records = [run_one(cfg, background, fasta, seed, matrices, known)
               for background, fasta in cfg.backgrounds.items() for seed in cfg.seeds]
    if not cfg.methods:
        return
    table = tables(cfg, records, matrices)
    write_text_atomic(Path(cfg.record_dir) / "table.md", table)
    write_json_atomic(Path(cfg.record_dir) / "results.json", {"runs": records, "config": OmegaConf.to_container(cfg)})
    print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
