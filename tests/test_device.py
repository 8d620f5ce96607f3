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


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


POSITIONS = {"rank", "position", "start", "end"}
"""Table columns that place a row rather than score it."""


def numbers(out) -> np.ndarray:
    """Every score a command wrote (a .npy file, a table, or a folder of them) in a fixed order: a table's decimal
    cells, its rows ordered by their other cells (a ranking may reorder them); NaN where a track is padded past a
    shorter sequence's end."""
    paths = sorted(p for p in out.rglob("*") if p.is_file()) if out.is_dir() else [out]
    values = []
    for path in paths:
        if path.suffix == ".npy":
            values.append(np.load(path).astype(np.float64).ravel())
        elif path.suffix == ".tsv":
            header, *lines = [line.split("\t") for line in path.read_text().splitlines()]
            scores = [[i for i, name in enumerate(header) if name not in POSITIONS and is_number(row[i])]
                      for row in lines]
            keyed = sorted(([c for i, c in enumerate(row) if i not in mine and header[i] != "rank"],
                            [float(row[i]) for i in mine]) for row, mine in zip(lines, scores))
            values.append(np.array([value for _, row in keyed for value in row]))
    return np.concatenate(values)


@pytest.mark.parametrize("command", ["embed", "attention", "attribute", "variants"])
def test_every_inference_command_runs_where_and_how_it_is_told(planted_model, tmp_path, monkeypatch, command):
    """`--device` puts the model's weights there (checked on its parameters, as loaded), and `--precision bf16`
    changes the numbers written (bf16 did run) by a small fraction of their scale (it stayed close)."""
    import dnabert.models.embedding as embedding
    import dnabert.models.inference as inference

    model = planted_model["model"]
    sequences = tmp_path / "two.fa"
    sequences.write_text(f">a\nACGTTGCA{planted_model['site']}GGATCCAT\n>b\nTTGACCAGTAGGCATCGATCGGA\n")
    inputs = ["--sequences", sequences, "--saturation"] if command == "variants" else ["--input", sequences]
    extra = {"embed": ["--pooling", "mean"], "attribute": ["--steps", "4"]}.get(command, [])
    placed = []
    for module, loader in ((inference, "load_classifier"), (embedding, "load_encoder")):
        original = getattr(module, loader)

        def recording(*args, _original=original, **kwargs):
            loaded = _original(*args, **kwargs)
            placed.append(next(loaded.parameters()).device.type)
            return loaded
        monkeypatch.setattr(module, loader, recording)
    outputs = {}
    for device, precision in (("cpu", "fp32"), ("auto", "fp32"), ("cpu", "bf16")):
        out = tmp_path / f"{device}-{precision}" / ("e.npy" if command == "embed" else "v.tsv" if command == "variants"
                                                     else "out")
        out.parent.mkdir()
        cli(command, model, *inputs, "--out", out, "--device", device, "--precision", precision, *extra)
        outputs[device, precision] = numbers(out)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert placed == ["cpu", auto, "cpu"]
    fp32, bf16 = outputs["cpu", "fp32"], outputs["cpu", "bf16"]
    assert fp32.size > 10 and fp32.shape == bf16.shape
    assert np.array_equal(np.isnan(fp32), np.isnan(bf16))  # NaN: past the end of a shorter sequence
    difference = np.nanmax(np.abs(bf16 - fp32))
    assert 0 < difference <= 0.05 * np.nanmax(np.abs(fp32)), (difference, np.nanmax(np.abs(fp32)))


def test_a_gpu_asked_for_where_there_is_none_is_one_line(planted_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stopped:
        cli("predict", planted_model["model"], "--input", planted_model["data"], "--out", tmp_path / "p.tsv",
            "--device", "cuda")
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dnabert: --device cuda: this machine has no CUDA GPU"), lines
    assert list(tmp_path.iterdir()) == []
