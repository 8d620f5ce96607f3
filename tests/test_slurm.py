"""A real one-node SLURM cluster (tests/slurm_cluster.py): Hydra's submitit launcher submits sweeps to it, a job
pre-empted by SLURM's requeue signal saves its step, is requeued by submitit and ends as an uninterrupted run, Optuna
runs trials through it, a study runs as one job per run and reports as on the basic launcher, and an option sbatch
rejects is one `dnabert:` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from tests.conftest import ROOT, STEPS_PER_EPOCH, assert_same_result, assert_user_error, data_file, run
from tests.slurm_cluster import SlurmCluster
from tests.test_resume import hook

LAUNCHER = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.gpus_per_node=null", "hydra.launcher.timeout_min=10", "trainer.accelerator=cpu"]
"""The launcher as a CPU-only cluster needs it: no GPUs to ask for, one core per job."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """slurmctld and slurmd on this machine, for the tests of this module."""
    cluster = SlurmCluster.start(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()


def multirun(overrides: list[str], cwd, cluster: SlurmCluster) -> subprocess.CompletedProcess:
    """`python train.py -m` through the SLURM launcher, with the cluster's client config in the environment;
    requeued jobs start again at once."""
    env = {**cluster.env, "PYTHONPATH": str(ROOT)}  # the jobs import the test hooks
    return run([sys.executable, str(ROOT / "train.py"), "-m", "callbacks.progress_bar=null", *LAUNCHER,
                f"paths.cache_dir={cwd / 'cache'}", *overrides], cwd, env=env, poll=cluster.release_requeued)


def splice_run(limit: int = 3) -> list[str]:
    """A tiny fine-tuning run on the splice fixture, a few batches of each split."""
    return ["task=classify", "model=tiny", "data.max_tokens=64", "trainer.max_epochs=1", "callbacks.schedule=null",
            f"+trainer.limit_train_batches={limit}", "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2",
            f"data.train={data_file('splice_primate_train.tsv')}", f"data.test={data_file('splice_primate_test.tsv')}",
            "logger=csv"]


def test_a_two_run_sweep_runs_as_slurm_jobs_and_leaves_its_outputs_in_the_sweep_folder(cluster, tmp_path):
    sweep = tmp_path / "sweep"
    result = multirun([*splice_run(), "task.optimizer.lr=1e-4,1e-3", f"hydra.sweep.dir={sweep}"], tmp_path, cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Bypassing sacct error" not in result.stdout + result.stderr  # no accounting here: filtered
    for job, lr in ((0, 1e-4), (1, 1e-3)):
        assert "test/accuracy" in json.loads((sweep / str(job) / "test_metrics.json").read_text())
        provenance = json.loads((sweep / str(job) / "provenance.json").read_text())
        assert provenance["config"]["task"]["optimizer"]["lr"] == lr
        assert (sweep / str(job) / "checkpoints" / "best.hf" / "model.safetensors").exists()
    assert len(sorted((sweep / ".submitit").glob("*/*_log.out"))) == 2  # each job's own log, where submitit keeps it
    assert len(cluster.jobs()) >= 2  # the controller ran them


class RequeueSignalAt(Callback):
    """Test hook: a job that started fresh asks SLURM (`scancel --signal=USR2`, what SLURM sends before the time
    limit) to signal it after optimizer step `step`, and waits there until the signal has arrived."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *_) -> None:
        if trainer.ckpt_path is None and trainer.global_step == self.step:
            subprocess.run(["scancel", "--signal=USR2", os.environ["SLURM_JOB_ID"]], check=True)
            deadline = time.monotonic() + 60
            while not trainer.received_sigterm and time.monotonic() < deadline:
                time.sleep(0.1)


def test_a_job_signalled_before_its_time_limit_is_requeued_and_ends_as_an_uninterrupted_run(
        cluster, tmp_path, splice_files, straight):
    stopped_at = STEPS_PER_EPOCH + 5
    signal_hook = [item.replace("tests.test_resume.", "tests.test_slurm.")
                   for item in hook("requeue", RequeueSignalAt, step=stopped_at)]
    sweep = tmp_path / "sweep"
    overrides = ["task=classify", "model=tiny", "data.max_tokens=64", "data.batch_size=16", "trainer.max_epochs=2",
                 "callbacks.schedule=null", "task.optimizer.lr=1e-3", "logger=csv",
                 f"data.train={splice_files / 'train.tsv'}", f"data.test={splice_files / 'test.tsv'}",
                 f"hydra.sweep.dir={sweep}", "hydra.launcher.cpus_per_task=2", *signal_hook]
    result = multirun(overrides, tmp_path, cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    (log,) = (sweep / ".submitit").glob("*/*_log.err")
    text = log.read_text()
    assert f"dnabert: stopped by SIGTERM at step {stopped_at}" in text and "SIGUSR2 from SLURM" in text, text[-3000:]
    assert "Requeued" in (sweep / ".submitit").joinpath(log.parent.name, log.name.replace(".err", ".out")).read_text()
    (job_id,) = {path.name.split("_")[0] for path in (sweep / ".submitit").iterdir() if path.is_dir()}
    assert "Restarts=1" in cluster.run("scontrol", "show", "job", job_id).stdout
    last = torch.load(sweep / "0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2 * STEPS_PER_EPOCH
    assert_same_result(sweep / "0", straight)


def test_optuna_runs_two_trials_as_slurm_jobs(cluster, tmp_path):
    sweep = tmp_path / "sweep"
    result = multirun([*splice_run(), "hparams_search=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                       f"hydra.sweep.dir={sweep}"], tmp_path, cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Best parameters" in result.stdout + result.stderr
    trials = [json.loads((sweep / str(job) / "metrics.json").read_text()) for job in (0, 1)]
    assert all("val/loss" in trial for trial in trials)
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_value" in best


def test_an_option_sbatch_rejects_is_one_line(cluster, tmp_path):
    result = multirun([*splice_run(), "hydra.launcher.partition=no_such_partition",
                       f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, cluster)
    assert_user_error(result, "sbatch", "invalid partition", "hydra.launcher.partition")
    assert not (tmp_path / "sweep" / "0").exists()


def test_a_study_runs_as_slurm_jobs_reports_as_the_basic_launcher_and_reruns_nothing(cluster, tmp_path):
    from tests.test_study import assert_same_report, sweep, write_study

    header, *rows = data_file("promoter_dm3_600.tsv").read_text().splitlines()
    splits = {}
    for split, part in (("train", rows[:480]), ("test", rows[480:])):
        splits[split] = str(tmp_path / f"{split}.tsv")
        (tmp_path / f"{split}.tsv").write_text("\n".join([header, *part]) + "\n")
    basic, slurm = write_study(tmp_path / "basic", splits), write_study(tmp_path / "slurm", splits)
    assert sweep(basic).returncode == 0
    env = {**cluster.env, "PYTHONPATH": str(ROOT)}
    submitted = sweep(slurm, *LAUNCHER, env=env, poll=cluster.release_requeued)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    assert len(sorted((slurm / "results" / ".submitit").glob("*/*_log.out"))) == 4  # one SLURM job per run
    for folder in (basic, slurm):
        report = run([sys.executable, "-m", "dnabert.cli", "study", str(folder)], tmp_path)
        assert report.returncode == 0, report.stderr[-2000:]
    assert_same_report(basic, slurm)
    jobs = set(cluster.jobs())
    again = sweep(slurm, *LAUNCHER, env=env, poll=cluster.release_requeued)
    assert again.returncode == 0 and "4 finished as declared (reused), 0 to run" in again.stdout
    assert set(cluster.jobs()) <= jobs  # no job submitted
