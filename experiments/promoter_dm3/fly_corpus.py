"""Write the fly pretraining corpus: dm3 2 kb upstream records without the test chromosome and without repeats.

Usage (from the project root):
    .venv/bin/python experiments/promoter_dm3/fly_corpus.py ../shared/data/promoter_dm3/dm3_upstream2000.fa.gz OUT.fa

UCSC's upstream2000 names every record `NAME chrom:start-end`; transcripts sharing a TSS repeat the same window,
so each window is kept once. Records on chr2L (the promoter_dm3 test chromosome) are dropped, so pretraining never
sees test-chromosome sequence. The file appears only when complete (`dnabert.atomic.open_atomic`).
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dnabert.atomic import open_atomic  # noqa: E402

HELD_OUT = "chr2L"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("upstream", type=Path, help="UCSC upstream2000 FASTA (.fa or .fa.gz)")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    opener = gzip.open if args.upstream.suffix == ".gz" else open
    seen: set[str] = set()
    kept = dropped = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with opener(args.upstream, "rt") as source, open_atomic(args.out) as sink:
        keep = False
        for line in source:
            if line.startswith(">"):
                window = line.split()[1]
                keep = window.split(":")[0] != HELD_OUT and window not in seen
                seen.add(window)
                kept += keep
                dropped += not keep
            if keep:
                sink.write(line)
    print(f"{args.out}: {kept} windows kept, {dropped} dropped ({HELD_OUT} or repeated)")


if __name__ == "__main__":
    main()
