"""Print a run's validation curve (loss, masked-token accuracy, k-mer frequency baseline) as Markdown."""

from __future__ import annotations

import sys
from pathlib import Path

from dnabert.runs import logged_rows


def main(run_dir: str) -> None:
    """Markdown table of every validation row in `run_dir/csv/*/metrics.csv` (a resumed run's logs joined)."""
    print("| step | val loss | perplexity | masked-token accuracy | k-mer frequency baseline | accuracy / baseline |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in logged_rows(Path(run_dir)):
        if row.get("val/loss"):
            accuracy, baseline = float(row["val/accuracy"]), float(row["val/kmer_frequency_baseline"])
            print(f"| {int(row['step']) + 1} | {float(row['val/loss']):.3f} | {float(row['val/perplexity']):.1f} "
                  f"| {accuracy:.4f} | {baseline:.4f} | {accuracy / baseline:.1f}x |")


if __name__ == "__main__":
    main(sys.argv[1])
