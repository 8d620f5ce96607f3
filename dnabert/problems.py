"""The kinds of supervised task, in one table: what `data.task_type` names, which loss `transformers` computes
for it (`config.problem_type`), what a prediction reports and what the metrics read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dnabert.errors import DnabertError


@dataclass(frozen=True)
class Problem:
    """One kind of task."""

    task_type: str
    """Its name in `data.task_type`."""
    problem_type: str
    """`transformers`' name (BertConfig.problem_type), which chooses the loss."""
    outputs: Callable[[torch.Tensor], torch.Tensor]
    """Logits -> what predictions report: class probabilities, per-label probabilities or values."""


PROBLEMS = {problem.task_type: problem for problem in (
    Problem("classification", "single_label_classification", lambda logits: logits.softmax(-1)),
    Problem("multilabel", "multi_label_classification", torch.sigmoid),
    Problem("regression", "regression", lambda logits: logits),
)}
TASK_TYPES = tuple(PROBLEMS)


@dataclass
class LabelInfo:
    """What a head predicts: the task type and the class names (or label/target column names)."""

    task_type: str
    names: list[str]

    @property
    def num_labels(self) -> int:
        """Outputs of the head."""
        return len(self.names)

    @property
    def problem_type(self) -> str:
        """`transformers`' name for the loss to use."""
        return PROBLEMS[self.task_type].problem_type


def problem_of(problem_type: str) -> Problem:
    """The Problem of a model config's `problem_type`."""
    for problem in PROBLEMS.values():
        if problem.problem_type == problem_type:
            return problem
    known = ", ".join(problem.problem_type for problem in PROBLEMS.values())
    raise DnabertError(f"the model's problem_type {problem_type!r} is none of dnabert's ({known}); "
                       "fine-tune it with `train.py task=...`")


def output_values(logits: torch.Tensor, problem_type: str) -> torch.Tensor:
    """Softmax probabilities, sigmoid probabilities or raw values, as the problem type asks."""
    return problem_of(problem_type).outputs(logits.float())


def metric_inputs(task_type: str, logits: torch.Tensor) -> torch.Tensor:
    """What the metrics take: P(class 1) for binary, class probabilities, sigmoid scores, or raw values."""
    return metric_values(task_type, PROBLEMS[task_type].outputs(logits))


def metric_values(task_type: str, values: torch.Tensor) -> torch.Tensor:
    """`metric_inputs` from what predictions report (probabilities or values) rather than logits."""
    if values.shape[-1] == 1 and task_type == "regression":
        return values.squeeze(-1)
    return values[:, 1] if task_type == "classification" and values.shape[-1] == 2 else values
