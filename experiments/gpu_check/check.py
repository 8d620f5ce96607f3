"""GPU check: on a machine with one NVIDIA GPU, in under 8 minutes, one table of what dnabert does there.

    python3 experiments/gpu_check/check.py             # on the GPU (run.sh sets up the packages first)
    python3 experiments/gpu_check/check.py --dry-run   # the same steps on the CPU, tiny model (what the tests run)

Rows: DNABERT-6 pretraining throughput and MFU at 512 tokens in bf16 (experiments/throughput/bench.py, BERT-base,
against the GPU's bf16 matmul peak measured in the same run); a short fine-tuning run of DNABERT-6 on the splice
fixture (train.py, trainer=gpu); `dnabert predict` throughput in fp32 and bf16 with that model and the largest
difference of their probabilities; FSDP (trainer=fsdp, one GPU: 10 steps resumed to 20, the HF export checked
against the checkpoint); and a DeepSpeed ZeRO-2 run (trainer=deepspeed) where deepspeed is installed.
Every step runs as the command a user would type; a step that fails is a row saying how, and the check goes on.
The table goes to stdout and to `--out`/<device>.md.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
GENOME = DATA / "hg19_chr22_300kb.fa.gz"
SPLICE = {split: DATA / f"splice_primate_{split}.tsv" for split in ("train", "test")}


def command(args: list[str], cwd: Path, timeout: int) -> tuple[float, subprocess.CompletedProcess]:
    """(seconds, the finished process) of a command run with this interpreter, the checkout importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env)
    return time.perf_counter() - start, result


def failure(result: subprocess.CompletedProcess) -> str:
    """The last informative line of a failed command."""
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return f"failed (exit {result.returncode}): {lines[-1][:200] if lines else 'no output'}"


def pretraining(work: Path, dry: bool) -> list[tuple[str, str, float]]:
    """Rows of the throughput benchmark's headline lines."""
    device = ["--device", "cpu", "--model", "tiny", "--max-tokens", "64", "--rounds", "1", "--steps", "1",
              "--warmup", "1", "--loader-batches", "2", "--skip-compile"] if dry else \
        ["--device", "cuda", "--model", "dnabert6", "--rounds", "2", "--steps", "4", "--warmup", "2"]
    seconds, result = command([str(ROOT / "experiments" / "throughput" / "bench.py"), *device, "--genome",
                               str(GENOME), "--record", str(work / "throughput")], work, 420)
    if result.returncode:
        return [("pretraining throughput (bench.py)", failure(result), seconds)]
    wanted = ("headline", "highest MFU", "bf16 matmul", "fp32 matmul")
    lines = [line for line in result.stdout.splitlines() if line.startswith(wanted)]
    return [(f"pretraining: {line.split(':', 1)[0]}", line.split(":", 1)[1].strip(), seconds if i == 0 else 0.0)
            for i, line in enumerate(lines)]


def monitored(work: Path, dry: bool) -> tuple[str, str, float]:
    """Pretraining through train.py as a cluster job runs it (trainer=ddp on one device; bf16-mixed on the GPU): the
    real tokens/s and MFU that its ThroughputMonitor logs last, beside the bench's rows."""
    scale = ["model=tiny", "trainer.accelerator=cpu", "data.max_tokens=64", "trainer.max_steps=20"] if dry else \
        ["model=dnabert6", "trainer.accelerator=gpu", "trainer.precision=bf16-mixed", "trainer.max_steps=60"]
    run = work / "monitored"
    seconds, result = command([str(ROOT / "train.py"), "trainer=ddp", "trainer.devices=1",
                               "trainer.log_every_n_steps=10", "callbacks.progress_bar=null", "logger=csv",
                               f"data.genome={GENOME}",
                               f"paths.output_dir={run}", f"paths.cache_dir={work / 'cache'}", *scale], work, 300)
    name = "pretraining: train.py trainer=ddp devices=1" + (" (dry run)" if dry else ", DNABERT-6, bf16-mixed") + \
        ", ThroughputMonitor"
    if result.returncode:
        return name, failure(result), seconds
    rows = csv.DictReader(next(run.glob("csv/version_*/metrics.csv")).read_text().splitlines())
    last = [row for row in rows if row.get("train/device/mfu")][-1]
    return (name, f"{float(last['train/device/items_per_sec']):,.0f} real tokens/s, MFU "
                  f"{100 * float(last['train/device/mfu']):.1f}%", seconds)


