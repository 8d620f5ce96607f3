"""SLURM through submitit: a time-limit (or pre-emption) signal stops training at a step boundary with `last.ckpt`
saved before submitit requeues the job, submitit's status polls stay quiet on a cluster without accounting, a job
whose SLURM tasks are not the trainer's ranks is refused before submission, and a job sbatch refuses is one line."""

from __future__ import annotations

import functools
import logging
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from lightning.pytorch.utilities.exceptions import SIGTERMException

from dnabert.errors import DnabertError

T = TypeVar("T")

REQUEUE_SIGNAL = signal.SIGUSR2
"""What submitit asks SLURM to send `signal_delay_s` before the time limit (`--signal=USR2@...`), and what
`scancel --signal=USR2` sends to pre-empt."""


def submitit_requeue_handler():
    """Submitit's handler of the requeue signal when this process is a submitit job, else None."""
    handler = signal.getsignal(REQUEUE_SIGNAL)
    environment = sys.modules.get("submitit.core.job_environment")
    owner = getattr(handler, "__self__", None)
    return handler if environment and isinstance(owner, environment.SignalHandler) else None


@contextmanager
def requeue_at_step_boundary() -> Iterator[None]:
    """Inside a submitit job: on the requeue signal, stop after the current step as on SIGTERM (Lightning raises
    `SIGTERMException` there and `HFModelCheckpoint` saves `last.ckpt` at that step), then hand over to submitit,
    which resubmits the same Hydra job and requeues it; the requeued job resumes from `last.ckpt`. Elsewhere a no-op.
    """
    requeue = submitit_requeue_handler()
    if requeue is None:
        yield
        return
    received: list[tuple] = []

    def stop_then_requeue(signum, frame) -> None:
        received.append((signum, frame))
        signal.raise_signal(signal.SIGTERM)  # Lightning's handler: stop at the next step boundary

    signal.signal(REQUEUE_SIGNAL, stop_then_requeue)
    try:
        yield
    except SIGTERMException:
        if not received:
            raise
        print(f"dnabert: {signal.Signals(received[0][0]).name} from SLURM: handing the job to submitit to requeue; "
              "it resumes from checkpoints/last.ckpt", file=sys.stderr, flush=True)
        requeue(*received[0])  # checkpoint (resubmit), `scontrol requeue`, exit
        raise
    finally:
        signal.signal(REQUEUE_SIGNAL, requeue)


@functools.cache
def accounting_off() -> bool:
    """Whether this SLURM cluster runs without accounting storage (`sacct` then always fails)."""
    try:
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.split("=", 1)[-1].strip() == "accounting_storage/none"
               for line in config.splitlines() if line.startswith("AccountingStorageType"))


class SacctWithoutAccounting(logging.Filter):
    """Drops submitit's "Bypassing sacct error" warning, which it logs at every status poll, on a cluster whose
    accounting is off (submitit then follows the jobs through their result files); kept anywhere else, where a
    failing `sacct` is news. Attached to the `submitit` logger by the `dnabert` Hydra logging config."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not ("Bypassing sacct error" in record.getMessage() and accounting_off())


def sbatch_refusals_said(func: Callable[[], T]) -> T:
    """Run `func` (a Hydra launch); a job sbatch refused (a partition, account or resource the cluster does not
    have) becomes one `DnabertError` naming sbatch's reasons and the launcher options that set them."""
    try:
        return func()
    except Exception as error:
        utils = sys.modules.get("submitit.core.utils")
        if utils is None or not isinstance(error, utils.FailedJobError) or "sbatch: error" not in str(error):
            raise
        reasons = [line.removeprefix("sbatch: error: ").strip() for line in str(error).splitlines() if line.strip()]
        raise DnabertError(f"sbatch refused the job: {'; '.join(reasons)}; check the hydra.launcher options "
                           "(hydra.launcher.partition, account, qos, timeout_min, gpus_per_node, cpus_per_task, "
                           "mem_gb, additional_parameters)") from None


def check_slurm_layout(launcher: dict, trainer: dict) -> None:
    """Under `hydra/launcher=submitit_slurm`, one SLURM task per device on each node: Lightning's SLURM environment
    takes its ranks from the tasks, so other counts would start a world that never forms (or leaves devices idle)."""
    if "SlurmLauncher" not in str(launcher.get("_target_", "")):
        return
    from dnabert.config import device_count

    for key, value in (("nodes", trainer["num_nodes"]), ("tasks_per_node", device_count(trainer["devices"]))):
        if launcher.get(key) != value:
            source = "trainer.num_nodes" if key == "nodes" else "trainer.devices"
            raise DnabertError(f"hydra.launcher.{key}={launcher.get(key)} but {source}={value}: one SLURM task per "
                               f"device on each node (the DDP ranks); set {source} and leave hydra.launcher.{key} "
                               "to follow it")
