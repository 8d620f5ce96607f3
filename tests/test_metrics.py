"""Whole-split metrics against numbers computed by hand."""

from __future__ import annotations

import pytest
import torch

from dnabert.models.metrics import task_metrics
from dnabert.problems import metric_inputs


def test_binary_metrics_from_class_one_probability():
    # threshold 0.5 -> predictions 1 1 0 1 0 against targets 1 0 0 1 1: tp 2, fp 1, tn 1, fn 1
    metrics = task_metrics("classification", 2)
    metrics.update(torch.tensor([0.9, 0.8, 0.2, 0.6, 0.1]), torch.tensor([1, 0, 0, 1, 1]))
    values = {name: float(value) for name, value in metrics.compute().items()}
    assert values["accuracy"] == pytest.approx(3 / 5)
    assert values["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # class 1: 4/6
    assert values["f1_macro"] == pytest.approx((4 / 6 + 2 / 4) / 2)  # class 0: 2 * 1 / (2 * 1 + 1 + 1)
    assert values["mcc"] == pytest.approx((2 * 1 - 1 * 1) / (3 * 3 * 2 * 2) ** 0.5)
    # positive scores 0.9 0.6 0.1, negative 0.8 0.2: 3 of the 6 pairs ranked correctly
    assert values["auroc"] == pytest.approx(3 / 6)


def test_binary_macro_f1_is_not_constant_on_imbalanced_predictions():
    # every prediction 1 on targets 1 1 1 0: class-1 F1 2*3/(2*3+1) = 6/7, class-0 F1 0
    metrics = task_metrics("classification", 2)
    metrics.update(metric_inputs("classification", torch.tensor([[0.0, 1.0]] * 4)), torch.tensor([1, 1, 1, 0]))
    values = metrics.compute()
    assert float(values["f1_macro"]) == pytest.approx((6 / 7 + 0) / 2)
    assert float(values["f1"]) == pytest.approx(6 / 7)


def test_multiclass_macro_f1():
    # predictions 0 1 2 2 on targets 0 1 1 2: F1 per class 1, 2/3, 2/3
    metrics = task_metrics("classification", 3)
    probabilities = torch.eye(3)[[0, 1, 2, 2]]
    metrics.update(probabilities, torch.tensor([0, 1, 1, 2]))
    values = metrics.compute()
    assert float(values["accuracy"]) == pytest.approx(3 / 4)
    assert float(values["f1"]) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
