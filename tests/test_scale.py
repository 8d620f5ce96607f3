"""Scaling out: trainer presets, the global batch, CPU DDP against gradient accumulation, sweeps and launchers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import load_file
from transformers.models.bert.modeling_bert import BertLayer

from dnabert.config import composed as compose_config
from dnabert.config import register_resolvers
from tests.conftest import LAMBDA, ROOT, assert_user_error, data_file, run, train, train_in_process

register_resolvers()


def composed(overrides: list[str], hydra: bool = False):
    return compose_config(["paths.output_dir=out", "paths.cache_dir=cache", *overrides], return_hydra_config=hydra)


@pytest.mark.parametrize("choice,strategy", [("trainer=ddp", "ddp"), ("trainer=deepspeed", "deepspeed_stage_2"),
                                             ("trainer=fsdp", "lightning.pytorch.strategies.FSDPStrategy")])
def test_parallel_presets_compose_with_nodes_and_accumulation(choice, strategy):
    cfg = composed([choice, "global_batch_size=256", "trainer.num_nodes=2"])
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    chosen = trainer["strategy"]
    assert (chosen if isinstance(chosen, str) else chosen["_target_"]) == strategy
    assert trainer["accumulate_grad_batches"] == 256 // (16 * trainer["devices"] * 2)
    if choice == "trainer=fsdp":  # the strategy object itself (running it needs GPUs)
        fsdp = instantiate(cfg.trainer.strategy)
        assert fsdp.kwargs["auto_wrap_policy"]._module_classes == {BertLayer} and fsdp._state_dict_type == "full"


@pytest.mark.parametrize("choice,precision", [("trainer=bf16", "bf16-mixed"), ("trainer=fp16", "16-mixed")])
def test_precision_presets(choice, precision):
    assert composed([choice]).trainer.precision == precision


def test_a_global_batch_that_does_not_divide_is_refused_in_one_line(tmp_path):
    output = tmp_path / "run"  # data.batch_size 16 x 2 devices = 32 does not divide 100
    result = train_in_process(["trainer=ddp", "trainer.accelerator=cpu", "global_batch_size=100",
                               f"paths.output_dir={output}"], tmp_path)
    assert_user_error(result, "global_batch_size=100", "16 x 2 devices x 1 nodes = 32")
    assert not output.exists()


def test_paper_experiment_has_the_papers_schedule():
    cfg = OmegaConf.to_container(composed(["experiment=dnabert6_pretrain_paper", "data.genome=hg38"]), resolve=True)
    model, task, trainer, data = (cfg[key] for key in ("model", "task", "trainer", "data"))
    assert model["k"] == 6 and model["config"]["num_hidden_layers"] == 12 and model["config"]["hidden_size"] == 768
    assert task["optimizer"] | {"_target_": None} == {"_target_": None, "_partial_": True, "lr": 4e-4,
                                                     "betas": [0.9, 0.98], "eps": 1e-6, "weight_decay": 0.01}
    schedule = (task["scheduler"]["warmup"], task["scheduler"]["decay_steps"], trainer["max_steps"])
    assert schedule == (10000, 200000, 120000)
    assert task["masking"]["schedule"] == [[0, 0.15], [100000, 0.2]]
    per_step = data["batch_size"] * trainer["devices"] * trainer["accumulate_grad_batches"]
    assert per_step == 2000 == cfg["global_batch_size"]
    assert data["max_tokens"] == 512 and trainer["gradient_clip_val"] == 1.0
    assert data["batches_per_epoch"] == 500 * trainer["accumulate_grad_batches"]  # validation every 500 steps


def test_slurm_launcher_and_optuna_sweeper_compose():
    cfg = composed(["hydra/launcher=submitit_slurm", "hparams_search=optuna", "trainer=ddp", "trainer.devices=4",
                    "trainer.num_nodes=2", "hydra.launcher.partition=gpu"], hydra=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher") and launcher["partition"] == "gpu"
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert set(sweeper.params) == {"task.optimizer.lr", "data.batch_size", "task.scheduler.warmup",
                                   "task.hidden_dropout_prob"}
    assert "log" in sweeper.params["task.optimizer.lr"]
    assert (cfg.optimized_metric, sweeper.direction) == ("val/loss", "minimize")
    assert cfg.task._target_.endswith("SequenceClassifier")


@pytest.mark.parametrize("choices", [["trainer=fsdp", "hydra/launcher=submitit_slurm", "hparams_search=optuna"],
                                     ["experiment=dnabert6_pretrain_paper", "trainer=deepspeed"]])
def test_the_command_line_shows_the_composed_choices(choices, tmp_path):
    result = run([sys.executable, str(ROOT / "train.py"), *choices, "--cfg", "all"], tmp_path)
    assert result.returncode == 0 and "trainer:" in result.stdout, result.stderr[-2000:]


def test_two_process_ddp_matches_one_process_with_gradient_accumulation(tmp_path):
    genome = LAMBDA
    common = ["model=tiny", "model.config.hidden_dropout_prob=0", "data.max_tokens=64", "data.batch_size=4",
              "global_batch_size=8", f"data.genome={genome}", "trainer.accelerator=cpu", "trainer.max_steps=6",
              "trainer.val_check_interval=6", "data.val_windows=16", "task.optimizer.lr=2e-3", "logger=csv"]
    runs = {"ddp": ["trainer=ddp", "trainer.devices=2"], "accumulated": ["trainer.devices=1"]}
    for name, overrides in runs.items():
        result = train([*common, *overrides, f"paths.output_dir={tmp_path / name}"], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        config = json.loads((tmp_path / name / "provenance.json").read_text())["config"]
        assert config["trainer"]["accumulate_grad_batches"] == {"ddp": 1, "accumulated": 2}[name]
    assert torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    a, b = (load_file(tmp_path / name / "checkpoints" / "last.hf" / "model.safetensors") for name in runs)
    assert all(torch.allclose(a[key], b[key], atol=1e-5) for key in a)
    losses = [json.loads((tmp_path / name / "metrics.json").read_text())["val/loss"] for name in runs]
    assert losses[0] == pytest.approx(losses[1], abs=1e-4)


def test_multirun_of_two_learning_rates_writes_both_results(tmp_path):
    data = data_file("splice_primate_train.tsv")
    result = run([sys.executable, str(ROOT / "train.py"), "-m", "callbacks.progress_bar=null", "task=classify",
                  "model=tiny", "data.max_tokens=64", "trainer.max_epochs=1", "callbacks.schedule=null",
                  f"paths.cache_dir={tmp_path / 'cache'}",
                    "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2",
                    f"data.train={data}", f"data.test={data_file('splice_primate_test.tsv')}", "logger=csv",
                    "task.optimizer.lr=1e-4,1e-3", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for job, lr in ((0, 1e-4), (1, 1e-3)):
        job_dir = tmp_path / "sweep" / str(job)
        assert "test/accuracy" in json.loads((job_dir / "test_metrics.json").read_text())
        provenance = json.loads((job_dir / "provenance.json").read_text())
        assert provenance["config"]["task"]["optimizer"]["lr"] == lr
        assert set(provenance["data_sha256"]) == {"train", "test"} and len(provenance["git"]) == 2


def odd_splits(folder: Path) -> dict[str, Path]:
    """160 training, 99 validation and 101 test rows of the splice fixture: sizes no two ranks divide evenly."""
    header, *rows = data_file("splice_primate_train.tsv").read_text().splitlines()
    files = {}
    for split, part in (("train", rows[:160]), ("val", rows[160:259]), ("test", rows[259:360])):
        files[split] = folder / f"{split}.tsv"
        files[split].write_text("\n".join([header, *part]) + "\n")
    return files


def assert_scores_equal_one_process(run_dir: Path, files: dict[str, Path], cwd: Path) -> None:
    """A run's validation and test metrics equal `dnabert evaluate` of its best model on the same rows, to 1e-6."""
    for split in ("val", "test"):
        scores = json.loads((run_dir / f"{split}_metrics.json").read_text())
        evaluated = cwd / f"{split}_evaluated.json"
        one_process = run([sys.executable, "-m", "dnabert.cli", "evaluate", str(run_dir / "checkpoints" / "best.hf"),
                           "--input", str(files[split]), "--out", str(evaluated), "--quiet"], cwd)
        assert one_process.returncode == 0, one_process.stderr[-2000:]
        reference = {name.split("/", 1)[1]: value for name, value in json.loads(evaluated.read_text()).items()}
        assert {name.split("/", 1)[1] for name in scores} == set(reference)
        for name, value in scores.items():
            assert value == pytest.approx(reference[name.split("/", 1)[1]], abs=1e-6), (split, name)


