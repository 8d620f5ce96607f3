"""torchmetrics collections per task type, computed over whole splits (and synced across ranks)."""

from __future__ import annotations

import torch
from torchmetrics import MeanSquaredError, MetricCollection
from torchmetrics.classification import (
    AUROC,
    Accuracy,
    AveragePrecision,
    BinaryStatScores,
    F1Score,
    MatthewsCorrCoef,
    Precision,
    Recall,
)
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef


class BinaryMacroF1(BinaryStatScores):
    """Macro F1 of a binary task from P(class 1): the mean of the class-1 and class-0 F1 scores."""

    def compute(self) -> torch.Tensor:
        tp, fp, tn, fn = (count.double() for count in self._final_state())
        positive = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
        negative = 2 * tn / (2 * tn + fn + fp).clamp(min=1)
        return ((positive + negative) / 2).float()


def task_metrics(task_type: str, num_labels: int) -> MetricCollection:
    """Accuracy/precision/recall/F1/MCC/AUROC/AUPRC for classification, Pearson/Spearman/MSE for regression.

    Binary tasks report binary precision/recall/F1 (positive = class 1) plus macro F1 as DNABERT's `dnaprom`
    did; multi-class and multi-label tasks report macro averages.
    """
    if task_type == "regression":
        outputs = {"num_outputs": num_labels} if num_labels > 1 else {}
        return MetricCollection({"pearson": PearsonCorrCoef(**outputs), "spearman": SpearmanCorrCoef(**outputs),
                                 "mse": MeanSquaredError(num_outputs=num_labels)})
    if task_type == "multilabel":
        args = {"task": "multilabel", "num_labels": num_labels, "average": "macro"}
        return MetricCollection({"accuracy": Accuracy(**args), "f1": F1Score(**args), "mcc": MatthewsCorrCoef(
            task="multilabel", num_labels=num_labels), "auroc": AUROC(**args), "auprc": AveragePrecision(**args)})
    if num_labels == 2:
        return MetricCollection({
            "accuracy": Accuracy(task="binary"), "precision": Precision(task="binary"),
            "recall": Recall(task="binary"), "f1": F1Score(task="binary"),
            "f1_macro": BinaryMacroF1(),
            "mcc": MatthewsCorrCoef(task="binary"), "auroc": AUROC(task="binary"),
            "auprc": AveragePrecision(task="binary"),
        })
    args = {"task": "multiclass", "num_classes": num_labels}
    return MetricCollection({
        "accuracy": Accuracy(**args, average="micro"), "precision": Precision(**args, average="macro"),
        "recall": Recall(**args, average="macro"), "f1": F1Score(**args, average="macro"),
        "mcc": MatthewsCorrCoef(**args), "auroc": AUROC(**args, average="macro"),
        "auprc": AveragePrecision(**args, average="macro"),
    })
