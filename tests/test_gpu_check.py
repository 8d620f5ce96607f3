"""experiments/gpu_check: its CPU dry run takes every step a GPU run takes and prints the table."""

from __future__ import annotations

import sys

from tests.conftest import ROOT, run


def test_the_gpu_check_dry_run_fills_every_row(tmp_path):
    result = run([sys.executable, str(ROOT / "experiments" / "gpu_check" / "check.py"), "--dry-run", "--out",
                  str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "dry-run.md").read_text()
    assert table in result.stdout
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| step")]
    steps = [row.split(" | ")[0][2:] for row in rows]
    assert any(step.startswith("pretraining: headline") for step in steps)
    assert any(step.startswith("pretraining: highest MFU") for step in steps)
    assert any(step.startswith("fine-tuning") for step in steps) and "predict bf16 vs fp32" in steps
    assert not any("failed" in row for row in rows), table
    assert "sequences/s" in table and "test accuracy" in table and "DeepSpeed" in table and "FSDP" in table
