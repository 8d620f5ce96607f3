"""The closing lines of every training run: how long it ran, what validation says next to its baselines, where the
best model and the logs went."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from dnabert.models.checkpoints import hf_directory_of

BASELINES = {
    "val/accuracy": ("val/kmer_frequency_baseline", "most frequent k-mer"),
    "val/hidden_accuracy": ("val/local_baseline", "local k-mer statistics"),
    "val/auroc": (0.5, "chance"),
    "val/mcc": (0.0, "chance"),
}
"""Validation metrics shown with what they should beat: another logged metric, or a constant."""


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _with_baselines(metrics: dict[str, float]) -> str:
    """`val/loss 2.31, val/accuracy 0.152 (most frequent k-mer 0.061), ...`."""
    shown, baselines = [], {b for b, _ in BASELINES.values() if isinstance(b, str)}
    for name, value in metrics.items():
        if not name.startswith("val/") or name in baselines or name.endswith("_order"):
            continue
        text = f"{name} {value:.4g}"
        baseline, label = BASELINES.get(name, (None, ""))
        reference = metrics.get(baseline) if isinstance(baseline, str) else baseline
        if reference is not None:
            order = metrics.get(f"{baseline}_order") if isinstance(baseline, str) else None
            text += f" ({label}{f', order {order:.0f}' if order is not None else ''}: {reference:.4g})"
        shown.append(text)
    return ", ".join(shown) or "none (the run never validated)"


def run_summary(trainer: L.Trainer, metrics: dict[str, float], seconds: float, output: Path) -> str:
    """The lines `train.py` ends with: steps and time, final validation next to its baselines, the best checkpoint's
    HF directory and its score, and the log directories."""
    steps = trainer.global_step
    rate = f" ({steps / seconds:.2f} steps/s)" if seconds else ""
    lines = [f"dnabert: {steps:,} steps in {_duration(seconds)}{rate}",
             f"  final validation: {_with_baselines(metrics)}"]
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "")
    if best:
        score = checkpoint.best_model_score
        scored = f" ({checkpoint.monitor} {float(score):.4g})" if score is not None else ""
        lines.append(f"  best model{scored}: {hf_directory_of(best)}")
    logs = sorted({str(Path(logger.log_dir)) for logger in trainer.loggers if getattr(logger, "log_dir", None)})
    lines.append(f"  run directory: {output}" + (f"; logs: {', '.join(logs)}" if logs else ""))
    return "\n".join(lines)
