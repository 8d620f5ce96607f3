"""Planted-motif recovery: plant JASPAR motifs into real background, fine-tune, run `dnabert motifs`, count the
planted matrices that TOMTOM finds among the discovered motifs.

    .venv/bin/python experiments/motif_recovery/run.py [experiments/motif_recovery/config.yaml] [key=value ...]
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from dnabert.atomic import write_json_atomic, write_text_atomic
from dnabert.data.planted import planted_lines, planted_rows
from dnabert.genome.shards import open_genome
from dnabert.interpret.jaspar import read_meme

ROOT = Path(__file__).resolve().parents[2]


def load_config(argv: list[str]):
    """The YAML recipe (first argument, else config.yaml beside this file) with `key=value` overrides."""
    files = [a for a in argv if "=" not in a]
    path = Path(files[0]) if files else Path(__file__).with_name("config.yaml")
    return OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist([a for a in argv if "=" in a]))


def make_data(cfg, out: Path) -> dict[str, str]:
    """train.tsv and test.tsv with the configured motifs planted; returns matrix id -> TF name."""
    known = {m.identifier: m for m in read_meme(Path(cfg.jaspar))}
    missing = [identifier for identifier in cfg.motifs if identifier not in known]
    if missing:
        sys.exit(f"{cfg.jaspar}: no matrices {missing}")
    matrices = {identifier: known[identifier].probabilities for identifier in cfg.motifs}
    shards = open_genome(Path(cfg.background), out / "cache", progress=False)
    for offset, split in enumerate(("train", "test")):
        rows = planted_rows(shards, matrices, cfg[split].per_motif, cfg[split].negatives, cfg.length, cfg.seed + offset)
        write_text_atomic(out / f"{split}.tsv", "\n".join(planted_lines(rows)) + "\n")
    return {identifier: known[identifier].name for identifier in cfg.motifs}


def run(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def recovery(matches_file: Path, names: dict[str, str], cutoff: float) -> list[dict]:
    """Per planted matrix: among discovered motifs whose best TOMTOM match (rank 1) is that matrix or another JASPAR
    matrix of the same TF, the one with the lowest q, and whether q < cutoff."""
    matches = [m for m in csv.DictReader(open(matches_file), delimiter="\t") if m["rank"] == "1"]
    rows = []
    for identifier, name in names.items():
        hits = sorted((m for m in matches if m["jaspar_id"] == identifier or m["jaspar_name"].upper() == name.upper()),
                      key=lambda m: float(m["q_value"]))
        best = hits[0] if hits else None
        rows.append({"jaspar_id": identifier, "tf": name, "motif": best["motif"] if best else "",
                     "matched": best["jaspar_id"] if best else "",
                     "q_value": float(best["q_value"]) if best else None,
                     "motifs_matching": len({m["motif"] for m in hits if float(m["q_value"]) < cutoff}),
                     "recovered": bool(best) and float(best["q_value"]) < cutoff})
    return rows


def main(argv: list[str]) -> None:
    cfg = load_config(argv)
    os.chdir(ROOT)  # config paths are project-relative, and so is every path the runs record
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = make_data(cfg, out)
    model = out / "model" / "checkpoints" / "best.hf"
    run([sys.executable, "train.py", *cfg.train_overrides, f"data.train={out / 'train.tsv'}",
         f"data.test={out / 'test.tsv'}", f"seed={cfg.seed}", f"paths.output_dir={out / 'model'}",
         f"hydra.run.dir={out / 'hydra'}", f"paths.cache_dir={out / 'cache'}", "callbacks.progress_bar=null"])
    run([sys.executable, "-m", "dnabert.cli", "motifs", str(model), "--input", str(out / "test.tsv"),
         "--out", str(out / "motifs"), "--jaspar", cfg.jaspar, "--quiet",
         *(f"--set={setting}" for setting in cfg.motif_settings)])
    rows = recovery(out / "motifs" / "jaspar_matches.tsv", names, cfg.q_cutoff)
    recovered = sum(r["recovered"] for r in rows)
    test = json.loads((out / "model" / "test_metrics.json").read_text())
    lines = [f"| planted | TF | discovered motif | its best JASPAR match | TOMTOM q | motifs at q < {cfg.q_cutoff} | "
             "recovered |",
             "|---|---|---|---|---:|---:|---|"]
    for r in rows:
        q = f"{r['q_value']:.2g}" if r["q_value"] is not None else "-"
        lines.append(f"| {r['jaspar_id']} | {r['tf']} | {r['motif'] or '-'} | {r['matched'] or '-'} | {q} | "
                     f"{r['motifs_matching']} | {'yes' if r['recovered'] else 'no'} |")
    lines.append(f"\nrecovered {recovered}/{len(rows)} ({100 * recovered / len(rows):.0f} %) at q < {cfg.q_cutoff}; "
                 f"classifier test accuracy {test['test/accuracy']:.3f}, AUROC {test['test/auroc']:.3f}")
    write_text_atomic(out / "table.md", "\n".join(lines) + "\n")
    write_json_atomic(out / "results.json", {"recovered": recovered, "planted": len(rows), "motifs": rows,
                                             "test_metrics": test, "config": OmegaConf.to_container(cfg)})
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
