"""`dnabert evaluate`: a fine-tuned model scored on a labelled file without training, with the metrics (and loss)
fine-tuning reports for its test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dnabert.data.labelled import LabelledRows, check_lengths, encode_labels, read_table
from dnabert.models.inference import output_names, predict
from dnabert.models.metrics import task_metrics
from dnabert.problems import metric_values, problem_of


def loss_of(task_type: str, values: torch.Tensor, targets: torch.Tensor) -> float:
    """The loss transformers computes for the task (cross-entropy, binary cross-entropy, MSE), from predictions."""
    if task_type == "classification":
        return float(F.nll_loss(values.clamp_min(1e-45).log(), targets))
    if task_type == "multilabel":
        return float(F.binary_cross_entropy(values, targets.float()))
    return float(F.mse_loss(values, targets))


def labelled_rows(model, path: Path) -> LabelledRows:
    """The rows of a labelled file, with labels named as the model's classes (or its target columns)."""
    task_type = problem_of(model.config.problem_type).task_type
    rows = read_table(Path(path), label_columns=None if task_type == "classification" else output_names(model))
    check_lengths(rows.sequences, rows.places, model.config.k)
    return rows


def evaluate(model, rows: LabelledRows, batch_size: int = 64, max_tokens: int = 512, reverse_complement: bool = False,
             progress: bool = True, prefix: str = "test") -> dict[str, float]:
    """`{prefix}/loss` and every task metric of `model` on labelled rows."""
    task_type = problem_of(model.config.problem_type).task_type
    names = output_names(model)
    targets = torch.from_numpy(encode_labels(rows, task_type, names))
    if task_type == "regression" and targets.shape[-1] == 1:
        targets = targets.squeeze(-1)
    values = torch.from_numpy(predict(model, rows.sequences, batch_size, max_tokens, reverse_complement, progress))
    if task_type == "regression" and values.shape[-1] == 1:
        values = values.squeeze(-1)
    metrics = task_metrics(task_type, len(names))
    metrics.update(metric_values(task_type, values) if values.ndim > 1 else values,
                   targets.long() if task_type == "multilabel" else targets)
    scores = {f"{prefix}/{name}": float(np.mean(value.float().numpy())) for name, value in metrics.compute().items()}
    return {f"{prefix}/loss": loss_of(task_type, values, targets), **scores}
