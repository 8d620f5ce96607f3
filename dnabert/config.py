"""OmegaConf resolvers used by the Hydra configs in conf/."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from omegaconf import OmegaConf

from dnabert.errors import DnabertError
from dnabert.tokenization import vocab_size


def resource_path(name: str) -> str:
    """Absolute path of a file shipped inside the package (e.g. the default lambda phage genome)."""
    return str(resources.files("dnabert") / "resources" / name)


def device_count(devices: int | str | Sequence[int]) -> int:
    """Devices per node that Lightning's `trainer.devices` selects (a count, a list of ids or `"0,1"`)."""
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    if isinstance(devices, (int, str)):
        count = int(devices) if str(devices).strip().lstrip("-").isdigit() else -1
        if count < 1:
            raise DnabertError(f"data.global_batch_size needs trainer.devices as a number or a list of devices, "
                               f"not {devices!r}")
        return count
    return len(devices)


def accumulation(global_batch_size: int | None, batch_size: int, devices: int | str | Sequence[int],
                 num_nodes: int) -> int:
    """`trainer.accumulate_grad_batches` that makes `global_batch_size` sequences per optimizer step (null: 1)."""
    if global_batch_size is None:
        return 1
    per_step = batch_size * device_count(devices) * num_nodes
    if global_batch_size % per_step or global_batch_size < per_step:
        raise DnabertError(f"data.global_batch_size={global_batch_size} is not a multiple of data.batch_size "
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


BENCHMARK_SUITES = ("gue", "genomic_benchmarks", "nt")
"""Suites with task presets in conf/benchmark/<suite>/ (`dnabert benchmark SUITE`)."""

RESOLVERS = {"vocab_size": vocab_size, "resource": resource_path, "accumulation": accumulation, "mul": multiply,
             "add": add, "by_init": by_init}


def register_resolvers() -> None:
    """Register the resolvers above (`${vocab_size:k}`, `${mul:a,b}`, `${by_init:${model.init},a,b}`, ...)."""
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
