"""Inference throughput: today's fp32 `predict` path against every model-preserving lever, side by side in one run.

Run from the project root:

    nice -n 5 .venv/bin/python experiments/inference_throughput/bench.py                 # CPU, DNABERT-6 size
    .venv/bin/python experiments/inference_throughput/bench.py --device cuda             # GPU

The model is a DNABERT-6-size classifier (BERT-base over 6-mers, DNABERT's own config from ../shared/reference,
2 classes, seeded random weights: speed does not depend on their values), saved as an HF directory and loaded the
way `dnabert predict` loads it (SDPA attention). Two inputs, both real sequence from ../shared/data: the first
`--sequences` 101-nt windows of the TFBS sample (one length: sorting cannot help) and as many windows of E. coli
K-12 of seeded random length 64-515 nt (the model's reach), as peaks or promoters of different widths come.

Rows, each adding one lever to the row above it (a single-lever row says its base):
- today: `predict` as it ran before this benchmark, fp32, batches of `--batch-size` in input order (each padded to
  its longest sequence);
- + length-sorted batches: `predict` now (sequences batched longest first, answers in input order);
- + bf16 autocast, weights re-cast at every use (parameters without grad: autocast keeps no cast copy);
- + weights cast once per run: what `dnabert predict --precision bf16` runs (one autocast region around the whole
  command caches each weight's bf16 copy on first use);
- bf16 alone: today's input-order batches under `--precision bf16`, the single lever for scale.

Timing: the machine may be shared and noisy, so every row runs once per round in `--rounds` interleaved rounds (the
order rotates every round) after one untimed warm-up batch each; the median over rounds is reported, and ratios are
taken within a round. Each row's largest probability difference from today's output is shown beside it (bf16 rows
must stay within `TOLERANCE`). Prints the Markdown tables and writes them, with the raw numbers, to
experiments/inference_throughput/record/<device>.{md,json} (committed: the README's figures come from them).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "throughput"))
import torch  # noqa: E402
import transformers  # noqa: E402
from bench import N_CPUS, cpu_name, native_bf16, spread, synchronize  # noqa: E402  (sets the thread variables)
from transformers import BertForSequenceClassification  # noqa: E402
from transformers.utils.logging import disable_progress_bar  # noqa: E402

from dnabert.atomic import write_text_atomic  # noqa: E402
from dnabert.models.checkpoints import config_from_dict, save_hf_directory  # noqa: E402
from dnabert.models.inference import load_classifier, predict  # noqa: E402
from dnabert.models.inputs import inference_precision  # noqa: E402
from dnabert.provenance import checkout_relative  # noqa: E402
from dnabert.tokenization import nucleotides_read  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
CONFIG = SHARED / "reference" / "dnabert-original-config" / "bert-config-6" / "config.json"
TFBS = SHARED / "data" / "tfbs_dnabert_sample" / "sequences.tsv"
GENOME = SHARED / "data" / "ecoli_k12" / "ecoli_k12_mg1655.fa.gz"
RECORD = Path(__file__).resolve().parent / "record"
TOLERANCE = 0.02
"""Largest probability difference a bf16 row may show against fp32 (tests/test_device.py holds a trained model to
it)."""


@dataclass(frozen=True)
class Row:
    """One way of running `predict`: input order or length-sorted, fp32 or bf16, weights cast once or at every use."""

    name: str
    base: str | None
    sorted: bool
    bf16: bool = False
    cast_once: bool = True


ROWS = (
    Row("today: fp32, batches in input order", None, sorted=False),
    Row("+ length-sorted batches", "today: fp32, batches in input order", sorted=True),
    Row("+ bf16 autocast, weights re-cast at every use", "+ length-sorted batches", sorted=True, bf16=True,
        cast_once=False),
    Row("+ weights cast once per run (= --precision bf16)", "+ bf16 autocast, weights re-cast at every use",
        sorted=True, bf16=True),
    Row("bf16 alone (input order, --precision bf16)", "today: fp32, batches in input order", sorted=False,
        bf16=True),
)


def tfbs_windows(count: int) -> list[str]:
    """The first `count` sequences of the TFBS sample."""
    with open(TFBS, newline="") as handle:
        return [row["sequence"] for _, row in zip(range(count), csv.DictReader(handle, delimiter="\t"))]


def mixed_windows(count: int, longest: int, seed: int = 0) -> list[str]:
    """`count` windows of the E. coli genome at seeded random places, of random length 64-`longest` nt."""
    with gzip.open(GENOME, "rt") as handle:
        genome = "".join(line.strip() for line in handle if not line.startswith(">"))
    rng = np.random.default_rng(seed)
    lengths = rng.integers(64, longest + 1, size=count)
    starts = rng.integers(0, len(genome) - longest, size=count)
    return [genome[start : start + length] for start, length in zip(starts, lengths)]


def lengths(sequences: list[str]) -> str:
    """'101 nt', or the range of lengths."""
    shortest, longest = min(map(len, sequences)), max(map(len, sequences))
    return f"{shortest} nt" if shortest == longest else f"{shortest}-{longest} nt"


def runner(model, row: Row, sequences: list[str], batch_size: int) -> Callable[[], np.ndarray]:
    """A call that predicts `sequences` the way `row` says."""
    def run() -> np.ndarray:
        model.requires_grad_(row.cast_once)
        with inference_precision(model.device, "bf16" if row.bf16 else "fp32"):
            if row.sorted:
                return predict(model, sequences, batch_size, progress=False)
            return np.concatenate([predict(model, sequences[first : first + batch_size], batch_size, progress=False)
                                   for first in range(0, len(sequences), batch_size)])
    return run


def padding(sequences: list[str], batch_size: int, sorted_: bool, k: int = 6) -> float:
    """Share of padding among the token positions the batches run."""
    tokens = np.array([len(s) - k + 3 for s in sequences])
    if sorted_:
        tokens = np.sort(tokens)[::-1]
    batches = [tokens[first : first + batch_size] for first in range(0, len(tokens), batch_size)]
    return 1 - tokens.sum() / sum(len(b) * b.max() for b in batches)


def timed(call: Callable[[], np.ndarray], device: torch.device) -> tuple[float, np.ndarray]:
    """(seconds, output) of one call."""
    synchronize(device)
    start = time.perf_counter()
    output = call()
    synchronize(device)
    return time.perf_counter() - start, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sequences", type=int, default=256, help="sequences per input set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layers", type=int, default=None, help="fewer layers than BERT-base's 12 (a dry run)")
    parser.add_argument("--record", type=Path, default=RECORD, help="folder of the record's .json and .md")
    args = parser.parse_args()

    torch.set_num_threads(N_CPUS)
    torch.manual_seed(0)
    disable_progress_bar()
    device = torch.device(args.device)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    values = json.loads(CONFIG.read_text()) | {"num_labels": 2, "problem_type": "single_label_classification"}
    if args.layers:
        values["num_hidden_layers"] = args.layers
    config = config_from_dict(values)
    with tempfile.TemporaryDirectory() as folder:
        save_hf_directory(BertForSequenceClassification(config), Path(folder) / "model")
        model = load_classifier(Path(folder) / "model", device)
    reach = nucleotides_read(model.config.k, config.max_position_embeddings)
    inputs = {f"{what} windows, {lengths(sequences)}": sequences for what, sequences in (
        ("TFBS", tfbs_windows(args.sequences)), ("E. coli", mixed_windows(args.sequences, reach)))}
    bf16 = native_bf16(device)

    calls = {(name, row.name): runner(model, row, sequences, args.batch_size)
             for name, sequences in inputs.items() for row in ROWS}
    for sequences in inputs.values():
        for row in ROWS:
            runner(model, row, sequences[: args.batch_size], args.batch_size)()
    rounds, outputs = [], {}
    for number in range(args.rounds):
        keys = list(calls)
        order = keys[number % len(keys):] + keys[: number % len(keys)]
        seconds = {}
        for key in order:
            seconds[key], outputs[key] = timed(calls[key], device)
        rounds.append(seconds)
        print(f"round {number + 1}/{args.rounds} done", flush=True)
    report(args, inputs, rounds, outputs, bf16, load_before, started, model)


def report(args, inputs: dict[str, list[str]], rounds: list[dict], outputs: dict, bf16: bool, load_before, started,
           model) -> None:
    """Print the Markdown tables and write them, with the raw numbers as JSON, under record/."""
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"{cpu_name()}, {N_CPUS} threads"
    layers = model.config.num_hidden_layers
    lines = [f"\n{started}; {device}; torch {torch.__version__}, transformers {transformers.__version__}; "
             f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}",
             f"model: BERT-base over 6-mers ({layers} layers, hidden {model.config.hidden_size}), SDPA attention; "
             f"{args.sequences} sequences per input, batch {args.batch_size}, {args.rounds} rounds"]
    if not bf16:
        lines.append("no native bf16 on this device (bf16 matmuls slower than fp32): the bf16 rows run emulated")
    headline = {}
    for name, sequences in inputs.items():
        lines += [f"\n### {name}\n", "| setup | sequences/s median [range] | nt/s | x base | x today | padding | "
                  "largest difference from today |", "|---|---:|---:|---:|---:|---:|---:|"]
        nucleotides = sum(map(len, sequences))
        today = outputs[(name, ROWS[0].name)]
        for row in ROWS:
            rate = [len(sequences) / r[(name, row.name)] for r in rounds]
            against = {label: statistics.median(r[(name, other)] / r[(name, row.name)] for r in rounds)
                       for label, other in (("base", row.base or row.name), ("today", ROWS[0].name))}
            difference = float(np.abs(outputs[(name, row.name)] - today).max())
            flag = "" if difference <= TOLERANCE else f" (over {TOLERANCE})"
            per_second = statistics.median(rate) * nucleotides / len(sequences)
            lines.append(f"| {row.name} | {spread(rate, 1)} | {per_second:,.0f} | {against['base']:.2f} | "
                         f"{against['today']:.2f} | "
                         f"{padding(sequences, args.batch_size, row.sorted):.1%} | {difference:.2g}{flag} |")
            headline[(name, row.name)] = against["today"]
    lines.append("")
    for label, row in (("as configured (fp32)", ROWS[1]), ("with the opt-in --precision bf16", ROWS[3])):
        lines.append(f"headline, `dnabert predict` {label} against today's fp32 path: " + ", ".join(
            f"{headline[(name, row.name)]:.2f}x on {name}" for name in inputs))
    text = "\n".join(lines) + "\n"
    print(text)
    args.record.mkdir(parents=True, exist_ok=True)
    stem = args.record / args.device
    write_text_atomic(stem.with_suffix(".json"), json.dumps({
        "args": checkout_relative(vars(args)), "device": device, "native_bf16": bf16, "started": started,
        "tolerance": TOLERANCE,
        "rounds": [{" | ".join(key): seconds for key, seconds in r.items()} for r in rounds]}, indent=1, default=str))
    write_text_atomic(stem.with_suffix(".md"), text)
    print(f"raw numbers and these tables: {stem}.json, .md")


if __name__ == "__main__":
    main()
