"""Benchmark: memory and open time of genome shards, small genome vs a synthetic 1 Gbp genome.

Claim under test: "Memory stays flat in genome size: opening and sampling a 1 Gbp genome adds under 200 MB
RSS and opens in under a second."

Steps (see README.md next to this file):
  1. write a synthetic 1 Gbp FASTA (25 contigs, 60-column lines, N runs) under --workdir (outside the repo);
  2. `prepare_genome` it (and the 4.6 Mbp E. coli genome) in a fresh subprocess: wall time, throughput, peak RSS;
  3. per genome, in a fresh subprocess: RSS after imports (baseline), time to open the shards and to
     `GenomeDataModule.setup()`, draw --windows windows with the WindowSampler, iterate --batches batches of the
     train dataloader, and read RSS (total, anonymous, file-backed) after each step. The code path is dnabert's
     own (GenomeShards.fetch, which reads windows with os.pread). The 1 Gbp genome is sampled three times: page
     cache warm (just written); for comparison, warm again with GenomeShards.fetch patched in the benchmark
     process to the old behaviour (slicing the np.memmap of GenomeShards.codes); page cache cold (evicted with
     POSIX_FADV_DONTNEED);
  4. print a Markdown table; delete the 1 Gbp files unless --keep.

Run from the project root:  .venv/bin/python experiments/genome_shards/bench.py
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

import numpy as np

REPO = Path(__file__).resolve().parents[2]
ECOLI = REPO.parent / "shared" / "data/ecoli_k12/ecoli_k12_mg1655.fa.gz"
LINE = 60
MB = 1e6


# ---------------------------------------------------------------------------------------------- measurement


def memory() -> dict[str, float]:
    """VmRSS / RssAnon / RssFile / VmHWM of this process in MB (from /proc/self/status)."""
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024 / MB
    return values


def delta(after: dict, before: dict) -> dict[str, float]:
    return {key: after[key] - before[key] for key in ("VmRSS", "RssAnon", "RssFile")}


# ---------------------------------------------------------------------------------------------- synthetic genome


def contig_lengths(total: int, n: int, rng: np.random.Generator) -> list[int]:
    """n lengths summing to `total`, decreasing roughly like human chromosomes (about 5:1 largest to smallest)."""
    weights = np.linspace(1.0, 0.2, n) * rng.uniform(0.8, 1.2, n)
    lengths = np.floor(weights / weights.sum() * total).astype(np.int64)
    lengths[0] += total - lengths.sum()
    return [int(x) for x in lengths]


def n_runs(length: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Telomere-like N at both ends, one centromere-like gap, and a few small assembly gaps."""
    runs = [(0, int(rng.integers(10_000, 100_000)))]
    centre = int(length * rng.uniform(0.3, 0.6))
    runs.append((centre, centre + int(rng.integers(100_000, min(3_000_000, length // 20)))))
    for _ in range(int(rng.integers(3, 10))):
        start = int(rng.integers(0, length - 60_000))
        runs.append((start, start + int(rng.integers(100, 50_000))))
    runs.append((length - int(rng.integers(10_000, 100_000)), length))
    return runs


def write_fasta(path: Path, total: int, n_contigs: int, seed: int = 0) -> dict:
    """Random A/C/G/T (about 10% soft-masked lower case) with N runs, written in vectorised 60 Mbp chunks."""
    rng = np.random.default_rng(seed)
    upper, lower = np.frombuffer(b"ACGT", np.uint8), np.frombuffer(b"acgt", np.uint8)
    chunk = LINE * 1_000_000
    n_bases = 0
    with open(path, "wb") as handle:
        for number, length in enumerate(contig_lengths(total, n_contigs, rng), 1):
            handle.write(f">chr{number} synthetic contig {number}, {length} nt\n".encode())
            runs = n_runs(length, rng)
            for lo in range(0, length, chunk):
                hi = min(lo + chunk, length)
                digits = rng.integers(0, 4, hi - lo, dtype=np.uint8)
                seq = upper[digits]
                if rng.random() < 0.1:  # a soft-masked stretch somewhere in this chunk
                    a = int(rng.integers(0, hi - lo))
                    seq[a : a + 200_000] = lower[digits[a : a + 200_000]]
                for start, end in runs:
                    if start < hi and end > lo:
                        n_bases += min(end, hi) - max(start, lo)
                        seq[max(start, lo) - lo : min(end, hi) - lo] = ord("N")
                full = seq.size // LINE
                lines = np.empty((full, LINE + 1), np.uint8)
                lines[:, :LINE] = seq[: full * LINE].reshape(full, LINE)
                lines[:, LINE] = ord("\n")
                handle.write(lines.data)
                if seq.size > full * LINE:
                    handle.write(seq[full * LINE :].tobytes() + b"\n")
    return {"n_bases": n_bases}


def evict(directory: Path) -> None:
    """Drop a shard directory's pages from the page cache (no root needed: POSIX_FADV_DONTNEED on clean files)."""
    os.sync()
    for file in directory.rglob("*.bin"):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------------- child processes


def child_prepare(source: Path, out: Path) -> dict:
    base = memory()
    from dnabert.genome.shards import file_sha256, prepare_genome

    imported = memory()
    start = time.perf_counter()
    prepare_genome(source, out, progress=False)
    seconds = time.perf_counter() - start
    end = memory()
    start = time.perf_counter()
    file_sha256(source)
    sha_seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "sha256_seconds": sha_seconds,
        "source_bytes": source.stat().st_size,
        "rss_before_mb": imported["VmRSS"],
        "peak_rss_mb": end["VmHWM"],
        "peak_added_mb": end["VmHWM"] - imported["VmRSS"],
        "python_rss_mb": base["VmRSS"],
    }


def use_memmap_fetch() -> None:
    """Comparison, in this benchmark process only: GenomeShards.fetch slices the contig memmap (the old reader)."""
    from dnabert.genome.shards import GenomeShards

    def fetch(self, contig: int, start: int, end: int) -> np.ndarray:
        return np.array(self.codes(contig)[start:end])

    GenomeShards.fetch = fetch


def child_sample(
    directory: Path, cache_dir: Path, windows: int, batches: int, batch_size: int, memmap: int = 0
) -> dict:
    import torch  # noqa: F401  (everything a training run imports, so the baseline is realistic)

    from dnabert.data.pretraining import GenomeDataModule
    from dnabert.data.windows import WindowSampler, holdout_regions
    from dnabert.genome.shards import GenomeShards

    torch.set_num_threads(1)
    if memmap:
        use_memmap_fetch()
    result: dict = {"rss": {}}
    result["rss"]["baseline"] = base = memory()

    # open: shards + index + split + sampler (what a training run does before its first window); timed alone,
    # then again as GenomeDataModule.setup(), whose objects are the ones sampled from below
    start = time.perf_counter()
    shards = GenomeShards(directory)
    train, _ = holdout_regions(shards, None, 0.05)
    sampler = WindowSampler(shards, train, k=6, max_kmers=510)
    result["open_seconds"] = time.perf_counter() - start
    result["total_length"] = int(shards.lengths.sum())
    result["contigs"] = len(shards.contigs)

    start = time.perf_counter()
    module = GenomeDataModule(genome=str(directory), cache_dir=str(cache_dir), k=6, batch_size=batch_size)
    module.setup()
    result["setup_seconds"] = time.perf_counter() - start
    result["rss"]["opened"] = memory()

    # window draws through the data module's own sampler (one mapping per process, as in training); indices
    # offset so they are not the dataloader's windows 0, 1, ...
    del shards, sampler
    sampler = module.train_windows
    checkpoints = {n for n in (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000) if n < windows} | {windows}
    result["curve"] = {}
    start = time.perf_counter()
    nucleotides = 0
    for done, index in enumerate(range(10**9, 10**9 + windows), 1):
        codes, _ = sampler(index)
        nucleotides += codes.size
        if done in checkpoints:
            result["curve"][done] = memory()["VmRSS"] - base["VmRSS"]
    result["sample_seconds"] = time.perf_counter() - start
    result["windows"] = windows
    result["mean_window_nt"] = nucleotides / windows
    result["rss"]["sampled"] = memory()

    # the real input pipeline: k-mer ids, padding, noise, collation (num_workers=0)
    start = time.perf_counter()
    loader = iter(module.train_dataloader())
    for _ in range(batches):
        batch = next(loader)
    result["loader_seconds"] = time.perf_counter() - start
    result["loader_windows"] = batches * batch_size
    result["batch_shape"] = list(batch["input_ids"].shape)
    result["rss"]["loaded"] = end = memory()

    result["added"] = {step: delta(result["rss"][step], base) for step in ("opened", "sampled", "loaded")}
    result["peak_added_mb"] = end["VmHWM"] - base["VmRSS"]
    return result


def run_child(*args: str) -> dict:
    """Run this script in a fresh interpreter and return the JSON it prints last."""
    completed = subprocess.run([sys.executable, __file__, *args], cwd=REPO, capture_output=True, text=True)
    if completed.returncode:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"child {args[0]} failed with exit status {completed.returncode}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- report


def table(genomes: list[dict], windows: int, batches: int, batch_size: int) -> str:
    rows = [
        "| genome | size | prepare (one-off) | prepare peak RSS added | open + sampler | DataModule.setup | "
        f"RSS after imports | added RSS after open | added RSS after {windows:,} windows (anon / file) | "
        f"added RSS after +{batches * batch_size:,} loader windows (anon / file) | windows/s (sampler) | "
        "windows/s (loader) |",
        "|" + "---|" * 12,
    ]
    for g in genomes:
        s, p = g["sample"], g["prepare"]
        sampled, loaded = s["added"]["sampled"], s["added"]["loaded"]
        if p:
            prep = (f"{p['seconds']:.2f} s ({s['total_length'] / 1e6 / p['seconds']:.0f} Mbp/s, "
                    f"{p['source_bytes'] / MB / p['seconds']:.0f} MB/s of file)")
            prep_rss = f"{p['peak_added_mb']:.0f} MB"
        else:
            prep = prep_rss = "(same shards)"
        rows.append(f"| {g['name']} | {s['total_length'] / 1e6:,.1f} Mbp, {s['contigs']} contig(s) | {prep} | "
                    f"{prep_rss} | ")
        rows[-1] += (
            f"{s['open_seconds'] * 1e3:.1f} ms | {s['setup_seconds'] * 1e3:.1f} ms | "
            f"{s['rss']['baseline']['VmRSS']:.0f} MB | {s['added']['opened']['VmRSS']:.1f} MB | "
            f"**{sampled['VmRSS']:.1f} MB** ({sampled['RssAnon']:.1f} / {sampled['RssFile']:.1f}) | "
            f"**{loaded['VmRSS']:.1f} MB** ({loaded['RssAnon']:.1f} / {loaded['RssFile']:.1f}) | "
            f"{s['windows'] / s['sample_seconds']:,.0f} | {s['loader_windows'] / s['loader_seconds']:,.0f} |"
        )
    return "\n".join(rows)


def curve_table(genomes: list[dict]) -> str:
    points = sorted({int(n) for g in genomes for n in g["sample"]["curve"]})
    rows = ["| added VmRSS (MB) after n windows | " + " | ".join(f"{n:,}" for n in points) + " |",
            "|---|" + "---:|" * len(points)]
    for g in genomes:
        curve = {int(n): v for n, v in g["sample"]["curve"].items()}
        rows.append(f"| {g['name']} | " + " | ".join(f"{curve[n]:.1f}" if n in curve else "" for n in points) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dnabert_bench",
                        help="scratch, outside the repo (default: dnabert_bench in the system temp dir)")
    parser.add_argument("--size", type=float, default=1e9, help="synthetic genome size in nt (default 1e9)")
    parser.add_argument("--contigs", type=int, default=25)
    parser.add_argument("--small", type=Path, default=ECOLI, help="small genome to compare with (FASTA/.gz/2bit)")
    parser.add_argument("--windows", type=int, default=50_000, help="windows drawn straight from the sampler")
    parser.add_argument("--batches", type=int, default=200, help="train dataloader batches to iterate")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-cold", action="store_true", help="skip the cold page-cache run of the big genome")
    parser.add_argument("--no-memmap", action="store_true",
                        help="skip the comparison run of the big genome with the old memmap-slicing reader")
    parser.add_argument("--keep", action="store_true", help="keep the 1 Gbp FASTA and shards in --workdir")
    parser.add_argument("--json", type=Path, help="also write all measurements here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, *rest = args.child
        if kind == "prepare":
            out = child_prepare(Path(rest[0]), Path(rest[1]))
        else:
            out = child_sample(Path(rest[0]), Path(rest[1]), *map(int, rest[2:]))
        print(json.dumps(out))
        return

    work = args.workdir.resolve()
    if work == REPO or REPO in work.parents:
        raise SystemExit(f"--workdir {work} is inside the repository; use a scratch directory such as "
                         f"{Path(tempfile.gettempdir()) / 'dnabert_bench'}")
    work.mkdir(parents=True, exist_ok=True)
    need = args.size * 2.2
    if shutil.disk_usage(work).free < need:
        raise SystemExit(f"{work}: needs about {need / 1e9:.1f} GB free for the FASTA and its shards")
    total = int(args.size)
    if total / args.contigs < 2_000_000:
        raise SystemExit("--size / --contigs must be at least 2 Mbp per contig (the N-run layout assumes it)")
    big_fasta, big_shards = work / f"synthetic_{total // 10**6}Mbp.fa", work / f"synthetic_{total // 10**6}Mbp.shards"
    small_shards = work / f"{args.small.name}.shards"
    sample_args = [str(work / "cache"), str(args.windows), str(args.batches), str(args.batch_size)]
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "genomes": []}
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    results["machine"] = f"{os.cpu_count()} vCPU {cpu}, Python {sys.version.split()[0]}, numpy {np.__version__}"
    print(f"# {results['machine']}", flush=True)

    try:
        if not big_fasta.exists() or big_fasta.stat().st_size < total:
            print(f"writing {total / 1e9:g} Gbp synthetic FASTA to {big_fasta} ...", flush=True)
            start = time.perf_counter()
            info = write_fasta(big_fasta, total, args.contigs)
            results["generate_seconds"] = time.perf_counter() - start
            print(f"  {big_fasta.stat().st_size / MB:,.0f} MB, {info['n_bases']:,} N, "
                  f"{results['generate_seconds']:.1f} s", flush=True)

        genomes = []
        for name, source, shards in (
            (f"{args.small.name}", args.small, small_shards),
            (f"synthetic {total / 1e9:g} Gbp", big_fasta, big_shards),
        ):
            shutil.rmtree(shards, ignore_errors=True)
            print(f"prepare_genome {source.name} ...", flush=True)
            prepare = run_child("--child", "prepare", str(source), str(shards))
            print(f"  {prepare['seconds']:.2f} s (sha256 {prepare['sha256_seconds']:.2f} s), "
                  f"peak RSS {prepare['peak_rss_mb']:.0f} MB (+{prepare['peak_added_mb']:.0f} MB)", flush=True)
            # the comparison runs before the eviction so that it sees the same (just-written) page cache as the
            # warm row: after an eviction the cache is refilled by readahead, in smaller folios, and the old
            # reader's RSS then grows more slowly
            runs = [("warm page cache", False, False)]
            if source == big_fasta and not args.no_memmap:
                runs.append(("warm, before: old memmap-slicing reader", False, True))
            if source == big_fasta and not args.no_cold:
                runs.append(("cold page cache", True, False))
            for label, cold, memmap in runs:
                if cold:
                    evict(shards)
                print(f"sample {name} ({label}) in a fresh process ...", flush=True)
                sample = run_child("--child", "sample", str(shards), *sample_args, str(int(memmap)))
                print(f"  open {sample['open_seconds'] * 1e3:.1f} ms, setup {sample['setup_seconds'] * 1e3:.1f} ms, "
                      f"added RSS {sample['added']['loaded']['VmRSS']:.1f} MB", flush=True)
                genomes.append({"name": f"{name} ({label})", "prepare": None if cold or memmap else prepare,
                                "sample": sample, "memmap": memmap})
        results["genomes"] = genomes

        print()
        print(table(genomes, args.windows, args.batches, args.batch_size))
        print()
        print(curve_table(genomes))
        print()
        big = [g for g in genomes if g["name"].startswith("synthetic") and not g["memmap"]]
        small = genomes[0]["sample"]["added"]["loaded"]
        worst = max((g["sample"]["added"]["loaded"] for g in big), key=lambda a: a["VmRSS"])
        worst_open = max(max(g["sample"]["open_seconds"], g["sample"]["setup_seconds"]) for g in big)
        print(f"added VmRSS after sampling: {args.small.name} {small['VmRSS']:.1f} MB, "
              f"{total / 1e9:g} Gbp {worst['VmRSS']:.1f} MB "
              f"-> {'meets' if worst['VmRSS'] < 200 else 'MISSES'} < 200 MB "
              f"(anonymous {worst['RssAnon']:.1f} MB, file-backed {worst['RssFile']:.1f} MB)")
        print(f"open/setup of {total / 1e9:g} Gbp: {worst_open * 1e3:.1f} ms "
              f"-> {'meets' if worst_open < 1 else 'MISSES'} < 1 s")
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        if not args.keep:
            big_fasta.unlink(missing_ok=True)
            shutil.rmtree(big_shards, ignore_errors=True)


if __name__ == "__main__":
    main()
