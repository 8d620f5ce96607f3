"""Pretraining throughput: DNABERT's reference pipeline against dnabert, one lever at a time, in one run.

Run from the project root:

    nice -n 5 .venv/bin/python experiments/throughput/bench.py                       # CPU, small DNABERT-6
    .venv/bin/python experiments/throughput/bench.py --device cuda --model dnabert6  # GPU, the paper's BERT-base

Every setup trains the same model size on windows of the same genome (hg19 chr22 blocks from ../shared) drawn
by `GenomeDataModule`, with DNABERT's span masking, batch `--batch-size` x up to 512 tokens. The reference is
what DNABERT ran: `BertForMaskedLM` with eager attention in fp32, attention dropout 0.1, logits (and loss) at
every position, windows of per-window random length padded to the longest, AdamW. Each following setup adds one
lever to a setup before it (its base); the last rows add levers aimed at model FLOPs utilisation (MFU). Setups
are Hydra overrides of the training config plus how the step runs (bf16 autocast, bf16 weights, torch.compile),
so each row maps onto a `train.py` run.

Timing: the machine may be shared and noisy, so every setup runs `--steps` steps in each of `--rounds`
interleaved rounds (the order rotates every round) after `--warmup` steps; setups that share a data stream
train on the same batches. Tokens/s count real tokens only (no padding) over whole rounds; ratios are taken
within a round and their median reported. A matmul is timed in every round: its median is the peak that MFU is
measured against (bf16; fp32 on a CPU without native bf16, where the bf16 levers are left out, said in the output,
since emulated bf16 runs tens of times slower than fp32). The data loader (in-process, as `data.num_workers=0`) is
timed in every round too and compared with the fastest setup's consumption. Prints the Markdown tables and writes
them, with the raw numbers, to experiments/throughput/record/<device>-<model>.{md,json} (committed: the README's
figures come from them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

N_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(N_CPUS))

import torch  # noqa: E402
import transformers  # noqa: E402

from dnabert.atomic import write_text_atomic  # noqa: E402
from dnabert.callbacks import matmul_peak  # noqa: E402
from dnabert.config import composed as compose_config  # noqa: E402
from dnabert.config import register_resolvers  # noqa: E402
from dnabert.data.masking import IGNORE_INDEX  # noqa: E402
from dnabert.models.module import matmul_flops  # noqa: E402
from dnabert.models.pretraining import MaskedKmerModule  # noqa: E402
from dnabert.provenance import checkout_relative  # noqa: E402
from dnabert.training import data_and_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GENOME = ROOT.parent / "shared" / "data" / "human_chr22_hg19" / "hg19_chr22_blocks.fa.gz"
RECORD = Path(__file__).resolve().parent / "record"
"""What a run writes, to be committed: the raw numbers (JSON) and the printed tables (Markdown), one pair per
device and model."""
PAPER_TOKENS = 120_000 * 2_000 * 512
"""The paper's pretraining budget: 120k steps x 2,000 windows x 512 tokens."""
OP_GROUPS = {
    "matmul (linear layers, MLM head)": ("aten::mm", "aten::addmm", "aten::bmm"),
    "attention kernel (scores, softmax, weighted sum)": ("aten::_scaled_dot_product", "aten::_efficient_attention",
                                                         "aten::_flash_attention"),
    "dropout masks": ("aten::bernoulli", "aten::native_dropout"),
}
"""Operator groups of the --profile breakdown, by the start of the operator's name; the rest is "other"."""

warnings.filterwarnings("ignore", message=".*self.log.*")  # the module's step logs; no Trainer here to receive it


