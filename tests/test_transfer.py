"""Transfer measured by the framework: the linear probe, label fractions, the probe during pretraining, and
fine-tuning defaults that follow the data size."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file
from transformers import BertForMaskedLM

from dnabert.callbacks import HFModelCheckpoint
from dnabert.data.finetuning import LabelledDataModule
from dnabert.models.checkpoints import save_hf_directory
from dnabert.models.inference import load_classifier, predict
from dnabert.models.linear_probe import BertForProbeClassification
from tests.conftest import ROOT, assert_user_error, train, train_in_process
from tests.test_peft import composed

DATA = ROOT / "tests" / "data"
PROMOTERS = DATA / "promoter_dm3_600.tsv"
HUMAN = DATA / "hg19_chr22_300kb.fa.gz"


def rows(path) -> list[dict]:
    return list(csv.DictReader(open(path), delimiter="\t"))


@pytest.fixture(scope="module")
def promoters(tmp_path_factory):
    """The 600 fly promoter fixture rows as 480 training and 120 test rows (both classes alike)."""
    folder = tmp_path_factory.mktemp("promoters")
    lines = PROMOTERS.read_text().splitlines()
    (folder / "train.tsv").write_text("\n".join([lines[0], *lines[1:481]]) + "\n")
    (folder / "test.tsv").write_text("\n".join([lines[0], *lines[481:]]) + "\n")
    return folder


def metric_rows(run) -> list[dict]:
    return list(csv.DictReader(open(run / "csv" / "version_0" / "metrics.csv")))


def test_frozen_probe_is_a_logistic_regression_on_the_frozen_encoder(tmp_path, promoters):
    """A random tiny 3-mer encoder's mean-pooled embeddings and last layer (3-mer content, seen through random
    weights) separate fly promoters from distal sequence better than chance; the encoder is untouched and best.hf
    predicts what the test split scored."""
    init = tmp_path / "init"
    save_hf_directory(BertForMaskedLM(instantiate(composed(["model.k=3"]).model.config)), init)
    result = train(["task=prom300", f"model.init={init}", "finetune=frozen_probe", "finetune.layers=[0,-1]",
                    f"data.train={promoters / 'train.tsv'}", f"data.test={promoters / 'test.tsv'}", "logger=csv",
                    f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    tested = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    validated = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert tested["test/auroc"] > 0.65 and validated["val/auroc"] > 0.65
    assert validated["probe/penalty"] in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)

    start = load_file(init / "model.safetensors")
    probe = load_file(tmp_path / "run" / "checkpoints" / "best.hf" / "model.safetensors")
    encoder = {key for key in start if key.startswith("bert.") and "pooler" not in key}
    assert encoder and all(torch.equal(probe[key], start[key]) for key in encoder)
    assert probe["classifier.weight"].shape == (2, 2 * 64) and probe["feature_scale"].min() > 0

    model = load_classifier(tmp_path / "run" / "checkpoints" / "best.hf")
    assert isinstance(model, BertForProbeClassification) and model.config.probe_layers == [0, -1]
    test = rows(promoters / "test.tsv")
    probabilities = predict(model, [row["sequence"] for row in test], progress=False)
    accuracy = np.mean(probabilities.argmax(1) == np.array([int(row["label"]) for row in test]))
    assert accuracy == pytest.approx(tested["test/accuracy"], abs=1e-6)


def test_train_fraction_subsets_are_nested_and_stratified():
    kept = {}
    for fraction in (0.05, 0.2, 0.5, 1.0):
        data = LabelledDataModule(str(PROMOTERS), train_fraction=fraction, seed=7)
        data.setup()
        splits = [data.splits["train"], data.splits["val"]]
        kept[fraction] = {name for split in splits for name in split.names}
        labels = np.concatenate([split.labels.ravel() for split in splits])
        assert np.bincount(labels).tolist() == [round(300 * fraction)] * 2  # 300 rows per class in the file
    assert kept[0.05] < kept[0.2] < kept[0.5] < kept[1.0] and len(kept[1.0]) == 600
    other = LabelledDataModule(str(PROMOTERS), train_fraction=0.05, seed=8)
    other.setup()
    assert {n for s in (other.splits["train"], other.splits["val"]) for n in s.names} != kept[0.05]


def test_probe_callback_logs_transfer_during_pretraining(tmp_path):
    """40 steps of RandomMask pretraining on human sequence with a probe of fly promoters every 20 steps: the probe
    scores at steps 0, 20 and 40, and validation reports the hidden-nucleotide accuracy and its local baseline."""
    result = train(["model=tiny", "data.max_tokens=128", "data.batch_size=16", f"data.genome={HUMAN}",
                    "task/masking=random_mask", "task.masking.max_hidden=[[0,1],[20,3]]", "trainer.max_steps=40",
                    "trainer.val_check_interval=20", "data.val_windows=32", "callbacks=probe",
                    f"callbacks.linear_probe.train={PROMOTERS}", "callbacks.linear_probe.every_n_steps=20",
                    "callbacks.linear_probe.max_rows=200", "logger=csv", "trainer.log_every_n_steps=5",
                    f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    history = metric_rows(tmp_path / "run")
    probes = {int(row["step"]): float(row["probe/auroc"]) for row in history if row.get("probe/auroc")}
    assert sorted(probes) == [0, 20, 40] and all(0 <= value <= 1 for value in probes.values())
    assert all(row["probe/accuracy"] for row in history if row.get("probe/auroc"))
    validation = [row for row in history if row.get("val/hidden_accuracy")]
    assert len(validation) == 2
    for row in validation:
        assert 0 < float(row["val/hidden_accuracy"]) < 1 and 0.25 < float(row["val/local_baseline"]) < 1
        assert float(row["val/local_baseline_order"]) in (2, 3, 4) and 0 < float(row["val/hidden_fraction"]) < 0.2
    widths = {int(row["step"]): float(row["train/hidden_per_span"])
              for row in history if row.get("train/hidden_per_span")}
    assert {value for step, value in widths.items() if step < 20} == {1.0}
    assert {value for step, value in widths.items() if step >= 20} == {2.0}


def test_small_sets_train_at_least_min_steps(tmp_path):
    """120 rows (108 for training, 4 steps an epoch) with min_steps 40: 10 epochs, validation every 3 epochs, and
    early stopping (patience 1) waits for the 40 steps."""
    result = train(["task=prom300", "model=tiny", f"data.train={PROMOTERS}", "data.train_fraction=0.2",
                    "callbacks.schedule.min_steps=40", "callbacks.schedule.val_every_steps=12",
                    "callbacks.early_stopping.patience=1", "logger=csv", f"paths.output_dir={tmp_path / 'run'}"],
                   tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] >= 40
    checks = [int(row["epoch"]) for row in metric_rows(tmp_path / "run") if row.get("val/auroc")]
    assert checks[:3] == [2, 5, 8]


def test_a_run_that_predicts_one_class_says_so(tmp_path):
    """Three steps on 20 training rows of one class and one row of the other: every validation row gets one class."""
    lines = PROMOTERS.read_text().splitlines()
    negatives = [line for line in lines[1:] if line.endswith("\t0")][:40]
    positives = [line for line in lines[1:] if line.endswith("\t1")][:2]
    (tmp_path / "skewed.tsv").write_text("\n".join([lines[0], *negatives, *positives]) + "\n")
    result = train(["task=prom300", "model=tiny", f"data.train={tmp_path / 'skewed.tsv'}", "data.val_fraction=0.5",
                    "callbacks.schedule=null", "trainer.max_epochs=3", "task.optimizer.lr=1e-2", "data.batch_size=8",
                    f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("dnabert: warning:")]
    assert len(warnings) == 1 and "was predicted as class '0'" in warnings[0] and "model.init" in warnings[0]


def test_ties_on_the_monitored_metric_go_to_the_lower_tie_break():
    checkpoint = HFModelCheckpoint(monitor="val/auroc", mode="max", tie_break="val/loss")
    strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, **_: decision)
    decisions = []
    for auroc, loss in ((0.8, 0.9), (0.8, 0.7), (0.8, 0.75), (0.7, 0.1), (0.9, 2.0)):
        trainer = SimpleNamespace(strategy=strategy, callback_metrics={"val/loss": torch.tensor(loss)})
        decision = checkpoint.check_monitor_top_k(trainer, torch.tensor(auroc))
        decisions.append(decision)
        if decision:
            checkpoint.best_k_models = {"best.ckpt": torch.tensor(auroc)}
            checkpoint.kth_best_model_path = "best.ckpt"
    assert decisions == [True, True, False, False, True]


GENOME = f"data.genome={HUMAN}"


@pytest.mark.parametrize("overrides,fragment", [
    ([GENOME, "task/masking=widest"], "Could not find 'task/masking/widest'; choose from dnabert, random_mask, span"),
    ([GENOME, "task/masking=span", "task.masking.span_length=4"], "task.masking.span_length=4 is shorter than k=6"),
    (["task=prom300", f"data.train={PROMOTERS}", "data.train_fraction=0"], "data.train_fraction=0"),
    (["task=prom300", f"data.train={PROMOTERS}", "data.train_fraction=1.5"], "data.train_fraction=1.5"),
    ([GENOME, "callbacks=probe"], "callbacks.linear_probe.train: no value given"),
    ([GENOME, "callbacks=probe", "callbacks.linear_probe.train=absent.tsv"],
     "callbacks.linear_probe.train=absent.tsv: file not found"),
])
def test_bad_transfer_settings_are_one_line_and_write_nothing(tmp_path, overrides, fragment):
    result = train_in_process(["model=tiny", "trainer.max_steps=2", *overrides,
                               f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert_user_error(result, fragment)
    assert result.returncode == 2 and not (tmp_path / "run").exists()


def test_a_frozen_encoder_start_trains_the_head_first_then_everything(tmp_path, promoters):
    """`callbacks.frozen_encoder.steps=3`: after 3 steps only the head has moved from the pretrained start; after 6
    the encoder has too."""
    init = tmp_path / "init"
    save_hf_directory(BertForMaskedLM(instantiate(composed(["model.k=3"]).model.config)), init)
    snapshots = ("+callbacks.snapshots={_target_:dnabert.callbacks.HFModelCheckpoint,dirpath:'${paths.output_dir}/"
                 "snapshots',filename:'step{step}',every_n_train_steps:3,save_top_k:-1,auto_insert_metric_name:false}")
    result = train(["task=prom300", f"model.init={init}", "callbacks.frozen_encoder.steps=3", "trainer.max_epochs=1",
                    "+trainer.limit_train_batches=6", "callbacks.schedule=null", "task.optimizer.lr=1e-3",
                    "data.batch_size=16", snapshots, f"data.train={promoters / 'train.tsv'}",
                    f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    start = load_file(init / "model.safetensors")
    encoder = [key for key in start if key.startswith("bert.") and "pooler" not in key]
    step3, step6 = (load_file(tmp_path / "run" / "snapshots" / f"step{n}.hf" / "model.safetensors") for n in (3, 6))
    assert encoder and all(torch.equal(step3[key], start[key]) for key in encoder)
    assert not torch.equal(step3["classifier.weight"], step6["classifier.weight"])
    assert sum(not torch.equal(step6[key], start[key]) for key in encoder) > len(encoder) // 2
