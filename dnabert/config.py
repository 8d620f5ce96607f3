"""Where the Hydra configs live (conf/ in a checkout, dnabert/conf in a wheel) and the OmegaConf resolvers they
use."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from dnabert.errors import DnabertError
from dnabert.tokenization import vocab_size


def resource_path(name: str) -> str:
    """Absolute path of a file shipped inside the package (e.g. the default lambda phage genome)."""
    return str(resources.files("dnabert") / "resources" / name)


def cache_root() -> str:
    """`${dnabert_cache:}`: where genome shards are kept, for training and every command alike: `$DNABERT_CACHE`, else
    ~/.cache/dnabert (as `HF_HOME` defaults to ~/.cache/huggingface)."""
    return str(Path(os.environ.get("DNABERT_CACHE") or "~/.cache/dnabert").expanduser())


def device_count(devices: int | str | Sequence[int]) -> int:
    """Devices per node that Lightning's `trainer.devices` selects (a count, a list of ids or `"0,1"`)."""
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    if isinstance(devices, (int, str)):
        count = int(devices) if str(devices).strip().lstrip("-").isdigit() else -1
        if count < 1:
            raise DnabertError(f"global_batch_size needs trainer.devices as a number or a list of devices, "
                               f"not {devices!r}")
        return count
    return len(devices)


def accumulation(global_batch_size: int | None, batch_size: int, devices: int | str | Sequence[int],
                 num_nodes: int) -> int:
    """`trainer.accumulate_grad_batches` that makes `global_batch_size` sequences per optimizer step (null: 1); a run
    on no node is refused here, where every run's config resolves."""
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise DnabertError(f"trainer.num_nodes={num_nodes}: a run takes 1 or more nodes")
    if global_batch_size is None:
        return 1
    per_step = batch_size * device_count(devices) * num_nodes
    if global_batch_size % per_step or global_batch_size < per_step:
        raise DnabertError(f"global_batch_size={global_batch_size} is not a multiple of data.batch_size "
                           f"{batch_size} x {device_count(devices)} devices x {num_nodes} nodes = {per_step}")
    return global_batch_size // per_step


def multiply(a: int, b: int) -> int:
    """`${mul:a,b}`: a x b (e.g. optimizer steps x accumulation = micro-batches)."""
    return a * b


def by_init(init: str, random_value: object, pretrained_value: object) -> object:
    """`${by_init:${model.init},a,b}`: a when the model starts from random weights, b when it starts pretrained."""
    return random_value if init == "random" else pretrained_value


def add(a: int, b: int) -> int:
    """`${add:a,b}`: a + b (e.g. k + h - 1 tokens hide h nucleotides)."""
    return a + b


def suite_task(tasks: Mapping[str, str], task: str) -> str:
    """`${suite_task:${benchmark.tasks},${benchmark.task}}`: the folder of a benchmark suite's task."""
    if task not in tasks:
        raise DnabertError(f"benchmark.task={task}: not a task of this suite; choose one of {', '.join(tasks)}")
    return tasks[task]


def run_id(output_dir: str) -> str:
    """`${run_id:${paths.output_dir}}`: a run's tracking id (wandb), the same for every restart, requeue or resume of
    the run in that directory and different for every other directory."""
    return hashlib.sha256(str(Path(output_dir).resolve()).encode()).hexdigest()[:16]


def wandb_offline() -> bool:
    """`${wandb_offline:}`: offline unless the user chose a mode (`WANDB_MODE`, which wandb then follows)."""
    return "WANDB_MODE" not in os.environ


def run_group() -> str | None:
    """`${run_group:}`: the sweep a run belongs to (its Hydra multirun folder), else none."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return str(HydraConfig.get().sweep.dir)


def job_type(task_target: str, suite: str | None) -> str:
    """`${job_type:${task._target_},${oc.select:benchmark.suite,null}}`: pretrain, finetune or benchmark."""
    return "benchmark" if suite else "pretrain" if task_target.endswith("MaskedKmerModule") else "finetune"


CONF_DIR = next(path for path in (Path(__file__).parent / "conf", Path(__file__).parents[1] / "conf") if path.is_dir())
"""The Hydra configs: conf/ at the top of the checkout (and of an editable install), shipped inside the package as
dnabert/conf by the build (`python -m dnabert.train` reads them from any directory)."""
BENCHMARK_SUITES = ("gue", "genomic_benchmarks", "nt")
"""Suites with a config in conf/benchmark/<suite>.yaml, their tasks listed there (`dnabert benchmark SUITE`)."""

RESOLVERS = {"vocab_size": vocab_size, "resource": resource_path, "accumulation": accumulation, "mul": multiply,
             "add": add, "by_init": by_init, "suite_task": suite_task, "run_id": run_id, "wandb_offline": wandb_offline,
             "run_group": run_group, "job_type": job_type, "dnabert_cache": cache_root}


def register_resolvers() -> None:
    """Register the resolvers above (`${vocab_size:k}`, `${mul:a,b}`, `${by_init:${model.init},a,b}`, ...)."""
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


def composed(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """The run config `python -m dnabert.train OVERRIDES` would get (from the package's configs)."""
    register_resolvers()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=return_hydra_config)