def unran(rows: list[tuple[str, str, float]], dry: bool) -> list[str]:
    """The rows that should have run on this device and did not (a dry run has no FSDP and no DeepSpeed)."""
    allowed = ("FSDP", "DeepSpeed") if dry else ("DeepSpeed",)
    return [name for name, result, _ in rows
            if result.startswith(("failed", "not run", "not installed")) and not name.startswith(allowed)]


def finetuning(work: Path, dry: bool) -> tuple[tuple[str, str, float], Path | None]:
    """A short fine-tuning run; its row and the best model's HF directory."""
    scale = ["model=tiny", "trainer=cpu", "data.max_tokens=64", "+trainer.limit_train_batches=3",
             "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2"] if dry else \
        ["model=dnabert6", "trainer=gpu", "data.batch_size=64", "+trainer.limit_train_batches=60"]
    run = work / "finetune"
    seconds, result = command([str(ROOT / "train.py"), "task=classify", "trainer.max_epochs=1",
                               "callbacks.progress_bar=null", "callbacks.schedule=null", "logger=csv",
                               f"data.train={SPLICE['train']}", f"data.test={SPLICE['test']}",
                               f"paths.output_dir={run}", f"paths.cache_dir={work / 'cache'}", *scale], work, 300)
    if result.returncode:
        return ("fine-tuning DNABERT-6 on splice (train.py)", failure(result), seconds), None
    accuracy = json.loads((run / "test_metrics.json").read_text())["test/accuracy"]
    name = "fine-tuning " + ("tiny, 3 steps (dry run)" if dry else "DNABERT-6, 60 steps of 64, bf16-mixed") + \
        " on splice"
    return (name, f"test accuracy {accuracy:.3f}", seconds), run / "checkpoints" / "best.hf"


def prediction(work: Path, model: Path | None, dry: bool) -> list[tuple[str, str, float]]:
    """`dnabert predict` in fp32 and bf16 on the splice test file: sequences/s and the largest difference."""
    if model is None:
        return [("predict throughput", "not run: the fine-tuning run made no model", 0.0)]
    device = "cpu" if dry else "cuda"
    rows, outputs = [], {}
    with open(SPLICE["test"], newline="") as handle:
        lengths = [len(row["sequence"]) for row in csv.DictReader(handle, delimiter="\t")]
    count = len(lengths)
    for precision in ("fp32", "bf16"):
        out = work / f"predict_{precision}.tsv"
        seconds, result = command(["-m", "dnabert.cli", "predict", str(model), "--input", str(SPLICE["test"]),
                                   "--out", str(out), "--device", device, "--precision", precision, "--batch-size",
                                   "256", "--quiet"], work, 300)
        if result.returncode:
            rows.append((f"predict {precision}", failure(result), seconds))
            continue
        with open(out, newline="") as handle:
            outputs[precision] = np.array([[float(v) for k, v in row.items() if k.startswith("p_")]
                                           for row in csv.DictReader(handle, delimiter="\t")])
        rows.append((f"predict {precision} ({count} sequences of {np.mean(lengths):.0f} nt, loading included)",
                     f"{count / seconds:,.0f} sequences/s", seconds))
    if len(outputs) == 2:
        rows.append(("predict bf16 vs fp32", f"largest probability difference "
                     f"{np.abs(outputs['bf16'] - outputs['fp32']).max():.4f}", 0.0))
    return rows


