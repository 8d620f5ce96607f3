"""Benchmark: peak memory of `dnabert attention` for 1,000 and 10,000 sequences of 512 tokens.

Claim under test: "attention scores for 10,000 sequences of 512 tokens (515 nt at k=6) with a tiny model stay
under 2 GB peak RSS", where the original DNABERT pre-allocates every attention matrix (N x heads x L x L float64).

Steps (see README.md next to this file):
  1. a classifier with conf/model/tiny.yaml's sizes and random weights, saved as an HF directory;
  2. per N, random 515-nt sequences written to a TSV (outside the measured process);
  3. per N, a fresh subprocess runs the real command, `dnabert attention MODEL --input seqs.tsv --out DIR`
     (npy, tidy TSV, predictions, plots), and reports RSS after imports and peak RSS (getrusage ru_maxrss);
  4. print a Markdown table, with what the original would allocate for the same N.

Run from the project root:  .venv/bin/python experiments/attention_memory/bench.py
Everything is written under experiments/attention_memory/results/ (gitignored) unless --workdir says otherwise.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1].parent
K, NUCLEOTIDES, TOKENS = 6, 515, 512
MB = 1024 * 1024


def rss_now_mb() -> float:
    """Current resident set size of this process (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def build_model(directory: Path) -> Path:
    """A random-weight DNABERT-6 classifier with conf/model/tiny.yaml's sizes, as an HF directory."""
    from omegaconf import OmegaConf
    from transformers import BertConfig, BertForSequenceClassification

    from dnabert.config import CONF_DIR
    from dnabert.models.checkpoints import save_hf_directory
    from dnabert.tokenization import vocab_size

    base, tiny = (OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml") for name in ("bert_base", "tiny"))
    values = OmegaConf.to_container(OmegaConf.merge(base.config, tiny.config))
    values.pop("_target_")
    values.update(k=K, vocab_size=vocab_size(K), num_labels=2, problem_type="single_label_classification")
    model = BertForSequenceClassification(BertConfig(**values))
    return save_hf_directory(model.eval(), directory)


def write_sequences(path: Path, count: int, seed: int = 0) -> None:
    """`count` random sequences of 515 nt (510 6-mers + [CLS] + [SEP] = 512 tokens) as a TSV."""
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    codes = letters[np.random.default_rng(seed).integers(0, 4, size=(count, NUCLEOTIDES))]
    with open(path, "w") as handle:
        handle.write("name\tsequence\n")
        for i, row in enumerate(codes):
            handle.write(f"seq{i}\t{row.tobytes().decode()}\n")


def child(model: Path, sequences: Path, out: Path, batch_size: int) -> None:
    """Run the real command in this process; print RSS after imports, peak RSS and wall time as JSON."""
    from dnabert.cli import main

    after_imports = rss_now_mb()
    start = time.perf_counter()
    main(["attention", str(model), "--input", str(sequences), "--out", str(out), "--quiet",
          "--batch-size", str(batch_size)])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sizes = {path.name: path.stat().st_size / MB for path in out.iterdir() if path.is_file()}
    print(json.dumps({"after_imports_mb": after_imports, "peak_mb": peak, "seconds": seconds, "sizes_mb": sizes}))


def original_allocation_gb(count: int, heads: int) -> float:
    """What DNABERT's `visualize` pre-allocates: N x heads x L x L float64 (GB, 1e9 bytes)."""
    return count * heads * TOKENS * TOKENS * 8 / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--child", nargs=3, type=Path, metavar=("MODEL", "TSV", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.batch_size)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    model = build_model(args.workdir / "tiny_random.hf")
    rows = []
    for count in args.counts:
        sequences = args.workdir / f"sequences_{count}.tsv"
        write_sequences(sequences, count)
        command = [sys.executable, __file__, "--batch-size", str(args.batch_size),
                   "--child", str(model), str(sequences), str(args.workdir / f"attention_{count}")]
        result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
        rows.append({"count": count, **json.loads(result.stdout.strip().splitlines()[-1])})
    print("| sequences | wall s | RSS after imports MB | peak RSS MB | nucleotide_scores.npy MB | scores.tsv MB "
          "| original, tiny (4 heads) GB | original, BERT-base (12 heads) GB |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['count']:,} | {row['seconds']:.0f} | {row['after_imports_mb']:.0f} | {row['peak_mb']:.0f} "
              f"| {row['sizes_mb']['nucleotide_scores.npy']:.1f} | {row['sizes_mb']['scores.tsv']:.0f} "
              f"| {original_allocation_gb(row['count'], 4):,.1f} | {original_allocation_gb(row['count'], 12):,.1f} |")


if __name__ == "__main__":
    main()
