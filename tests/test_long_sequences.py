"""DNABERT-XL: 5 kb sequences as chunks, aggregated; end to end through train.py and predict."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from dnabert.models.long_sequence import AGGREGATIONS, BertForLongSequenceClassification, DNABertLongConfig
from dnabert.tokenization import batch_kmer_ids
from tests.conftest import ROOT, assert_user_error, data_file, dnabert_cli, genome_text, train, train_in_process


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_each_sequence_is_aggregated_from_its_own_chunks_only(aggregation):
    torch.manual_seed(0)
    config = DNABertLongConfig(chunk_aggregation=aggregation, max_chunks=4, vocab_size=4**3 + 5, hidden_size=32,
                               num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=3)
    model = BertForLongSequenceClassification(config).eval()
    rng = np.random.default_rng(0)
    long, short = ("".join(rng.choice(list("ACGT"), n)) for n in (700, 90))
    together = batch_kmer_ids([long, short], 3, max_tokens=100, overflow="split")
    alone = batch_kmer_ids([short], 3, max_tokens=100, overflow="split")
    assert together.sequence_index.tolist() == [0] * 8 + [1]  # 698 3-mers in chunks of 98

    def logits(encoded):
        return model(input_ids=torch.from_numpy(encoded.input_ids), attention_mask=torch.from_numpy(
            encoded.attention_mask), chunk_owner=torch.from_numpy(encoded.sequence_index)).logits

    with torch.no_grad():
        both, single = logits(together), logits(alone)
    assert both.shape == (2, 3)
    assert torch.allclose(both[1], single[0], atol=1e-5)


@pytest.fixture(scope="module")
def five_kb_sets(tmp_path_factory):
    """5 kb windows of E. coli (label ecoli) and S. aureus (label saureus) from the first 300 and 200 kb of each
    genome: train 24 + 24, test 10 + 10."""
    rng = np.random.default_rng(0)
    windows = {}
    for label, name in (("ecoli", "ecoli_k12_300kb.fa.gz"), ("saureus", "staph_aureus_200kb.fa.gz")):
        genome = genome_text(data_file(name))
        windows[label] = [genome[s : s + 5000] for s in rng.integers(0, len(genome) - 5000, 34)]
    directory = tmp_path_factory.mktemp("long")
    for split, part in (("train", slice(0, 24)), ("test", slice(24, 34))):
        rows = [f"{w}\t{label}" for label, ws in windows.items() for w in ws[part]]
        (directory / f"{split}.tsv").write_text("sequence\tlabel\n" + "\n".join(rows) + "\n")
    return directory


def test_five_kb_classification_end_to_end(five_kb_sets, tmp_path):
    result = train(["task=classify", "model=tiny", "task.chunk_aggregation=mean", "data.overflow=split",
                    "data.batch_size=4", "task.optimizer.lr=2e-3", "trainer.max_epochs=5", "callbacks.schedule=null",
                    f"data.train={five_kb_sets}/train.tsv", f"data.test={five_kb_sets}/test.tsv",
                    f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert metrics["test/accuracy"] >= 0.8, metrics
    config = json.loads((tmp_path / "run" / "checkpoints" / "best.hf" / "config.json").read_text())
    assert config["model_type"] == "dnabert-long" and config["chunk_aggregation"] == "mean"
    out = tmp_path / "predictions.tsv"
    predicted = dnabert_cli(["predict", str(tmp_path / "run" / "checkpoints" / "best.hf"), "--input",
                             str(five_kb_sets / "test.tsv"), "--out", str(out), "--quiet"], ROOT)
    assert predicted.returncode == 0, predicted.stderr
    rows = list(csv.DictReader(open(out), delimiter="\t"))
    truth = [row["label"] for row in csv.DictReader(open(five_kb_sets / "test.tsv"), delimiter="\t")]
    assert len(rows) == 20
    assert np.mean([r["prediction"] == t for r, t in zip(rows, truth)]) == pytest.approx(metrics["test/accuracy"])


def test_split_without_aggregation_is_a_clear_error(five_kb_sets, tmp_path):
    result = train_in_process(["task=classify", "model=tiny", "data.overflow=split",
                               f"data.train={five_kb_sets}/train.tsv", f"paths.output_dir={tmp_path / 'run'}"],
                              tmp_path)
    assert_user_error(result, "data.overflow=split", "task.chunk_aggregation")
