"""Planted-motif recovery: plant JASPAR motifs into real backgrounds, fine-tune one classifier per background and
seed, run `dnabert motifs` with every method on its held-out split, count the planted matrices TOMTOM finds.

    .venv/bin/python experiments/motif_recovery/run.py [experiments/motif_recovery/config.yaml] [key=value ...]

Every stage is skipped when its output exists (a classifier when the run store holds it finished with the identity it
would have now), so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from dnabert.atomic import write_json_atomic, write_text_atomic
from dnabert.data.planted import planted_lines, planted_rows
from dnabert.genome.shards import open_genome
from dnabert.interpret.jaspar import Matrix, read_meme, tomtom_matches
from dnabert.interpret.motif_outputs import match_lines
from dnabert.run_store import train_once
from dnabert.interpret.recovery import (oracle_auroc, own_matrix_auroc, per_matrix_auroc, planted_matrix_scores,
                                        recovery, site_matrices)
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
    """Fine-tune on train.tsv (validation held out of it), score test.tsv once (the run store reuses a finished run
    of the same identity); the test metrics."""
    train_once([*cfg.train_overrides, f"data.train={out / 'train.tsv'}", f"data.test={out / 'test.tsv'}",
                f"seed={seed}", f"paths.cache_dir={Path(cfg.output_dir) / 'cache'}"], out / "model")
    return json.loads((out / "model" / "test_metrics.json").read_text())


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