def deepspeed(work: Path, dry: bool) -> tuple[str, str, float]:
    """A few ZeRO-2 steps of DNABERT-6 pretraining, where deepspeed is installed."""
    if dry or importlib.util.find_spec("deepspeed") is None:
        return ("DeepSpeed ZeRO-2 (trainer=deepspeed)", "not installed" if not dry else "not run in a dry run", 0.0)
    seconds, result = command([str(ROOT / "train.py"), "trainer=deepspeed", "trainer.devices=1", "model=dnabert6",
                               "trainer.max_steps=10", "trainer.val_check_interval=10", "data.val_windows=32",
                               "callbacks.progress_bar=null", "logger=csv", f"data.genome={GENOME}",
                               f"paths.output_dir={work / 'deepspeed'}", f"paths.cache_dir={work / 'cache'}"],
                              work, 300)
    return ("DeepSpeed ZeRO-2, 10 steps of DNABERT-6 pretraining", failure(result) if result.returncode else "ok",
            seconds)


def fsdp(work: Path, dry: bool) -> tuple[str, str, float]:
    """DNABERT-6 pretraining with trainer=fsdp on one GPU: 10 steps, resumed to 20, and the HF export of last.ckpt
    checked against the checkpoint's full (unsharded) weights."""
    name = "FSDP (trainer=fsdp), DNABERT-6: 10 steps, resumed to 20, last.hf = last.ckpt"
    if dry:
        return name, "not run on the CPU: Lightning refuses fsdp without a GPU accelerator", 0.0
    import torch
    from safetensors.torch import load_file

    from dnabert.models.checkpoints import model_weights

    run, total = work / "fsdp", 0.0
    for steps in (10, 20):
        seconds, result = command([str(ROOT / "train.py"), "trainer=fsdp", "trainer.devices=1", "model=dnabert6",
                                   f"trainer.max_steps={steps}", "trainer.val_check_interval=10", "data.val_windows=32",
                                   "callbacks.progress_bar=null", "logger=csv", f"data.genome={GENOME}",
                                   f"paths.output_dir={run}", f"paths.cache_dir={work / 'cache'}"], work, 300)
        total += seconds
        if result.returncode:
            return name, failure(result), total
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    weights = model_weights(checkpoint["state_dict"])
    exported = load_file(run / "checkpoints" / "last.hf" / "model.safetensors")
    same = exported.keys() <= weights.keys() and all(torch.equal(exported[k], weights[k].to(exported[k].dtype))
                                                     for k in exported)
    return name, (f"ok: step {checkpoint['global_step']}, export equal to the checkpoint" if same
                  else "failed: the HF export differs from last.ckpt's weights"), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the CPU, the tiny model, a few steps")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "record",
                        help="folder of the table (<device>.md) and the steps' outputs (work/)")
    args = parser.parse_args()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); --dry-run runs the CPU path")
    device = "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name()
    work = args.out.resolve() / "work"  # absolute: the steps run with the work folder as their directory
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = [*pretraining(work, args.dry_run), monitored(work, args.dry_run)]
    tuned, model = finetuning(work, args.dry_run)
    rows += [tuned, *prediction(work, model, args.dry_run), fsdp(work, args.dry_run),
             deepspeed(work, args.dry_run)]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    total = time.perf_counter() - started
    lines = [f"# GPU check: {device}", "", f"torch {torch.__version__}; {when}; total {total:.0f} s",
             "", "| step | result | seconds |", "|---|---|---:|",
             *(f"| {name} | {result} | {seconds:.0f} |" for name, result, seconds in rows)]
    text = "\n".join(lines) + "\n"
    print(text)
    (args.out / f"{'dry-run' if args.dry_run else 'cuda'}.md").write_text(text)
    missing = unran(rows, args.dry_run)
    if missing or not any(name.startswith("pretraining: headline") for name, _, _ in rows):
        sys.exit(f"gpu_check: rows that should have run here did not: {missing or ['pretraining: headline']}")


if __name__ == "__main__":
    main()
