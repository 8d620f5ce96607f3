"""Tokenizer throughput: the original DNABERT pipeline vs. fast BERT vs. our numpy k-mer path.

Run from the project root:

    .venv/bin/python experiments/tokenizer_speed/bench.py

Methods, all on the same E. coli K-12 MG1655 windows (default 10,000 x 510 nt at seeded random offsets):

1. original  -- Python k-merization (`' '.join(seq[i:i+k] ...)`) then the pure-Python BERT tokenizer
               (`BertTokenizerLegacy`, DNABERT's vocab.txt, do_lower_case=False), one call per sequence
               with special tokens, as DNABERT did.
2. fast BERT -- the same Python k-merization, then transformers' Rust `BertTokenizer`, one batch call.
3. numpy     -- `dnabert.tokenization.batch_kmer_ids(seqs, k, max_tokens=512)`.
4. HF raw    -- `dnabert.tokenization.DNAKmerTokenizer(k)(seqs, padding=True)` on raw DNA (for information).

The ids of 2, 3 and 4 are asserted equal to the original pipeline's. The machine is shared and noisy, so
slow methods are timed in chunks and fast ones repeated; every rate is a median, and ratios are against the
original pipeline measured in the same run. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

N_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, str(N_CPUS))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import BertTokenizer  # noqa: E402

torch.set_num_threads(N_CPUS)

try:
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as SlowBertTokenizer
except ImportError:  # transformers < 5: BertTokenizer is itself the pure-Python tokenizer
    from transformers import BertTokenizer as SlowBertTokenizer

from dnabert.atomic import write_text_atomic  # noqa: E402
from dnabert.tokenization import DNAKmerTokenizer, batch_kmer_ids  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GENOME = ROOT.parent / "shared" / "data" / "ecoli_k12" / "ecoli_k12_mg1655.fa.gz"
VOCAB_DIR = ROOT.parent / "shared" / "reference" / "dnabert-original-config"
MAX_TOKENS = 512
RECORD = Path(__file__).resolve().parent / "record"
"""Where a run writes its table (record/cpu.md, committed: the README's figures come from it)."""


def read_genome(path: Path) -> str:
    """Concatenated sequence of a gzip FASTA (one contig expected), upper-cased."""
    with gzip.open(path, "rt") as handle:
        return "".join(line.strip() for line in handle if not line.startswith(">")).upper()


def sample_windows(genome: str, n: int, length: int, seed: int) -> list[str]:
    offsets = np.random.default_rng(seed).integers(0, len(genome) - length + 1, size=n)
    return [genome[o : o + length] for o in offsets]


def kmerize(seq: str, k: int) -> str:
    """DNABERT's seq2kmer."""
    return " ".join(seq[i : i + k] for i in range(len(seq) - k + 1))


def original_pipeline(tokenizer, seqs: list[str], k: int) -> list[list[int]]:
    """Per sequence: k-merize in Python, then the pure-Python tokenizer (DNABERT's encode_plus call)."""
    return [
        tokenizer(kmerize(s, k), add_special_tokens=True, max_length=MAX_TOKENS, truncation=True)["input_ids"]
        for s in seqs
    ]


def fast_pipeline(tokenizer, seqs: list[str], k: int) -> list[list[int]]:
    """Python k-merization, then one batch call of the Rust tokenizer."""
    texts = [kmerize(s, k) for s in seqs]
    return tokenizer(texts, add_special_tokens=True, max_length=MAX_TOKENS, truncation=True)["input_ids"]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def paired_rates(slow_fn: Callable[[list[str]], list], seqs: list[str], chunk: int,
                 fast_fn: Callable[[], object], fast_nt: int, fast_repeats: int = 3):
    """Time slow_fn chunk by chunk; right after each chunk, time fast_fn (median of fast_repeats calls).

    Pairing the two in time makes each chunk's ratio fast/slow see the same machine load. Returns
    (slow chunk rates, fast rates, paired ratios, slow total seconds, slow outputs); rates in nt/s.
    """
    slow_rates, fast_rates, outputs, total = [], [], [], 0.0
    fast_fn()  # warm-up: the first call pays page faults for its fresh arrays
    for i in range(0, len(seqs), chunk):
        part = seqs[i : i + chunk]
        seconds, out = timed(lambda part=part: slow_fn(part))
        total += seconds
        outputs.extend(out)
        slow_rates.append(sum(map(len, part)) / seconds)
        fast_rates.append(fast_nt / statistics.median(timed(fast_fn)[0] for _ in range(fast_repeats)))
    ratios = [f / s for f, s in zip(fast_rates, slow_rates)]
    return slow_rates, fast_rates, ratios, total, outputs


def repeated_rate(fn: Callable[[], object], n_nt: int, repeats: int) -> tuple[float, float, float, object]:
    """A warm-up call, then `repeats` timed calls; (median rate, median s, first-call s, output)."""
    first, out = timed(fn)
    times = [timed(fn)[0] for _ in range(repeats)]
    median = statistics.median(times)
    return n_nt / median, median, first, out


def as_array(ids: list[list[int]]) -> np.ndarray:
    return np.asarray(ids, dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=10_000)
    parser.add_argument("--length", type=int, default=510, help="window length in nt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=1000, help="windows per timed chunk of the original pipeline")
    parser.add_argument("--repeats", type=int, default=3, help="numpy calls timed after each original chunk")
    parser.add_argument("--fast-repeats", type=int, default=3, help="repeats of the Rust-tokenizer path")
    parser.add_argument("--k3-windows", type=int, default=2000, help="windows for the k=3 original pipeline")
    parser.add_argument("--k3-chunk", type=int, default=500)
    args = parser.parse_args()

    wall = time.perf_counter()
    genome = read_genome(GENOME)
    seqs = sample_windows(genome, args.windows, args.length, args.seed)
    n_nt = sum(map(len, seqs))
    slow_name = SlowBertTokenizer.__name__
    rows: list[tuple[str, int, str, float, str]] = []  # method, k, how timed, nt/s, ratio text
    notes: list[str] = []

    def ratio_text(ratios: list[float]) -> str:
        return f"**{statistics.median(ratios):,.0f}x** ({min(ratios):,.0f}-{max(ratios):,.0f})"

    # --- k = 6 -------------------------------------------------------------------------------------------
    k = 6
    vocab_file = VOCAB_DIR / f"bert-config-{k}" / "vocab.txt"
    slow = SlowBertTokenizer(str(vocab_file), do_lower_case=False)
    fast = BertTokenizer.from_pretrained(str(vocab_file.parent), do_lower_case=False)
    hf_raw = DNAKmerTokenizer(k=k)

    def numpy6():
        return batch_kmer_ids(seqs, k=k, max_tokens=MAX_TOKENS)

    first_s, batch = timed(numpy6)
    slow_rates, np_rates, ratios6, orig_total, orig_ids = paired_rates(
        lambda part: original_pipeline(slow, part, k), seqs, args.chunk, numpy6, n_nt, args.repeats)
    reference = as_array(orig_ids)
    assert batch.input_ids.dtype == np.int64 and batch.input_ids.shape == reference.shape, batch.input_ids.shape
    assert np.array_equal(batch.input_ids, reference), "batch_kmer_ids ids differ from the original pipeline"
    assert batch.attention_mask.all() and batch.attention_mask.shape == reference.shape
    orig_rate = statistics.median(slow_rates)
    n_chunks = len(slow_rates)
    rows.append((f"1. original: Python k-mers + `{slow_name}`, per sequence", k,
                 f"{n_chunks} chunks x {args.chunk} windows", orig_rate, "1x"))

    fast_rate, _, _, fast_ids = repeated_rate(lambda: fast_pipeline(fast, seqs, k), n_nt, args.fast_repeats)
    assert np.array_equal(as_array(fast_ids), reference), "fast BertTokenizer ids differ from the original pipeline"
    rows.append(("2. Python k-mers + Rust `BertTokenizer`, one batch call", k, f"median of {args.fast_repeats}",
                 fast_rate, f"{fast_rate / orig_rate:,.1f}x"))

    rows.append(("3. numpy `batch_kmer_ids`", k, f"{args.repeats} calls after each original chunk",
                 statistics.median(np_rates), ratio_text(ratios6)))

    hf_rate, _, _, hf_out = repeated_rate(lambda: hf_raw(seqs, padding=True, truncation=True), n_nt,
                                          args.fast_repeats)
    assert np.array_equal(as_array(hf_out["input_ids"]), reference), "DNAKmerTokenizer ids differ"
    rows.append(("4. `DNAKmerTokenizer(seqs, padding=True, truncation=True)` on raw DNA", k,
                 f"median of {args.fast_repeats}", hf_rate, f"**{hf_rate / orig_rate:,.0f}x**"))

    kmer_s = statistics.median(timed(lambda: [kmerize(s, k) for s in seqs])[0] for _ in range(3))
    notes.append(f"original pipeline, k=6: {orig_total:.1f} s for {n_nt / 1e6:.2f} M nt, of which Python "
                 f"k-merization alone is ~{kmer_s:.2f} s; the rest is the pure-Python tokenizer.")
    warm_ms = n_nt / statistics.median(np_rates) * 1e3
    notes.append(f"numpy k=6, first (cold) call: {first_s * 1e3:.0f} ms, vs {warm_ms:.0f} ms warm (median); "
                 "the first call pays page faults on its fresh arrays.")

    # --- k = 3: original on a subset, numpy on all windows -------------------------------------------------
    k3 = 3
    slow3 = SlowBertTokenizer(str(VOCAB_DIR / f"bert-config-{k3}" / "vocab.txt"), do_lower_case=False)
    sub = seqs[: args.k3_windows]

    def numpy3():
        return batch_kmer_ids(seqs, k=k3, max_tokens=MAX_TOKENS)

    slow3_rates, np3_rates, ratios3, _, o3_ids = paired_rates(
        lambda part: original_pipeline(slow3, part, k3), sub, args.k3_chunk, numpy3, n_nt, args.repeats)
    assert np.array_equal(numpy3().input_ids[: len(sub)], as_array(o3_ids)), "k=3 ids differ from the original"
    rows.append((f"1. original: Python k-mers + `{slow_name}`, per sequence", k3,
                 f"{len(slow3_rates)} chunks x {args.k3_chunk} windows", statistics.median(slow3_rates), "1x"))
    rows.append(("3. numpy `batch_kmer_ids`", k3, f"{args.repeats} calls after each original chunk",
                 statistics.median(np3_rates), ratio_text(ratios3)))

    # --- report -------------------------------------------------------------------------------------------
    lines: list[str] = []
    lines.append(f"{len(seqs):,} E. coli K-12 windows x {args.length} nt = {n_nt / 1e6:.2f} M nt (seed {args.seed}); "
                 f"{N_CPUS} CPUs, Python {platform.python_version()}, numpy {np.__version__}, "
                 f"transformers {transformers.__version__}, torch threads {torch.get_num_threads()}")
    lines.append("")
    lines.append(f"| method | k | timed as | M nt/s (median) | s per {n_nt / 1e6:.1f} M nt | "
                 "vs original (median, range) |")
    lines.append("|---|---:|---|---:|---:|---:|")
    for method, kk, how, rate, ratio in rows:
        lines.append(f"| {method} | {kk} | {how} | {rate / 1e6:.2f} | {n_nt / rate:.3g} | {ratio} |")
    lines.append("")
    lines.append(f"- ids equal the original pipeline's exactly: methods 2-4 on all {len(seqs):,} windows (k=6); "
                 f"numpy on the first {len(sub):,} (k=3). Asserted.")
    for note in notes:
        lines.append(f"- {note}")
    ratio = statistics.median(ratios6)
    lines.append(f"- goal >= 300x, numpy vs original (k=6): median paired ratio {ratio:,.0f}x, lowest chunk "
                 f"{min(ratios6):,.0f}x -> {'MET' if ratio >= 300 else 'NOT MET'}")
    lines.append(f"- goal >= 100x, the Hugging Face call on raw DNA vs original (k=6): {hf_rate / orig_rate:,.0f}x -> "
                 f"{'MET' if hf_rate / orig_rate >= 100 else 'NOT MET'}")
    lines.append(f"- total wall time {time.perf_counter() - wall:.0f} s")
    text = f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n" + "\n".join(lines) + "\n"
    print(text)
    RECORD.mkdir(exist_ok=True)
    write_text_atomic(RECORD / "cpu.md", text)


if __name__ == "__main__":
    sys.exit(main())
