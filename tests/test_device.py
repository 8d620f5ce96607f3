"""`--device` and `--precision` in every inference command: CPU runs equal the default, bf16 autocast stays within a
stated tolerance of fp32, and a GPU asked for where there is none is one `dnabert:` line."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from dnabert.cli import main as dnabert_main

BF16_TOLERANCE = 0.02
"""Largest difference of a class probability between bf16 autocast and fp32 (the README states it)."""


def probabilities(path) -> np.ndarray:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return np.array([[float(value) for key, value in row.items() if key.startswith("p_")] for row in rows])


def cli(*args: str) -> None:
    dnabert_main([*map(str, args), "--quiet"])


def test_cpu_and_auto_equal_the_default_and_bf16_stays_within_its_tolerance(planted_model, tmp_path):
    model, data = planted_model["model"], planted_model["data"]
    runs = {"default": [], "cpu": ["--device", "cpu"], "bf16": ["--device", "cpu", "--precision", "bf16"]}
    if not torch.cuda.is_available():
        runs["auto"] = ["--device", "auto"]  # auto is the CPU here
    for name, options in runs.items():
        cli("predict", model, "--input", data, "--out", tmp_path / f"{name}.tsv", *options)
    fp32 = probabilities(tmp_path / "default.tsv")
    assert len(fp32) > 50
    for name in runs.keys() - {"default", "bf16"}:
        assert np.array_equal(probabilities(tmp_path / f"{name}.tsv"), fp32)
    difference = np.abs(probabilities(tmp_path / "bf16.tsv") - fp32)
    assert 0 < difference.max() <= BF16_TOLERANCE  # bf16 did run, and stayed close


@pytest.mark.parametrize("command", ["embed", "attention", "attribute", "variants"])
def test_every_inference_command_takes_the_options(planted_model, tmp_path, command):
    model = planted_model["model"]
    sequences = tmp_path / "two.fa"
    sequences.write_text(f">a\nACGTTGCA{planted_model['site']}GGATCCAT\n>b\nTTGACCAGTAGGCATCGATCGGA\n")
    inputs = ["--sequences", sequences, "--saturation"] if command == "variants" else ["--input", sequences]
    extra = {"embed": ["--pooling", "mean"], "attribute": ["--steps", "4"]}.get(command, [])
    out = tmp_path / ("e.npy" if command == "embed" else "variants.tsv" if command == "variants" else "out")
    cli(command, model, *inputs, "--out", out, "--device", "cpu", "--precision", "bf16", *extra)
    assert out.exists() and (out.is_dir() or out.stat().st_size > 0)


def test_a_gpu_asked_for_where_there_is_none_is_one_line(planted_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stopped:
        cli("predict", planted_model["model"], "--input", planted_model["data"], "--out", tmp_path / "p.tsv",
            "--device", "cuda")
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dnabert: --device cuda: this machine has no CUDA GPU"), lines
    assert list(tmp_path.iterdir()) == []
