"""OmegaConf resolvers used by the Hydra configs in conf/."""

from __future__ import annotations

from importlib import resources

from omegaconf import OmegaConf

from dnabert.tokenization import vocab_size


def resource_path(name: str) -> str:
    """Absolute path of a file shipped inside the package (e.g. the default lambda phage genome)."""
    return str(resources.files("dnabert") / "resources" / name)


def register_resolvers() -> None:
    """Register `${vocab_size:k}` and `${resource:name}` (idempotent)."""
    for name, function in (("vocab_size", vocab_size), ("resource", resource_path)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