@dataclass(frozen=True)
class Setup:
    """One benchmarked configuration: Hydra overrides plus how the training step runs."""

    name: str
    overrides: dict[str, object] = field(default_factory=dict)
    reference_step: bool = True
    """True: HF `BertForMaskedLM(labels=...)`, logits at every position; False: the module's masked-only step."""
    autocast: bool = False
    bf16_weights: bool = False
    compile: bool = False
    changes_model: bool = False
    """True where a lever changes the model itself (not only how it runs)."""
    ladder: bool = True
    """True on the ladder (the reference's batch and width); False on the MFU rows."""
    as_configured: bool = False
    """True where the model is the one its preset configures (attention dropout as the preset sets it, nothing
    changed): the setups the headline is taken from."""
    base: str | None = None
    """The setup this one adds a lever to."""

    def add(self, name: str, overrides: dict[str, object] | None = None, **step: bool) -> Setup:
        """This setup with one more lever."""
        return replace(self, name=name, overrides={**self.overrides, **(overrides or {})}, base=self.name, **step)

    @property
    def stream(self) -> tuple:
        """The data overrides: setups with equal streams train on the same batches."""
        return tuple(sorted((k, str(v)) for k, v in self.overrides.items() if k.startswith("data.")))


def setups(model: str, batch_size: int, mfu_layers: int = 2, bf16: bool = True, compile: bool = True) -> list[Setup]:
    """The reference, each lever added one by one, then the MFU levers on top of the best uncompiled setup. A lever
    that changes the model as its preset configures it (attention dropout off where the preset keeps it) is marked
    so, and so is every setup built on it. `bf16=False` leaves out the bf16 levers (autocast, bf16 weights),
    `compile=False` the torch.compile row."""
    preset_dropout = compose_config([f"model={model}", f"data.genome={GENOME}", "paths.output_dir=unused"]
                                    ).model.config.attention_probs_dropout_prob
    no_dropout = "+ no attention dropout" + (f" (a model change: model={model} keeps {preset_dropout})"
                                             if preset_dropout else f" (as model={model} is configured)")
    reference = Setup("reference: HF eager fp32, attn dropout 0.1, all-position logits, padded", {
        "model": model, "data.batch_size": batch_size, "task.attn_implementation": "eager",
        "model.config.attention_probs_dropout_prob": 0.1, "data.length_grouping": False,
    })
    ladder = [reference]
    for name, overrides, step in [
        ("+ sdpa attention", {"task.attn_implementation": "sdpa"}, {}),
        *([("+ bf16 autocast", {}, {"autocast": True})] if bf16 else []),
        ("+ masked-only logits (MaskedKmerModule)", {}, {"reference_step": False}),
        ("+ length grouping", {"data.length_grouping": True}, {}),
        ("+ fused AdamW", {"+task.optimizer.fused": True}, {}),
        (no_dropout, {"model.config.attention_probs_dropout_prob": 0.0}, {"changes_model": bool(preset_dropout)}),
    ]:
        ladder.append(ladder[-1].add(name, overrides, **step))
    best = next(setup for setup in reversed(ladder) if not setup.changes_model)  # the MFU levers keep the model
    if compile:
        ladder.append(best.add("+ torch.compile (encoder, dynamic shapes)", compile=True))
    ladder.append(best.add(f"MFU: batch {4 * batch_size}", {"data.batch_size": 4 * batch_size}, ladder=False))
    prefix = "MFU: "
    if model in ("tiny", "small"):
        best = best.add(f"MFU: BERT-base width (768/3072, 12 heads), {mfu_layers} layers",
                        {"model": "dnabert6", "model.config.num_hidden_layers": mfu_layers}, ladder=False)
        ladder.append(best)
        prefix = best.name + ", "
    if bf16:
        best = best.add(prefix + "bf16 weights", bf16_weights=True, autocast=False, ladder=False)
        ladder.append(best)
    ladder.append(best.add((f"{best.name}, " if not best.ladder else prefix) + "no hidden dropout (a model change)",
                           {"model.config.hidden_dropout_prob": 0.0}, changes_model=True, ladder=False))
    dropout = "model.config.attention_probs_dropout_prob"
    return [replace(s, as_configured=not s.changes_model and float(s.overrides[dropout]) == float(preset_dropout))
            for s in ladder]


