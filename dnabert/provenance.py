"""What a run was: its resolved config, the code revision and checksums of the data it read."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from dnabert.atomic import write_json_atomic, write_text_atomic
from dnabert.errors import DnabertError, read_json
from dnabert.genome.shards import GenomeShards, file_sha256

DATA_FILES = ("genome", "train", "val", "test", "labels", "jaspar")
"""Keys of the `data` config that name input files (or a genome shard directory)."""
SOURCE_ROOT = Path(__file__).resolve().parents[1]

NOT_IDENTITY = ("paths", "logger", "study")
"""Config keys that do not change what a run computes: where it writes and logs, and the study declaration
around it (its selection metric and ensembles are read by the report, not by the run)."""


def _located(value: object, output_dir: str) -> object:
    """`value` with the run's own directory written as `<run>`, so that a moved checkout keeps its runs."""
    if isinstance(value, dict):
        return {key: _located(item, output_dir) for key, item in value.items()}
    if isinstance(value, list):
        return [_located(item, output_dir) for item in value]
    if isinstance(value, str) and output_dir and value.startswith(output_dir):
        return "<run>" + value[len(output_dir):]
    return value


def run_identity(config: dict) -> dict:
    """What makes a finished run reusable, from its resolved config: the config's hash (where it writes and logs
    left out), the checksums of its data files and of its `model.init`, and its thread count."""
    output_dir = str((config.get("paths") or {}).get("output_dir") or "")
    kept = _located({key: value for key, value in config.items() if key not in NOT_IDENTITY}, output_dir)
    data = config.get("data") or {}
    files = {f"data.{key}": data.get(key) for key in DATA_FILES if data.get(key)}
    init = (config.get("model") or {}).get("init")
    if init and init != "random":
        files["model.init"] = init
    checksums = {key: path_checksum(Path(str(path))) for key, path in files.items()}
    return {"config_sha256": hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest(),
            "checksums": {key: value for key, value in checksums.items() if value is not None},
            "threads": config.get("threads")}


def resolved_config(cfg: DictConfig) -> dict:
    """The config as plain values; a value still missing (`???`) is a one-line user error."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as error:
        raise DnabertError(f"{error.full_key}: no value given; set it on the command line "
                           f"({error.full_key}=...)") from None


def checkout_relative(values: dict) -> dict:
    """`values` with every absolute path inside or beside the checkout named from its root (`experiments/...`,
    `../shared/...`), so that a benchmark's record holds no path of the machine it ran on."""
    def relative(value):  # links are not followed: ../shared may be a link to the data
        path = Path(os.path.normpath(str(value)))
        inside = path.is_absolute() and path.is_relative_to(SOURCE_ROOT.parent)
        return os.path.relpath(path, SOURCE_ROOT) if inside else value
    return {key: relative(value) if isinstance(value, (str, Path)) else value for key, value in values.items()}


def git_revision(directory: Path = SOURCE_ROOT) -> dict:
    """Commit of the source tree and whether it has uncommitted changes (both null outside a git checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, check=True).stdout

    try:
        return {"commit": git("rev-parse", "HEAD").strip(), "dirty": bool(git("status", "--porcelain").strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def path_checksum(path: Path) -> str | None:
    """SHA-256 of a data file; a shard directory gives its source genome's checksum, any other directory (one folder
    per class, a model) the checksum of its files' relative paths and checksums; None when absent."""
    if (path / "metadata.json").is_file():
        return GenomeShards(path).metadata.get("source_sha256")
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file())
        listing = "".join(f"{f.relative_to(path).as_posix()}\t{file_sha256(f)}\n" for f in files)
        return hashlib.sha256(listing.encode()).hexdigest()
    return file_sha256(path) if path.is_file() else None


def data_checksums(data: dict) -> dict[str, str]:
    """`path_checksum` of every data file the run names."""
    checksums = {key: path_checksum(Path(data[key])) for key in DATA_FILES if data.get(key)}
    return {key: value for key, value in checksums.items() if value is not None}


def run_provenance(output_dir: Path) -> dict | None:
    """The provenance a run recorded in its directory (None where there is none: an export outside train.py)."""
    path = Path(output_dir) / "provenance.json"
    return read_json(path, "a run directory written by train.py") if path.is_file() else None


@rank_zero_only
def record_provenance(config: dict, output_dir: Path, loggers: list[Logger]) -> None:
    """Write `config.yaml` and `provenance.json` (config, identity, git revision, data checksums) into the run
    directory and log them as every logger's hyper-parameters."""
    record = {"config": config, "identity": run_identity(config), "git": git_revision(),
              "data_sha256": data_checksums(config.get("data") or {})}
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output_dir / "config.yaml", OmegaConf.to_yaml(config))
    write_json_atomic(output_dir / "provenance.json", record)
    for logger in loggers:
        logger.log_hyperparams({**config, "git": record["git"], "data_sha256": record["data_sha256"]})
