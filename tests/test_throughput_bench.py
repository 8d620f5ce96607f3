"""The throughput benchmark's ladder: which rows keep the model as its preset configures it, and which levers run."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from dnabert.config import register_resolvers
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def bench():
    """experiments/throughput/bench.py as a module (the experiments folder is not a package)."""
    register_resolvers()
    spec = importlib.util.spec_from_file_location("bench", ROOT / "experiments" / "throughput" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench"]


def test_attention_dropout_off_is_a_model_change_only_where_the_preset_keeps_it(bench):
    for model, changes in (("small", False), ("dnabert6", True)):
        ladder = {setup.name: setup for setup in bench.setups(model, 16)}
        (dropout,) = [setup for name, setup in ladder.items() if name.startswith("+ no attention dropout")]
        assert dropout.changes_model is changes
        assert ("a model change: model=dnabert6 keeps 0.1" in dropout.name) is changes
        compiled = ladder["+ torch.compile (encoder, dynamic shapes)"]
        assert compiled.base == ("+ fused AdamW" if changes else dropout.name) and not compiled.changes_model
        built_on_a_change = [s for s in ladder.values() if s.base and ladder[s.base].changes_model]
        assert all(s.changes_model for s in built_on_a_change)


def test_only_the_hidden_dropout_row_changes_the_small_model(bench):
    changed = [setup.name for setup in bench.setups("small", 16) if setup.changes_model]
    assert changed == ["MFU: BERT-base width (768/3072, 12 heads), 2 layers, bf16 weights, no hidden dropout "
                       "(a model change)"]


def test_without_native_bf16_the_bf16_levers_are_left_out(bench):
    with_bf16, without = (bench.setups("small", 16, bf16=flag) for flag in (True, False))
    assert any(s.autocast for s in with_bf16) and any(s.bf16_weights for s in with_bf16)
    assert not any(s.autocast or s.bf16_weights for s in without)
    assert len(with_bf16) - len(without) == 2
    assert {s.base for s in without} <= {s.name for s in without} | {None}


def test_the_headline_comes_from_setups_of_the_model_as_its_preset_configures_it(bench):
    small = {s.name: s for s in bench.setups("small", 16)}  # small turns attention dropout off
    assert not small["+ fused AdamW"].as_configured and small["+ no attention dropout (as model=small is configured)"
                                                                  ].as_configured
    dnabert6 = {s.name: s for s in bench.setups("dnabert6", 16)}  # dnabert6 keeps the paper's 0.1
    assert dnabert6["+ fused AdamW"].as_configured and dnabert6["+ sdpa attention"].as_configured
    assert not any(s.as_configured for s in dnabert6.values() if s.name.startswith("+ no attention dropout"))
    assert not any(s.as_configured and s.changes_model for s in [*small.values(), *dnabert6.values()])


def test_the_ratios_and_mfu_of_the_table_follow_a_hand_worked_record(bench, tmp_path, capsys):
    """Two rounds, two setups, a known peak: tokens/s, the ratios to base and reference, padding, tokens per window,
    GFLOP/s and MFU as worked by hand."""
    import types

    import torch

    reference = bench.Setup("reference", {"data.batch_size": 2}, as_configured=True)
    lever = reference.add("+ lever", as_configured=True)
    batches = [{"attention_mask": torch.ones(2, 4)}, {"attention_mask": torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])}]
    runners = [types.SimpleNamespace(setup=setup, batches=batches) for setup in (reference, lever)]
    # (seconds, real tokens, FLOPs) per setup: reference 500 tokens/s and 20 GFLOP/s, the lever 3x, 50 GFLOP/s
    rounds = [{"peak": 100e9, "loader": 15000.0,
               "setups": {"reference": (2.0, 1000.0, 40e9), "+ lever": (1.0, 1500.0, 50e9)}}] * 2
    args = types.SimpleNamespace(device="cpu", model="small", warmup=1, steps=1, record=tmp_path)
    bench.report(args, runners, rounds, {}, (0.0, 0.0, 0.0), "now", None, bf16=False)
    table = (tmp_path / "cpu-small.md").read_text()
    assert "| reference | 500 [500-500] | 1.00 | 1.00 | 25.0% | 3 | 20 | 20.0% |" in table
    assert "| + lever | 1,500 [1,500-1,500] | 3.00 | 3.00 | 25.0% | 3 | 50 | 50.0% |" in table
    assert "headline, the model as configured at the reference's batch and width: + lever, 3.00x the reference, " \
           "MFU 50.0%" in table
    assert "loader: 15,000 [15,000-15,000] real tokens/s = 10x the fastest setup (+ lever)" in table
    assert "fp32 matmul peak: 100 [100-100] GFLOP/s" in table