def test_two_process_ddp_scores_every_validation_and_test_row_once(tmp_path):
    """Splits of odd size (99 validation, 101 test rows) under 2-rank DDP: the run's validation and test metrics equal
    `dnabert evaluate` of its best model on the same rows in one process (no padded repeats), and the checkpoint it
    chose is the one that one process, scoring every epoch's weights on the same rows, would choose."""
    files = odd_splits(tmp_path)
    out = tmp_path / "ddp"
    every_epoch = ("+callbacks.epochs={_target_:dnabert.callbacks.HFModelCheckpoint,"
                   "dirpath:'${paths.output_dir}/epochs',filename:'epoch{epoch}',save_top_k:-1,every_n_epochs:1,"
                   "auto_insert_metric_name:false}")
    result = train(["task=classify", "model=tiny", "data.max_tokens=64", "data.batch_size=16", "trainer.max_epochs=3",
                    "callbacks.schedule=null", "callbacks.early_stopping=null", "task.optimizer.lr=2e-3", "trainer=ddp",
                    "trainer.devices=2", "trainer.accelerator=cpu", "logger=csv", every_epoch,
                    *(f"data.{split}={path}" for split, path in files.items()), f"paths.output_dir={out}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    best = out / "checkpoints" / "best.hf"
    assert_scores_equal_one_process(out, files, tmp_path)
    accuracy = json.loads((out / "test_metrics.json").read_text())["test/accuracy"]
    assert round(accuracy * 101) == pytest.approx(accuracy * 101, abs=1e-4)  # a count of 101 rows, not of 102
    scores = {}
    for epoch in sorted((out / "epochs").glob("epoch*.hf")):
        scored = tmp_path / f"{epoch.stem}.json"
        evaluated = run([sys.executable, "-m", "dnabert.cli", "evaluate", str(epoch), "--input", str(files["val"]),
                         "--out", str(scored), "--quiet"], tmp_path)
        assert evaluated.returncode == 0, evaluated.stderr[-2000:]
        values = {name.split("/", 1)[1]: value for name, value in json.loads(scored.read_text()).items()}
        scores[epoch] = (values["auroc"], -values["loss"])  # the preset's choice: AUROC, ties by loss
    assert len(scores) == 3
    chosen = max(scores, key=scores.get)
    best_weights, chosen_weights = (load_file(d / "model.safetensors") for d in (best, chosen))
    assert all(torch.equal(best_weights[key], chosen_weights[key]) for key in best_weights)


def test_two_process_ddp_pretraining_validates_every_window_once(tmp_path):
    """17 validation windows under 2-rank DDP: the run's last validation (of its final weights) equals one process
    validating the same weights on the same windows, to 1e-6 (Lightning's own sampler would repeat one window)."""
    import lightning as L

    from dnabert.training import data_and_module

    out = tmp_path / "ddp"
    result = train(["model=tiny", "data.max_tokens=64", "data.batch_size=4", f"data.genome={LAMBDA}",
                    "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_steps=4",
                    "trainer.val_check_interval=4", "data.val_windows=17", "logger=csv",
                    f"paths.output_dir={out}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ran = json.loads((out / "metrics.json").read_text())
    register_resolvers()
    cfg = OmegaConf.load(out / "config.yaml")
    cfg.model.init = str(out / "checkpoints" / "last.hf")
    data, module = data_and_module(cfg)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    (one_process,) = trainer.validate(module, datamodule=data)
    assert set(one_process) <= set(ran)
    for name, value in one_process.items():
        assert ran[name] == pytest.approx(value, rel=1e-6, abs=1e-6), name  # perplexity: exp of the loss
