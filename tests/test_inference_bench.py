"""The inference benchmark, run for real on a one-layer DNABERT-6-width model over the fixtures: every row runs, the
fp32 rows agree exactly, the bf16 rows within the tolerance, and sorting cuts the padding of mixed lengths."""

from __future__ import annotations

import importlib.util
import json
import re
import sys

from tests.conftest import ROOT, data_file


def test_every_row_runs_and_agrees_with_todays_path(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("inference_bench",
                                                  ROOT / "experiments" / "inference_throughput" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "inference_bench", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    config = json.loads(data_file("dnabert_original_configs.json").read_text())["6"]["config"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(bench, "CONFIG", tmp_path / "config.json")
    monkeypatch.setattr(bench, "TFBS", data_file("oct4_mafk_test_50.tsv"))
    monkeypatch.setattr(bench, "GENOME", data_file("ecoli_k12_300kb.fa.gz"))
    monkeypatch.setattr(sys, "argv", ["bench.py", "--layers", "1", "--sequences", "24", "--batch-size", "8",
                                      "--rounds", "2", "--record", str(tmp_path / "record")])
    bench.main()

    table = (tmp_path / "record" / "cpu.md").read_text()
    assert table in capsys.readouterr().out
    rows = {}
    for section in table.split("### ")[1:]:
        name = section.splitlines()[0]
        for line in section.splitlines():
            cells = [cell.strip() for cell in line.split("|")[1:-1]]
            if cells and cells[0] in {row.name for row in bench.ROWS}:
                rows[name, cells[0]] = cells
    assert len(rows) == 2 * len(bench.ROWS)
    mixed = next(name for name, _ in rows if name.startswith("E. coli"))
    today, sorted_ = (rows[mixed, row.name] for row in bench.ROWS[:2])
    assert float(sorted_[5].rstrip("%")) < float(today[5].rstrip("%"))
    for (_, name), cells in rows.items():
        row = next(row for row in bench.ROWS if row.name == name)
        difference = float(cells[6])
        assert difference <= (bench.TOLERANCE if row.bf16 else 1e-5), (name, cells)
    assert re.search(r"headline, .*: [\d.]+x on TFBS windows, \d+ nt, [\d.]+x on E\. coli windows", table)
    record = json.loads((tmp_path / "record" / "cpu.json").read_text())
    assert len(record["rounds"]) == 2 and len(record["rounds"][0]) == 2 * len(bench.ROWS)
