"""Every config choice composes and instantiates; loggers (csv, wandb offline, tensorboard) really log."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dnabert.benchmarks import suite_tasks
from dnabert.config import CONF_DIR, register_resolvers
from dnabert.config import composed as compose_config
from dnabert.training import data_and_module
from tests.conftest import LAMBDA, ROOT, data_file, train

register_resolvers()
CONF = CONF_DIR
GROUPS = {group: sorted(p.stem for p in (CONF / group).glob("*.yaml"))
          for group in ("model", "task", "task/masking", "data", "trainer", "logger", "callbacks", "experiment",
                        "finetune", "hparams_search", "debug", "benchmark")}
DATA = ROOT / "tests" / "data"


def composed(overrides: list[str]):
    return compose_config(["paths.output_dir=out", "paths.cache_dir=cache", *overrides])


def test_every_config_file_is_a_choice_here():
    """A new config group or file cannot escape the composition test below."""
    files = {str(p.relative_to(CONF).with_suffix("")) for p in CONF.rglob("*.yaml")}
    covered = {f"{group}/{choice}" for group, choices in GROUPS.items() for choice in choices}
    other = {f for f in files if f == "train" or f.startswith(("paths/", "hydra/"))}
    assert files - other == covered


@pytest.mark.parametrize("group,choice", [(g, c) for g, choices in GROUPS.items() for c in choices])
def test_every_choice_composes(group, choice):
    overrides = [f"{group}={choice}"]
    if group == "finetune":
        overrides.insert(0, "task=classify")
    if group == "benchmark":  # the suite's first task (every task of every suite: test_benchmarks)
        overrides.append(f"benchmark.task={suite_tasks(choice)[0]}")
    cfg = composed(overrides)
    if cfg.data._target_.endswith("PlantedDataModule"):
        cfg.data.genome, cfg.data.jaspar, cfg.data.motifs = "genome.fa", "motifs.meme", ["MA0139.2"]
    elif cfg.data._target_.endswith("LabelledDataModule"):
        cfg.data.train = "train.tsv"
        if OmegaConf.is_missing(cfg.data, "label_columns"):
            cfg.data.label_columns = ["tf1", "tf2"]
    elif OmegaConf.is_missing(cfg.data, "genome"):
        cfg.data.genome = "genome.fa"
    if "linear_probe" in cfg.callbacks and OmegaConf.is_missing(cfg.callbacks.linear_probe, "train"):
        cfg.callbacks.linear_probe.train = "labelled.tsv"
    if "motif_recovery" in cfg.callbacks:  # the planted set's matrices (data=planted names them)
        cfg.callbacks.motif_recovery.jaspar, cfg.callbacks.motif_recovery.motifs = "motifs.meme", ["MA0139.2"]
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved["task"]["_target_"].startswith("dnabert.models.")
    assert resolved["trainer"]["_target_"] == "lightning.Trainer"


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_paper_models_match_the_original_configs(k):

    original = json.loads(data_file("dnabert_original_configs.json").read_text())[str(k)]["config"]
    config = instantiate(composed([f"model=dnabert{k}"]).model.config)
    for key, value in original.items():
        if key != "architectures":
            assert getattr(config, key) == value, key
    assert config.k == k


def test_csv_wandb_and_tensorboard_loggers_write_offline(tmp_path):
    genome = LAMBDA
    result = train([f"data.genome={genome}", "logger=[csv,wandb,tensorboard]", "trainer.max_steps=4",
                    "trainer.val_check_interval=2", "data.val_windows=16", "data.max_tokens=64",
                    f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = Path(tmp_path / "run")
    assert (run / "csv" / "version_0" / "metrics.csv").read_text().count("val/loss") >= 1
    assert list(run.glob("wandb/offline-run-*/run-*.wandb"))
    assert list(run.glob("tensorboard/version_0/events.out.tfevents.*"))


def test_fine_tuning_dropout_follows_the_model_config():
    """`model.config.hidden_dropout_prob` reaches a fine-tuned model (it once was silently reset to 0.1)."""
    train = f"data.train={DATA / 'promoter_dm3_600.tsv'}"
    _, module = data_and_module(composed(["task=splice", "model=tiny", "model.config.hidden_dropout_prob=0.3", train]))
    assert module.config.hidden_dropout_prob == 0.3
    assert composed(["task=splice"]).task.hidden_dropout_prob == 0.1
    _, tuned = data_and_module(composed(["task=splice", "model=tiny", "task.hidden_dropout_prob=0.2", train]))
    assert tuned.config.hidden_dropout_prob == 0.2


@pytest.mark.parametrize("experiment", GROUPS["experiment"])
def test_every_experiment_runs_one_batch_of_each_split(experiment, tmp_path):
    """`debug=fast_dev_run` on every experiment preset (its model, masking, schedule, callbacks) on real sequence,
    on this machine's one CPU device instead of the preset's GPUs."""
    overrides = [f"experiment={experiment}", "debug=fast_dev_run", f"data.genome={DATA / 'hg19_chr22_300kb.fa.gz'}",
                 "data.batch_size=2", "data.max_tokens=64", "data.val_windows=4",
                 f"paths.output_dir={tmp_path / 'run'}", "trainer.accelerator=cpu", "trainer.devices=1",
                 "++trainer.strategy=auto"]
    if "linear_probe" in composed([f"experiment={experiment}"]).get("callbacks", {}):
        overrides.append(f"callbacks.linear_probe.train={DATA / 'promoter_dm3_600.tsv'}")
    result = train(overrides, tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 < metrics["train/loss"] < 20 and "val/loss" in metrics
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("debug,task", [("limit", "pretrain"), ("overfit", "pretrain"), ("limit", "prom300"),
                                        ("overfit", "prom300")])
def test_debug_runs_train_for_real(debug, task, tmp_path):
    """debug=limit takes its 20 steps and validates; debug=overfit drives the loss on its two batches down; both
    whatever the task's own schedule (fine-tuning counts epochs)."""
    data = ([f"data.genome={DATA / 'hg19_chr22_300kb.fa.gz'}", "data.max_tokens=64", "data.val_windows=8"]
            if task == "pretrain" else [f"data.train={DATA / 'promoter_dm3_600.tsv'}"])
    result = train([f"task={task}", f"debug={debug}", *data, "data.batch_size=8",
                    f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "run" / "csv" / "version_0" / "metrics.csv")))
    losses = [float(row["train/loss"]) for row in rows if row.get("train/loss")]
    assert max(int(row["step"]) for row in rows) == (19 if debug == "limit" else 199)
    assert sum(bool(row.get("val/loss")) for row in rows) == 2
    if debug == "overfit":
        assert losses[-1] < losses[0] - (1.5 if task == "pretrain" else 0.3)
