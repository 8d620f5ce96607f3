"""A real one-node SLURM cluster on localhost for the cluster tests: Debian's slurmctld, slurmd and munge (installed
by `.ci/system-packages`), no cgroups (`proctrack/linuxproc`, `task/none`), no accounting, free ports, all state in
a temporary folder. `SlurmCluster.start` brings it up and waits for the node to be idle; `stop` shuts it down."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def munge_works() -> bool:
    """Whether a munge daemon answers (credentials encode and decode)."""
    encoded = subprocess.run(["munge", "-n"], capture_output=True)
    return encoded.returncode == 0 and subprocess.run(["unmunge"], input=encoded.stdout,
                                                      capture_output=True).returncode == 0


def start_munge() -> None:
    """Start munged as the munge user (its socket folder created first) unless one already answers."""
    if munge_works():
        return
    MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    shutil.chown(MUNGE_SOCKET.parent, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True, capture_output=True)
    for _ in range(50):
        if munge_works():
            return
        time.sleep(0.1)
    raise RuntimeError("munged started but does not answer `munge -n | unmunge`")


@dataclass
class SlurmCluster:
    """A running one-node cluster: its folder, `slurm.conf` and the environment its clients need."""

    root: Path
    node: str

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment for sbatch/squeue and for processes that submit (submitit calls the clients)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    @classmethod
    def start(cls, root: Path, cpus: int | None = None) -> SlurmCluster:
        """Write the config, start munge, slurmctld and slurmd, and wait until the node takes jobs."""
        missing = [name for name in DAEMONS if shutil.which(name) is None]
        if missing:
            raise RuntimeError(f"the SLURM tests need {', '.join(missing)}: run .ci/system-packages (apt-get install "
                               "slurmctld slurmd slurm-client munge) first")
        node, user = socket.gethostname().split(".")[0], getpass.getuser()
        cluster = cls(root, node)
        for folder in ("state", "spool", "jobs"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        cluster.conf.write_text("\n".join([
            "ClusterName=dnabert-test", f"SlurmctldHost={node}", f"SlurmUser={user}", f"SlurmdUser={user}",
            "AuthType=auth/munge", f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'slurmctld.log'}", f"SlurmdLogFile={root / 'slurmd.log'}",
            f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
            "ReturnToService=2", "KillWait=30", "MinJobAge=600",
            f"NodeName={node} CPUs={cpus or os.cpu_count()} RealMemory=2000 State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4",
        ]) + "\n")
        start_munge()
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(cluster.conf)], check=True, env=cluster.env, capture_output=True)
        for _ in range(60):
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=cluster.env, capture_output=True, text=True)
            if state.stdout.strip() == "idle":
                return cluster
            time.sleep(0.5)
        cluster.stop()
        raise RuntimeError(f"the SLURM node never became idle: {state.stdout.strip() or state.stderr.strip()}; see "
                           f"{root / 'slurmctld.log'} and {root / 'slurmd.log'}")

    def run(self, *command: str) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster (squeue, scontrol, scancel ...)."""
        return subprocess.run(list(command), env=self.env, capture_output=True, text=True)

    def jobs(self) -> list[str]:
        """The ids of the jobs the controller knows, running, pending or recently ended."""
        listing = self.run("squeue", "-h", "-t", "all", "-o", "%i")
        return listing.stdout.split()

    def release_requeued(self) -> None:
        """Start requeued jobs now: slurmctld holds a requeued batch job for 2 minutes (its BeginTime), which an
        administrator may lift (`scontrol update StartTime=now`)."""
        held = self.run("squeue", "-h", "-t", "PENDING", "-o", "%i %r").stdout.split("\n")
        for job in (line.split()[0] for line in held if line.endswith(" BeginTime")):
            self.run("scontrol", "update", f"JobId={job}", "StartTime=now")

    def stop(self) -> None:
        """Cancel what runs and stop both daemons."""
        self.run("scancel", "--full", f"--user={getpass.getuser()}")
        for daemon in ("slurmd", "slurmctld"):
            pid_file = self.root / f"{daemon}.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text()), 15)
                except (ProcessLookupError, ValueError):
                    pass
