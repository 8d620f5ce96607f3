"""Genome scans: `dnabert scan` throughput on the E. coli genome with the tiny model, and its peak memory on generated
genomes of growing size up to 1 Gbp (constant memory in genome size is the goal).

Run from the project root:

    nice -n 5 .venv/bin/python experiments/scan_throughput/bench.py

Every scan is the real command (`dnabert scan`, a fresh process each, bigWig + bedGraph out) on a
prepared shard directory, so genome preparation (from scratch) is timed apart; peak memory is the process's maximum
resident set (VmHWM of /proc/self/status as it ends). The model is `model=tiny`'s architecture as a 2-class
classifier with seeded random weights (speed and memory do not depend on their values). E. coli K-12
(../shared/data) is scanned densely at the model's whole window and half-window stride (the defaults); the generated
genomes (random A/C/G/T with N runs, the genome_shards benchmark's, in contigs of at most 100 Mbp) are scanned with
a stride that keeps the number of windows the same at every size, so the memory column shows what grows with the
genome and nothing else. Writes
record/cpu.{md,json} (committed: the README's figures come from them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "genome_shards"))
from bench import write_fasta  # noqa: E402  (the genome_shards benchmark's synthetic genome)

from dnabert.provenance import checkout_relative  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ECOLI = ROOT.parent / "shared" / "data" / "ecoli_k12" / "ecoli_k12_mg1655.fa.gz"
RECORD = Path(__file__).resolve().parent / "record"
CONTIG_MAX = 100_000_000


def command(args: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """(seconds, peak resident memory in bytes, finished process) of `dnabert args` run from the project root; exits
    with its error output if it fails. The peak is the process's own VmHWM (/proc/self/status, read as it ends):
    wait4's ru_maxrss would include the benchmark's own memory, which a forked child inherits on Linux."""
    with tempfile.TemporaryDirectory() as folder:
        peak_file = Path(folder) / "peak"
        code = (f"import runpy, sys\nsys.argv = ['dnabert', *sys.argv[1:]]\ntry:\n"
                f"    runpy.run_module('dnabert.cli', run_name='__main__')\nfinally:\n"
                f"    hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
                f"    open({str(peak_file)!r}, 'w').write(hwm)\n")
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        peak = int(peak_file.read_text()) * 1024 if peak_file.exists() else 0
    if result.returncode:
        raise SystemExit(f"dnabert {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return seconds, peak, result


def tiny_classifier(directory: Path) -> Path:
    """`model=tiny` as a 2-class classifier with seeded random weights, saved as an HF directory."""
    import torch
    from hydra.utils import instantiate
    from transformers import BertForSequenceClassification
    from transformers.utils.logging import disable_progress_bar

    from dnabert.config import composed
    from dnabert.models.checkpoints import save_hf_directory

    disable_progress_bar()
    torch.manual_seed(0)
    config = instantiate(composed(["model=tiny"]).model.config)
    config.num_labels, config.problem_type = 2, "single_label_classification"
    return save_hf_directory(BertForSequenceClassification(config), directory)


def generated_genome(path: Path, size: int) -> Path:
    """The genome_shards benchmark's synthetic genome (random A/C/G/T, soft-masked stretches, N runs) of `size` nt in
    contigs of at most CONTIG_MAX nt (written once)."""
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        write_fasta(partial, size, -(-size // CONTIG_MAX))
        partial.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dnabert-scan-bench"), help="genomes, shards, tracks")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000_000, 100_000_000, 1_000_000_000])
    parser.add_argument("--windows", type=int, default=2000, help="windows per generated genome")
    parser.add_argument("--genome", type=Path, default=ECOLI, help="the real genome scanned densely")
    parser.add_argument("--record", type=Path, default=RECORD)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    model = args.work / "tiny.hf"
    if not model.exists():
        tiny_classifier(model)
    threads = len(os.sched_getaffinity(0))

    rows = []
    for name, genome, stride in [(f"{args.genome.name} (real)", args.genome, None),
                                 *((f"generated {size / 1e6:,.0f} Mbp", generated_genome(
                                     args.work / f"random_{size}.fa", size), max(1, size // args.windows))
                                   for size in args.sizes)]:
        shards = args.work / "shards" / genome.name
        shutil.rmtree(shards, ignore_errors=True)  # prepared from scratch, so its time is the real one
        prepare_seconds, prepare_peak, _ = command(["prepare-genome", str(genome), "--out",
                                                    str(shards), "--quiet"])
        size = sum(json.loads((shards / "metadata.json").read_text())["contig_lengths"].values())
        track = args.work / f"{genome.name}.bw"
        seconds, peak, result = command(["scan", str(model), "--genome", str(shards), "--out",
                                         str(track), "--device", "cpu", "--quiet",
                                         *(["--stride", str(stride)] if stride else [])])
        windows = int(result.stdout.split(": ")[1].split(" windows")[0].replace(",", ""))
        rows.append({"genome": name, "nt": size, "stride": stride or "default (half window)", "windows": windows,
                     "scan_seconds": seconds, "scan_peak_bytes": peak, "prepare_seconds": prepare_seconds,
                     "prepare_peak_bytes": prepare_peak, "bigwig_bytes": track.stat().st_size})
        print(f"{name}: {windows:,} windows in {seconds:.1f} s, peak {peak / 2**20:,.0f} MiB", flush=True)

    lines = [f"\n{started}; {threads} threads; load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}",
             "model: model=tiny (2 layers, hidden 64) as a 2-class classifier, window 515 nt (its reach)\n",
             "| genome | nt | stride | windows | scan s | windows/s | nt/s | scan peak RSS | prepare s | "
             "prepare peak RSS |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['genome']} | {row['nt']:,} | {row['stride']} | {row['windows']:,} | "
                     f"{row['scan_seconds']:.1f} | {row['windows'] / row['scan_seconds']:,.0f} | "
                     f"{row['nt'] / row['scan_seconds']:,.0f} | {row['scan_peak_bytes'] / 2**20:,.0f} MiB | "
                     f"{row['prepare_seconds']:.1f} | {row['prepare_peak_bytes'] / 2**20:,.0f} MiB |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.record.mkdir(parents=True, exist_ok=True)
    (args.record / "cpu.md").write_text(text)
    (args.record / "cpu.json").write_text(json.dumps({"started": started, "threads": threads, "rows": rows,
                                                      "args": checkout_relative(vars(args))}, indent=1, default=str))


if __name__ == "__main__":
    main()
