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
