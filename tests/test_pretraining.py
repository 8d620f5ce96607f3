"""The real entry point: `python train.py` pretrains a tiny DNABERT on a real genome."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertForMaskedLM

from dnabert.tokenization import DNAKmerTokenizer
from tests.conftest import LAMBDA, assert_user_error, data_file, train, train_in_process

FAST = ["model=tiny", "data.max_tokens=128", "data.batch_size=32", "task.optimizer.lr=2e-3",
        "task.scheduler.warmup=30"]


def val_history(output_dir) -> list[dict]:
    rows = csv.DictReader(open(output_dir / "csv" / "version_0" / "metrics.csv"))
    return [{k: float(v) for k, v in row.items() if v} for row in rows if row.get("val/loss")]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """300 steps of a tiny DNABERT-6 on E. coli K-12, validated on its held-out last 5 %."""
    cwd = tmp_path_factory.mktemp("pretrain")
    genome = data_file("ecoli_k12_300kb.fa.gz")
    result = train([*FAST, f"data.genome={genome}", "trainer.max_steps=300", "trainer.val_check_interval=50",
                    f"paths.output_dir={cwd / 'run'}", "logger=csv"], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "run"


def test_validation_loss_falls_and_accuracy_beats_kmer_frequency(pretrained):
    history = val_history(pretrained)
    assert [row["step"] for row in history] == [49, 99, 149, 199, 249, 299]
    first, last = history[0], history[-1]
    uniform = math.log(4101)
    assert last["val/loss"] < first["val/loss"] - 0.05
    assert last["val/loss"] < uniform - 0.15
    assert last["val/accuracy"] > 5 * last["val/kmer_frequency_baseline"]
    assert math.isclose(last["val/perplexity"], math.exp(last["val/loss"]), rel_tol=1e-4)
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert metrics["val/loss"] == pytest.approx(last["val/loss"])


def test_hf_directory_loads_in_plain_transformers_with_the_checkpoint_logits(pretrained):
    checkpoints = pretrained / "checkpoints"
    hf_model = BertForMaskedLM.from_pretrained(checkpoints / "best.hf").eval()
    assert (checkpoints / "best.hf" / "model.safetensors").exists()
    checkpoint = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=True)
    lightning_model = BertForMaskedLM(BertConfig(**checkpoint["bert_config"])).eval()
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    lightning_model.load_state_dict(state)
    tokenizer = DNAKmerTokenizer.from_pretrained(checkpoints / "best.hf")
    inputs = tokenizer(["ACGTTGCAAGGCTTAACGATCGATCGGCTA", "TTGACAATTAATCATCGGCTCGTATAATGTGTGG"],
                       padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = lightning_model(**inputs).logits
        actual = hf_model(**inputs).logits
    assert torch.allclose(actual, expected, atol=1e-5)
    assert hf_model.config.k == 6 and hf_model.config.vocab_size == 4101


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    genome = LAMBDA
    common = [*FAST, f"data.genome={genome}", "trainer.val_check_interval=5", "data.val_windows=32",
              "task.scheduler.decay_steps=20", "logger=csv"]
    straight = train([*common, "trainer.max_steps=20", f"paths.output_dir={tmp_path / 'a'}"], tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    for steps in (10, 20):
        resumed = train([*common, f"trainer.max_steps={steps}", f"paths.output_dir={tmp_path / 'b'}"], tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_file(tmp_path / "a" / "checkpoints" / "last.hf" / "model.safetensors")
    b = load_file(tmp_path / "b" / "checkpoints" / "last.hf" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)
    for run in ("a", "b"):  # last.ckpt is the latest state even when validation did not improve
        assert torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 20


@pytest.mark.parametrize("override,fragments", [
    ("data.genome={tmp}/missing.fa", ["missing.fa", "not found"]),
    ("model.k=0", ["k=0", "out of range"]),
    ("data.genome={tmp}/bad.fa", ["bad.fa line 2", "'!'"]),
    ("data.max_tokens=600", ["data.max_tokens=600", "max_position_embeddings=512"]),
])
def test_bad_configuration_is_one_clear_line(tmp_path, override, fragments):
    (tmp_path / "bad.fa").write_text(">x\nACGT!ACGT\n")
    output = tmp_path / "out"
    result = train_in_process([override.format(tmp=tmp_path), "trainer.max_steps=2", f"paths.output_dir={output}"],
                              tmp_path)
    assert_user_error(result, *fragments)
    assert not (output / "checkpoints").exists() and not (output / "metrics.json").exists()
