"""Hydra's basic sweeper for dnabert studies (`hydra/sweeper=study`): it launches only the runs that the run store
cannot reuse, so rerunning a finished study submits no job, on any launcher. Hydra finds sweepers in this namespace
only; what it does is `dnabert.study.pending_jobs`."""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.types import Override


class StudySweeper(BasicSweeper):
    """The basic sweeper over a study's arms x seeds (x folds), less the runs that finished as declared."""

    def split_arguments(self, overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:
        """The jobs of the basic sweep that still have to run, in batches of `max_batch_size`."""
        from dnabert.study import pending_jobs

        assert self.config is not None and self.hydra_context is not None
        loader, master = self.hydra_context.config_loader, self.config
        jobs = pending_jobs(master, BasicSweeper.split_arguments(overrides, None)[0],
                            lambda job: loader.load_sweep_config(master, list(job)))
        return list(self.split_overrides_to_chunks(jobs, max_batch_size)) if jobs else []
