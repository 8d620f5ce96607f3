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
from unittest import mock

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from tests.conftest import LAMBDA, ROOT, STEPS_PER_EPOCH, assert_same_result, assert_user_error, data_file, run, train
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
    limit) to signal it after optimizer step `step`, and waits there (every rank) until the signal has arrived."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *_) -> None:
        if trainer.ckpt_path is None and trainer.global_step == self.step:
            if trainer.global_rank == 0:  # SLURM signals every task of the job
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


@pytest.mark.parametrize("overrides,fragments", [
    (["trainer=ddp", "trainer.devices=3", "global_batch_size=64", "data.batch_size=8"],
     ("global_batch_size=64", "8 x 3 devices x 1 nodes = 24")),
    (["trainer=ddp", "trainer.devices=2", "hydra.launcher.tasks_per_node=1"],
     ("hydra.launcher.tasks_per_node=1", "trainer.devices=2")),
    (["trainer.num_nodes=0"], ("trainer.num_nodes=0",)),
])
def test_a_multi_rank_job_that_cannot_form_is_one_line_and_never_submitted(cluster, tmp_path, overrides, fragments):
    before = cluster.jobs()
    result = multirun([*splice_run(), *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, cluster)
    assert_user_error(result, *fragments)
    assert cluster.jobs() == before and not (tmp_path / "sweep" / "0").exists()


@pytest.mark.parametrize("kind", ["fine-tuning", "pretraining"])
def test_a_two_rank_run_forms_inside_one_slurm_job_and_equals_the_same_run_started_locally(cluster, tmp_path, kind):
    """`trainer=ddp trainer.devices=2` through the SLURM launcher: one job of 2 tasks, whose ranks, world size and
    master address Lightning takes from SLURM (gloo on this CPU node); its weights equal the same 2-rank run started
    without SLURM to 1e-6; fine-tuning on splits of odd size, its validation and test metrics equal one process."""
    from tests.test_scale import assert_scores_equal_one_process, odd_splits

    files = odd_splits(tmp_path)
    task = ["task=classify", "model=tiny", "data.max_tokens=64", "data.batch_size=16", "trainer.max_epochs=1",
            "callbacks.schedule=null", "logger=csv", *(f"data.{split}={path}" for split, path in files.items())
            ] if kind == "fine-tuning" else [
        "model=tiny", "data.max_tokens=64", "data.batch_size=4", f"data.genome={LAMBDA}", "trainer.max_steps=4",
        "trainer.val_check_interval=4", "data.val_windows=9", "logger=csv"]
    ddp = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "threads=1"]
    sweep = tmp_path / "sweep"
    result = multirun([*task, *ddp, "hydra.launcher.cpus_per_task=1", f"hydra.sweep.dir={sweep}"], tmp_path, cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = [path for path in (sweep / ".submitit").iterdir() if path.is_dir()]
    logs = {path.name.split("_")[1]: path.read_text() for path in job.glob("*_log.err")}
    assert sorted(logs) == ["0", "1"]  # one log per SLURM task: the two ranks of one job
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in logs["1"] and "GLOBAL_RANK: 0, MEMBER: 1/2" in logs["0"]
    local = tmp_path / "local"
    started = train([*task, *ddp, f"paths.output_dir={local}"], tmp_path)
    assert started.returncode == 0, started.stderr[-3000:]
    a, b = (load_file(run_dir / "checkpoints" / "last.hf" / "model.safetensors") for run_dir in (sweep / "0", local))
    assert a.keys() == b.keys() and all(torch.allclose(a[key], b[key], atol=1e-6) for key in a)
    if kind == "fine-tuning":
        assert_scores_equal_one_process(sweep / "0", files, tmp_path)


def test_a_two_node_job_of_four_gpus_each_is_submitted_as_eight_ranks(tmp_path):
    """What `trainer=ddp trainer.devices=4 trainer.num_nodes=2` submits (an sbatch on the PATH that keeps the script
    and refuses it, so no cluster is needed): 2 nodes, 4 tasks and 4 GPUs per node, one srun over all 8 tasks; and
    what Lightning makes of one of those tasks' SLURM environment: rank, world size, master address from the node
    list, port from the job id."""
    import lightning as L
    from lightning.fabric.plugins.environments import SLURMEnvironment

    bin_dir, kept = tmp_path / "bin", tmp_path / "submitted.sh"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {kept}\necho "sbatch: error: kept for the test" >&2\nexit 1\n')
    (bin_dir / "sbatch").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = run([sys.executable, str(ROOT / "train.py"), "-m", *splice_run(), "hydra/launcher=submitit_slurm",
                  "hydra.launcher.partition=gpu", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                  f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, env=env)
    assert_user_error(result, "sbatch refused the job", "kept for the test")
    script = kept.read_text()
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu", "#SBATCH --signal=USR2@120"):
        assert line in script, script
    assert "srun " in script and "submitit.core._submit" in script

    task = {"SLURM_NODELIST": "gpu[07-08]", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NTASKS": "8",
            "SLURM_NTASKS_PER_NODE": "4", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
            "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "train"}  # task 5 of the job
    # the environment as it was afterwards, MASTER_ADDR and MASTER_PORT (which Lightning sets) included: a later
    # test's DDP run would look for gpu07
    with mock.patch.dict(os.environ, task):
        for key in ("MASTER_ADDR", "MASTER_PORT"):
            os.environ.pop(key, None)
        environment = L.Trainer(accelerator="cpu", devices=4, num_nodes=2, strategy="ddp",
                                logger=False).strategy.cluster_environment
        assert isinstance(environment, SLURMEnvironment)
        assert (environment.global_rank(), environment.local_rank(), environment.node_rank()) == (5, 1, 1)
        assert environment.world_size() == 8 and environment.main_address == "gpu07"
        assert environment.main_port == 15000 + 4242  # the job id's last 4 digits: every task of the job agrees
    assert "MASTER_ADDR" not in os.environ or os.environ["MASTER_ADDR"] != "gpu07"


def test_a_two_rank_job_signalled_before_its_time_limit_resumes_on_both_ranks_as_an_uninterrupted_run(
        cluster, tmp_path, splice_files):
    """A 2-task DDP job pre-empted (`scancel --signal=USR2`) mid-epoch: both ranks stop at the same step, rank 0
    writes one last.ckpt there, submitit requeues, and the resumed job ends with the weights of the same 2-rank run
    uninterrupted (started locally), to 1e-6, and the 1-rank run of the same global batch (2 micro-batches of 8, no
    dropout: ranks draw their own masks; an epoch of whole global batches: a partial accumulation at an epoch's end is
    scaled as a whole one) to 1e-5, what the order of DDP's gradient reduction allows; its wandb run (offline) keeps
    one id across the requeue."""
    from dnabert.config import run_id
    from tests.test_wandb import wandb_records

    stopped_at = 9
    signal_hook = [item.replace("tests.test_resume.", "tests.test_slurm.")
                   for item in hook("requeue", RequeueSignalAt, step=stopped_at)]
    run_config = ["task=classify", "model=tiny", "data.max_tokens=64", "data.batch_size=8", "trainer.max_epochs=2",
                  "callbacks.schedule=null", "task.optimizer.lr=1e-3", "logger=[csv,wandb]", "threads=1",
                  "global_batch_size=16", "model.config.hidden_dropout_prob=0",
                  "data.val_fraction=0.12",  # 176 training rows: whole global batches, no partial accumulation
                  f"data.train={splice_files / 'train.tsv'}", f"data.test={splice_files / 'test.tsv'}",
                  "trainer.accelerator=cpu"]
    ranks = ["trainer=ddp", "trainer.devices=2"]
    sweep = tmp_path / "sweep"
    result = multirun([*run_config, *ranks, f"hydra.sweep.dir={sweep}", "hydra.launcher.cpus_per_task=1",
                       *signal_hook], tmp_path, cluster)
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = [path for path in (sweep / ".submitit").iterdir() if path.is_dir()]
    first = {path.name.split("_")[1]: path.read_text() for path in job.glob("*_log.err")}
    assert f"dnabert: stopped by SIGTERM at step {stopped_at}" in first["0"], first["0"][-3000:]
    assert "Restarts=1" in cluster.run("scontrol", "show", "job", job.name).stdout
    logs = sorted((sweep / "0").glob("wandb/offline-run-*/run-*.wandb"))
    assert len(logs) == 2  # rank 0's wandb before and after the requeue: one run
    runs = [record.run for log in logs for record in wandb_records(log) if record.WhichOneof("record_type") == "run"]
    assert {run.run_id for run in runs} == {run_id(str((sweep / "0").absolute()))}
    straight, one_rank = tmp_path / "straight", tmp_path / "one_rank"
    for out, devices in ((straight, ranks), (one_rank, ["trainer.devices=1"])):
        started = train([*run_config, *devices, f"paths.output_dir={out}"], tmp_path)
        assert started.returncode == 0, started.stderr[-3000:]
    resumed, uninterrupted = (torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)
                              for d in (sweep / "0", straight))
    assert resumed["global_step"] == uninterrupted["global_step"]
    a, b, c = (load_file(d / "checkpoints" / "last.hf" / "model.safetensors")
               for d in (sweep / "0", straight, one_rank))
    assert all(torch.allclose(a[key], b[key], atol=1e-6) for key in a)
    assert all(torch.allclose(a[key], c[key], atol=1e-5) for key in a)
