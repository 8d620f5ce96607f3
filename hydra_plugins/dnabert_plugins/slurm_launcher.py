"""hydra-submitit-launcher's SLURM launcher for dnabert (`hydra/launcher=submitit_slurm`): every job is composed and
checked before sbatch sees any, so a job that could not run (a config that does not resolve, SLURM tasks that are not
its DDP ranks) is one user error and nothing is submitted. Hydra finds launchers in this namespace only; the checks
are `dnabert.study.check_jobs`. Without the `sweep` extra there is no plugin launcher to extend, and nothing here."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as PluginSlurmLauncher
except ImportError:  # dnabert.errors names the extra to install when a run asks for this launcher
    PluginSlurmLauncher = None

if PluginSlurmLauncher is not None:
    class SlurmLauncher(PluginSlurmLauncher):
        """The plugin's SLURM launcher, checking the sweep's jobs first."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            from dnabert.study import check_jobs

            assert self.config is not None and self.hydra_context is not None
            loader, master = self.hydra_context.config_loader, self.config
            check_jobs(job_overrides, lambda job: loader.load_sweep_config(master, job), initial_job_idx)
            return super().launch(job_overrides, initial_job_idx)
