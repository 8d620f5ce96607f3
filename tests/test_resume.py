"""Interrupted runs: SIGKILL and SIGTERM mid-epoch resume to the uninterrupted result; a NaN loss stops cleanly."""

from __future__ import annotations

import os
import signal

import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from tests.conftest import STEPS_PER_EPOCH, assert_same_result, assert_user_error, finetune


class SignalAt(Callback):
    """Test hook: a run that started fresh sends itself `signum` right after optimizer step `step`."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *_) -> None:
        if trainer.ckpt_path is None and trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class PoisonWeights(Callback):
    """Test hook: fill the first parameter with NaN before the micro-batch of optimizer step `step`."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, *_) -> None:
        if trainer.global_step == self.step:
            next(pl_module.parameters()).data.fill_(float("nan"))


def hook(name: str, target: type, **values) -> list[str]:
    """Overrides that add a test callback to a run."""
    return [f"+callbacks.{name}._target_=tests.test_resume.{target.__name__}",
            *(f"+callbacks.{name}.{key}={value}" for key, value in values.items())]


def test_sigkill_mid_epoch_then_the_same_command_ends_as_an_uninterrupted_run(tmp_path, splice_files, straight):
    killed_at = STEPS_PER_EPOCH + 5
    command = hook("kill", SignalAt, step=killed_at, signum=int(signal.SIGKILL))
    killed = finetune(tmp_path, splice_files, "run", *command)
    assert killed.returncode == -signal.SIGKILL
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == STEPS_PER_EPOCH  # the end-of-epoch checkpoint: the restart redoes 5 batches
    resumed = finetune(tmp_path, splice_files, "run", *command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_result(tmp_path / "run", straight)


def test_sigterm_saves_the_current_step_exits_cleanly_and_resumes(tmp_path, splice_files, straight):
    stopped_at = STEPS_PER_EPOCH + 5
    command = hook("term", SignalAt, step=stopped_at, signum=int(signal.SIGTERM))
    stopped = finetune(tmp_path, splice_files, "run", *command)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    lines = [line for line in stopped.stderr.splitlines() if line.startswith("dnabert:")]
    assert len(lines) == 1 and f"SIGTERM at step {stopped_at}" in lines[0] and "last.ckpt" in lines[0], lines
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == stopped_at
    assert not (tmp_path / "run" / "test_metrics.json").exists()
    resumed = finetune(tmp_path, splice_files, "run", *command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_result(tmp_path / "run", straight)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, splice_files):
    poisoned_at = STEPS_PER_EPOCH + 3
    result = finetune(tmp_path, splice_files, "run", *hook("poison", PoisonWeights, step=poisoned_at))
    assert_user_error(result, f"at step {poisoned_at}", "NaN")
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == STEPS_PER_EPOCH
    assert all(torch.isfinite(value).all() for value in last["state_dict"].values())
    weights = load_file(tmp_path / "run" / "checkpoints" / "last.hf" / "model.safetensors")
    assert all(torch.isfinite(value).all() for value in weights.values())
