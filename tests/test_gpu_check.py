"""experiments/gpu_check: its CPU dry run takes every step a GPU run takes and prints the table, and it fails when a
row that should run on this device did not."""

from __future__ import annotations

import importlib.util
import sys

from tests.conftest import ROOT, run

CHECK = ROOT / "experiments" / "gpu_check" / "check.py"


def test_the_gpu_check_dry_run_fills_every_row(tmp_path):
    result = run([sys.executable, str(CHECK), "--dry-run", "--out", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "dry-run.md").read_text()
    assert table in result.stdout
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| step")]
    steps = [row.split(" | ")[0][2:] for row in rows]
    assert any(step.startswith("pretraining: headline") for step in steps)
    assert any(step.startswith("pretraining: highest MFU") for step in steps)
    assert any(step.startswith("fine-tuning") for step in steps) and "predict bf16 vs fp32" in steps
    (monitored,) = [row for row in rows if "ThroughputMonitor" in row]
    assert "real tokens/s, MFU" in monitored
    not_run = [row for row in rows if " | not run" in row or " | failed" in row]
    assert [row.split(" | ")[0][2:].split()[0] for row in not_run] == ["FSDP", "DeepSpeed"], table


def test_a_row_that_should_have_run_here_fails_the_check():
    spec = importlib.util.spec_from_file_location("gpu_check", CHECK)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    rows = [("pretraining: headline", "6.30x", 1.0), ("FSDP (trainer=fsdp), ...", "not run on the CPU: ...", 0.0),
            ("DeepSpeed ZeRO-2 (trainer=deepspeed)", "not run in a dry run", 0.0)]
    assert check.unran(rows, dry=True) == []
    assert check.unran(rows, dry=False) == ["FSDP (trainer=fsdp), ..."]  # on a GPU, FSDP must run
    broken = [*rows, ("predict fp32", "failed (exit 1): no model", 2.0), ("predict throughput", "not run: ...", 0.0)]
    assert check.unran(broken, dry=True) == ["predict fp32", "predict throughput"]
