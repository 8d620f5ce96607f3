"""Models are loaded without running code from them: a pickle that would run a command is refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from tests.conftest import ROOT, assert_user_error, dnabert_cli, train


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """A tiny fine-tuned DNABERT-6 directory (safetensors) to poison copies of."""
    directory = tmp_path_factory.mktemp("safe") / "model.hf"
    config = BertConfig(vocab_size=4**6 + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, k=6, num_labels=2,
                        problem_type="single_label_classification")
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory


def poisoned(kind: str, classifier: Path, directory: Path, marker: Path) -> Path:
    """A Lightning checkpoint, or a model directory whose pytorch_model.bin, carrying the payload."""
    model = BertForSequenceClassification.from_pretrained(classifier)
    state = {**model.state_dict(), "payload": Payload(marker)}
    if kind == "ckpt":
        path = directory / "model.ckpt"
        torch.save({"bert_config": model.config.to_dict(), "state_dict": state}, path)
        return path
    path = directory / "model.hf"
    shutil.copytree(classifier, path)
    (path / "model.safetensors").unlink()
    torch.save(state, path / "pytorch_model.bin")
    return path


def test_the_payload_is_live(classifier, tmp_path):
    """Control: an unrestricted unpickler would run it."""
    marker = tmp_path / "ran"
    path = poisoned("ckpt", classifier, tmp_path, marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("kind,file", [("ckpt", "model.ckpt"), ("bin", "pytorch_model.bin")])
def test_poisoned_model_is_refused_without_running_it(classifier, tmp_path, kind, file):
    marker = tmp_path / "ran"
    model = poisoned(kind, classifier, tmp_path, marker)
    (tmp_path / "in.tsv").write_text("sequence\nACGTACGTAC\n")
    result = dnabert_cli(["predict", str(model), "--input", str(tmp_path / "in.tsv"), "--out",
                          str(tmp_path / "out.tsv"), "--quiet"], ROOT)
    assert_user_error(result, file, "refused", "could run code")
    assert not marker.exists() and not (tmp_path / "out.tsv").exists()


def test_poisoned_checkpoint_is_not_resumed(classifier, tmp_path):
    """`train.py` resumes from `checkpoints/last.ckpt` of its output directory: a poisoned one is refused."""
    marker = tmp_path / "ran"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    poisoned("ckpt", classifier, tmp_path, marker).rename(tmp_path / "run" / "checkpoints" / "last.ckpt")
    result = train(["model=tiny", "trainer.max_steps=2", f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert_user_error(result, "last.ckpt", "refused", "could run code")
    assert not marker.exists()


def test_no_remote_code_is_ever_trusted():
    sources = "\n".join(path.read_text() for path in (ROOT / "dnabert").rglob("*.py"))
    assert "trust_remote_code=True" not in sources
    assert "weights_only=False" not in sources