def composed(setup: Setup, max_tokens: int | None, genome: Path = GENOME):
    """The training config of a setup on `genome` (scheduler off: the step alone is timed)."""
    overrides = [f"{key}={str(value).lower() if isinstance(value, bool) else value}"
                 for key, value in setup.overrides.items()]
    if max_tokens:
        overrides.append(f"data.max_tokens={max_tokens}")
    return compose_config(["task=pretrain", f"data.genome={genome}", "paths.output_dir=unused", "task.scheduler=null",
                           *overrides])


class Runner:
    """A setup's module, optimizer and batches, ready to time."""

    def __init__(self, setup: Setup, module: MaskedKmerModule, batches: list[dict[str, torch.Tensor]],
                 device: torch.device):
        self.setup = setup
        self.device = device
        self.module = module.to(device)
        if setup.bf16_weights:
            self.module.to(torch.bfloat16)
        self.optimizer = self.module.configure_optimizers()["optimizer"]
        if setup.compile:
            self.module.model.bert.compile(dynamic=True)
        self.batches = batches
        self.flops = []
        self.module.train()
        for batch in batches:  # the FLOPs a training run logs (its ThroughputMonitor reads the same count)
            decoded = batch["attention_mask"].sum()
            if not setup.reference_step:
                _, labels = self.module.masking(batch["input_ids"], batch["noise"], 0)
                decoded = (labels != IGNORE_INDEX).sum()
            self.module.count_flops(batch["attention_mask"], int(decoded))
            self.flops.append(self.module.flops_per_batch)

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        """One optimizer step: masking, forward, loss, backward, AdamW."""
        batch = {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.setup.autocast):
            if self.setup.reference_step:
                inputs, labels = self.module.masking(batch["input_ids"], batch["noise"], 0)
                loss = self.module.model(input_ids=inputs, attention_mask=batch["attention_mask"], labels=labels).loss
            else:
                loss = self.module.training_step(batch, 0)
        loss.backward()
        self.optimizer.step()

    def timed(self, indices: range) -> tuple[float, float, float]:
        """(seconds, real tokens, FLOPs) of the steps on batches `indices`."""
        seconds = tokens = flops = 0.0
        for index in indices:
            start = time.perf_counter()
            self.step(self.batches[index])
            synchronize(self.device)
            seconds += time.perf_counter() - start
            tokens += float(self.batches[index]["attention_mask"].sum())
            flops += self.flops[index]
        return seconds, tokens, flops


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run at least as fast as fp32 here (on a CPU without AVX512_BF16/AMX they are emulated)."""
    quick = {"size": 512, "repeats": 2}
    return device.type == "cuda" or matmul_peak(device, torch.bfloat16, **quick) >= matmul_peak(device, torch.float32,
                                                                                                   **quick)


def loader_rate(data, batches: int) -> float:
    """Real tokens/s of the training data loader alone (windows, k-mer ids, noise, collation)."""
    loader = iter(data.train_dataloader())
    start = time.perf_counter()
    tokens = sum(float(next(loader)["attention_mask"].sum()) for _ in range(batches))
    return tokens / (time.perf_counter() - start)


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "CPU"


def spread(values: list[float], digits: int = 0) -> str:
    """Median [min-max] of values."""
    return f"{statistics.median(values):,.{digits}f} [{min(values):,.{digits}f}-{max(values):,.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default="small", help="conf/model choice (small, tiny, dnabert6, ...)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=None, help="data.max_tokens (default: the model's 512)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="steps per setup per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per setup first")
    parser.add_argument("--loader-batches", type=int, default=30, help="batches the loader makes per round")
    parser.add_argument("--mfu-layers", type=int, default=2,
                        help="layers of the BERT-base-width MFU rows on a small/tiny ladder (BERT-base has 12)")
    parser.add_argument("--genome", type=Path, default=GENOME, help="FASTA the windows are drawn from")
    parser.add_argument("--record", type=Path, default=RECORD, help="folder of the record's .json and .md")
    parser.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile row")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, where the time of the highest-MFU setup that keeps the model goes")
    args = parser.parse_args()

    torch.set_num_threads(N_CPUS)
    torch.manual_seed(0)
    register_resolvers()
    device = torch.device(args.device)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    total = args.warmup + args.rounds * args.steps

    bf16 = native_bf16(device)
    peak_dtype = torch.bfloat16 if bf16 else torch.float32
    runners, streams, loader_data = [], {}, None
    for setup in setups(args.model, args.batch_size, args.mfu_layers, bf16, not args.skip_compile):
        cfg = composed(setup, args.max_tokens, args.genome)
        data, module = data_and_module(cfg)
        if setup.stream not in streams:
            data.prepare_data()
            data.setup()
            loader = iter(data.train_dataloader())
            streams[setup.stream] = [next(loader) for _ in range(total)]
            if cfg.data.length_grouping and cfg.data.batch_size == args.batch_size:
                loader_data = data
        runners.append(Runner(setup, module, streams[setup.stream], device))

    compile_seconds = {}
    for runner in runners:
        seconds = runner.timed(range(args.warmup))[0]
        if runner.setup.compile:
            compile_seconds[runner.setup.name] = seconds

    rounds = []
    for number in range(args.rounds):
        measured = range(args.warmup + number * args.steps, args.warmup + (number + 1) * args.steps)
        order = runners[number % len(runners):] + runners[: number % len(runners)]
        results = {runner.setup.name: runner.timed(measured) for runner in order}
        rounds.append({"peak": matmul_peak(device, peak_dtype, repeats=10),
                       "loader": loader_rate(loader_data, args.loader_batches), "setups": results})
        print(f"round {number + 1}/{args.rounds} done", flush=True)

    profiled = None
    if args.profile:
        kept = [r for r in runners if not r.setup.changes_model and not r.setup.compile]
        runner = max(kept, key=lambda r: statistics.median(flop_rates(rounds, r.setup.name)))
        profiled = profile(runner, range(args.warmup, args.warmup + args.steps))
    report(args, runners, rounds, compile_seconds, load_before, started, profiled, bf16)


def flop_rates(rounds: list[dict], name: str) -> list[float]:
    """FLOP/s of setup `name` in each round."""
    return [result["setups"][name][2] / result["setups"][name][0] for result in rounds]


def profile(runner: Runner, indices: range) -> dict:
    """Share of the steps' operator time per `OP_GROUPS` group, attention's share of the counted FLOPs, and the FLOP
    rate of the linear-layer matmuls and of the attention kernel while each runs."""
    cuda = runner.device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CUDA if cuda else torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities) as prof:
        runner.timed(indices)
    time_of = "self_device_time_total" if cuda else "self_cpu_time_total"
    groups = dict.fromkeys([*OP_GROUPS, "other"], 0.0)
    for event in prof.key_averages():
        group = next((name for name, prefixes in OP_GROUPS.items() if event.key.startswith(prefixes)), "other")
        groups[group] += getattr(event, time_of)
    total = sum(groups.values())
    flops = sum(runner.flops[i] for i in indices)
    attention = sum(matmul_flops(0, 0, runner.module.config, runner.batches[i]["attention_mask"].sum(1), 0)
                    for i in indices)
    matmul, kernel = list(OP_GROUPS)[:2]
    # profiler times are in microseconds: FLOPs / us / 1e3 = GFLOP/s
    rates = {matmul: (flops - attention) / groups[matmul] / 1e3, kernel: attention / groups[kernel] / 1e3}
    return {"setup": runner.setup.name, "time_share": {name: t / total for name, t in groups.items()},
            "attention_flop_share": attention / flops, "gflops_per_s": rates}


def report(args, runners: list[Runner], rounds: list[dict], compile_seconds: dict, load_before, started,
           profiled: dict | None, bf16: bool) -> None:
    """Print the Markdown tables and write them, with the raw numbers as JSON, under record/."""
    peaks = [r["peak"] for r in rounds]
    peak = statistics.median(peaks)
    names = [runner.setup.name for runner in runners]
    rate = {name: [r["setups"][name][1] / r["setups"][name][0] for r in rounds] for name in names}
    flop_rate = {name: flop_rates(rounds, name) for name in names}
    fastest = max(names, key=lambda name: statistics.median(rate[name]))
    loader = [r["loader"] for r in rounds]
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"{cpu_name()}, {N_CPUS} threads"

    lines: list[str] = []
    lines.append(f"\n{started}; {device}; torch {torch.__version__}, transformers {transformers.__version__}; "
                 f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    precision = "bf16" if bf16 else "fp32"
    if not bf16:
        lines.append("no native bf16 on this device (bf16 matmuls slower than fp32): the bf16 levers are left out and "
                     "MFU is against the fp32 peak")
    lines.append(f"{precision} matmul peak: {spread([p / 1e9 for p in peaks])} GFLOP/s (median of {len(rounds)} "
                 "rounds)\n")
    lines.append("| setup | tokens/s (real) median [range] | x base | x reference | padding | tokens/window | "
                 f"GFLOP/s | MFU ({precision} peak) |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for runner, name in zip(runners, names):
        batches = runner.batches[args.warmup:]
        real = sum(float(b["attention_mask"].sum()) for b in batches)
        padding = 1 - real / sum(b["attention_mask"].numel() for b in batches)
        per_window = real / sum(len(b["attention_mask"]) for b in batches)
        against = {label: statistics.median(a / b for a, b in zip(rate[name], rate[other]))
                   for label, other in (("base", runner.setup.base or name), ("reference", names[0]))}
        mfu = statistics.median(flop_rate[name]) / peak
        gflops = statistics.median(flop_rate[name]) / 1e9
        lines.append(f"| {name} | {spread(rate[name])} | {against['base']:.2f} | {against['reference']:.2f} | "
                     f"{padding:.1%} | {per_window:.0f} | {gflops:,.0f} | {mfu:.1%} |")
    best = statistics.median(rate[fastest])
    kept = [runner.setup.name for runner in runners if runner.setup.as_configured]
    on_ladder = [runner.setup.name for runner in runners if runner.setup.as_configured and runner.setup.ladder]
    headline = max(on_ladder, key=lambda name: statistics.median(rate[name]))
    lines.append(f"\nheadline, the model as configured at the reference's batch and width: {headline}, "
                 f"{statistics.median(a / b for a, b in zip(rate[headline], rate[names[0]])):.2f}x the reference, MFU "
                 f"{statistics.median(flop_rate[headline]) / peak:.1%}")
    top = max(kept, key=lambda name: statistics.median(flop_rate[name]))
    lines.append(f"highest MFU, the model as configured: {top}, {statistics.median(flop_rate[top]) / peak:.1%}")
    lines.append(f"\nloader: {spread(loader)} real tokens/s = {statistics.median(loader) / best:.0f}x the fastest "
                 f"setup ({fastest})")
    for name, seconds in compile_seconds.items():
        lines.append(f"{name}: first {args.warmup} steps (compilation) {seconds:.1f} s")
    lines.append(f"paper budget (120k steps x 2,000 x 512 tokens) at the fastest setup: "
                 f"{PAPER_TOKENS / best / 3600:,.1f} h on this device")
    if profiled:
        lines.append(f"\nprofile of {profiled['setup']} ({args.steps} steps): operator time share")
        for name, share in profiled["time_share"].items():
            lines.append(f"- {name}: {share:.1%}")
        lines.append(f"attention's share of the counted FLOPs: {profiled['attention_flop_share']:.1%}")
        for name, rate in profiled["gflops_per_s"].items():
            lines.append(f"- {name}: {rate:,.0f} GFLOP/s while it runs")

    text = "\n".join(lines) + "\n"
    print(text)
    args.record.mkdir(parents=True, exist_ok=True)
    stem = args.record / f"{args.device}-{args.model}"
    write_text_atomic(stem.with_suffix(".json"), json.dumps({
        "args": checkout_relative(vars(args)), "device": device, "native_bf16": bf16, "started": started,
        "rounds": rounds,
        "compile_seconds": compile_seconds, "profile": profiled,
        "setups": {r.setup.name: r.setup.overrides for r in runners}}, indent=1, default=str))
    write_text_atomic(stem.with_suffix(".md"), text)
    print(f"raw numbers and this table: {stem}.json, .md")


if __name__ == "__main__":
    main()
