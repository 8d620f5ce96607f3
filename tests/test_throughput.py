"""Throughput while training: the modules' FLOPs per batch against Lightning's `measure_flops`, and tokens/s, FLOP/s
and MFU in the log of real pretraining and fine-tuning runs (Lightning's ThroughputMonitor, `dnabert.callbacks`)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from lightning.fabric.utilities.throughput import measure_flops
from safetensors.torch import load_file
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from dnabert.models.module import DnabertModule
from tests.conftest import LAMBDA, data_file, train

CONFIG = dict(vocab_size=4101, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
              max_position_embeddings=512, num_labels=3, attn_implementation="eager")


@pytest.mark.parametrize("model_class", [BertForMaskedLM, BertForSequenceClassification])
@pytest.mark.parametrize("training", [True, False])
def test_the_flops_a_module_counts_agree_with_lightning_s_measurement(model_class, training):
    """The formula (matmuls of encoder, attention and head) within 5 % of torch's FLOP counter, forward alone in
    evaluation and with the backward pass in training; on rows of unequal length it counts real tokens only."""
    config = BertConfig(**CONFIG)
    module = DnabertModule(optimizer=None)
    module.model, module.config = model_class(config), config
    ids = torch.randint(5, 4000, (4, 100))
    mask = torch.ones(4, 100, dtype=torch.long)
    heads = ids.numel() if model_class is BertForMaskedLM else len(ids)
    module.train(training)
    module.count_flops(mask, heads)

    def forward() -> torch.Tensor:
        return module.model(input_ids=ids, attention_mask=mask).logits

    measured = measure_flops(module.model, forward, loss_fn=(lambda y: y.sum()) if training else None)
    assert module.flops_per_batch == pytest.approx(measured, rel=0.05)
    full = module.flops_per_batch
    module.count_flops(torch.cat([mask[:2], torch.zeros_like(mask[2:])]), heads // 2)
    assert module.flops_per_batch == pytest.approx(full / 2)


def logged(run: Path, key: str) -> dict[int, float]:
    """Every value of `key` in a run's CSV log, by step."""
    rows = csv.DictReader(next(run.glob("csv/version_*/metrics.csv")).read_text().splitlines())
    return {int(row["step"]): float(row[key]) for row in rows if row.get(key)}


@pytest.mark.parametrize("kind", ["pretraining", "fine-tuning"])
def test_a_run_logs_real_tokens_per_second_and_mfu_at_every_logging_step(tmp_path, kind):
    """Real tokens (no padding: windows of random length are padded in a batch), samples, FLOP/s and MFU at every
    logging step from the first full window; on a CPU the MFU's peak is a measured matmul, logged and said."""
    task = (["data.genome=" + str(LAMBDA), "data.batch_size=8"] if kind == "pretraining" else
            ["task=classify", f"data.train={data_file('oct4_mafk_train_400.tsv')}", "callbacks.schedule=null",
             "data.batch_size=8"])
    result = train(["model=tiny", "logger=csv", "trainer.max_steps=24", "trainer.log_every_n_steps=4",
                    "trainer.val_check_interval=12", "trainer.max_epochs=-1", *task,
                    f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MFU is against a torch.float32 matmul measured here" in result.stdout + result.stderr
    run = tmp_path / "run"
    (peak,) = logged(run, "device/peak_flops").values()
    tokens, samples = logged(run, "train/device/items_per_sec"), logged(run, "train/device/samples_per_sec")
    flops, mfu = logged(run, "train/device/flops_per_sec"), logged(run, "train/device/mfu")
    assert sorted(tokens) == sorted(mfu) == [3, 7, 11, 15, 19, 23]  # every logging step (window: 4 batches)
    for step in tokens:
        assert mfu[step] == pytest.approx(flops[step] / peak) and 0 < mfu[step] < 1
        tokens_per_row = tokens[step] / samples[step]
        assert 3 <= tokens_per_row <= 512
    lengths, seen = logged(run, "train/lengths"), logged(run, "train/samples")
    last = max(lengths)
    if kind == "pretraining":  # DNABERT's windows: half at random lengths, so a batch pads most rows
        assert lengths[last] / seen[last] < 512 - 10
    else:  # watching changes nothing: the same run without the monitor ends with the same weights
        unwatched = train(["model=tiny", "logger=csv", "trainer.max_steps=24", "trainer.log_every_n_steps=4",
                           "trainer.val_check_interval=12", "trainer.max_epochs=-1", *task, "callbacks.throughput=null",
                           f"paths.output_dir={tmp_path / 'unwatched'}"], tmp_path)
        assert unwatched.returncode == 0, unwatched.stderr[-3000:]
        a, b = (load_file(d / "checkpoints" / "last.hf" / "model.safetensors") for d in (run, tmp_path / "unwatched"))
        assert all(torch.equal(a[key], b[key]) for key in a)
