"""wandb as people use it: one wandb run per run directory across a SIGTERM resume, every step's metrics in it, the
mode the user chose respected; read back offline from the run's transaction log with wandb's own record schema."""

from __future__ import annotations

import signal
import struct
from pathlib import Path

from omegaconf import OmegaConf
from wandb.proto import wandb_internal_pb2

from dnabert.config import composed, run_id
from tests.conftest import LAMBDA, train
from tests.test_resume import SignalAt, hook

BLOCK = 32768
"""The transaction log (`run-<id>.wandb`) is LevelDB's log format: 32 KiB blocks of chunks, each with a 7-byte
header (CRC-32, length, type: 1 full, 2 first, 3 middle, 4 last), after wandb's own 7-byte file header."""


def wandb_records(path: Path) -> list[wandb_internal_pb2.Record]:
    """Every record of an offline run's transaction log, parsed with wandb's protobuf schema."""
    data, position, pending, records = path.read_bytes(), 7, b"", []
    assert data.startswith(b":W&B")
    while position + 7 <= len(data):
        room = BLOCK - position % BLOCK
        _, length, kind = struct.unpack("<IHB", data[position:position + 7]) if room >= 7 else (0, 0, 0)
        if room < 7 or (kind == 0 and length == 0):  # the block's padding
            position += room
            continue
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_a_resumed_run_keeps_one_wandb_id_and_has_every_steps_metrics(tmp_path):
    steps, stopped_at = 8, 5
    output = tmp_path / "run"
    command = [f"data.genome={LAMBDA}", "logger=[csv,wandb]", f"trainer.max_steps={steps}",
               "trainer.val_check_interval=4", "trainer.log_every_n_steps=1", "data.val_windows=16",
               "data.max_tokens=64", "model.config.hidden_dropout_prob=0", f"paths.output_dir={output}",
               *hook("term", SignalAt, step=stopped_at, signum=int(signal.SIGTERM))]
    stopped = train(command, tmp_path)
    assert stopped.returncode == 0 and f"SIGTERM at step {stopped_at}" in stopped.stderr, stopped.stderr[-3000:]
    resumed = train(command, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    logs = sorted(output.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(logs) == 2  # one offline run directory per process, both of the same wandb run
    runs = [record.run for log in logs for record in wandb_records(log) if record.WhichOneof("record_type") == "run"]
    assert {run.run_id for run in runs} == {run_id(str(output))} and {run.job_type for run in runs} == {"pretrain"}
    logged = [{item.key or "/".join(item.nested_key): item.value_json for item in record.history.item} for log in logs
              for record in wandb_records(log) if record.WhichOneof("record_type") == "history"]
    train_steps = {int(row["trainer/global_step"]) for row in logged if "train/loss" in row}
    assert train_steps == set(range(steps))  # every step logged once across both processes
    val_steps = sorted(int(row["trainer/global_step"]) for row in logged if "val/loss" in row)
    assert val_steps == [3, 7]
    assert any("train/device/items_per_sec" in row and "train/device/mfu" in row for row in logged)  # the monitor's


def test_wandb_is_offline_only_when_the_user_has_not_chosen(monkeypatch, tmp_path):
    config = ["logger=wandb", f"paths.output_dir={tmp_path / 'run'}"]
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert OmegaConf.to_container(composed(config).logger, resolve=True)["wandb"]["offline"] is True
    monkeypatch.setenv("WANDB_MODE", "online")
    wandb = OmegaConf.to_container(composed(config).logger, resolve=True)["wandb"]
    assert wandb["offline"] is False and wandb["resume"] == "allow" and wandb["group"] is None
    assert wandb["id"] == run_id(str(tmp_path / "run")) != run_id(str(tmp_path / "other"))
    finetune = OmegaConf.to_container(composed([*config, "task=classify"]).logger, resolve=True)["wandb"]
    benchmark = composed([*config, "benchmark=gue", "benchmark.task=prom_300_all", "benchmark.root=x"])
    assert finetune["job_type"] == "finetune"
    assert OmegaConf.to_container(benchmark.logger, resolve=True)["wandb"]["job_type"] == "benchmark"
