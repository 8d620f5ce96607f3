"""Batched inference with a fine-tuned model: class probabilities (or values) for raw sequences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import BertForSequenceClassification

from dnabert.errors import DnabertError
from dnabert.models.checkpoints import ModelStart
from dnabert.models.inputs import batches, encode_batch, to_numpy
from dnabert.models.linear_probe import BertForProbeClassification, DNABertProbeConfig
from dnabert.models.long_sequence import BertForLongSequenceClassification, DNABertLongConfig
from dnabert.problems import output_values
from dnabert.tokenization import reverse_complement_text

CLASSIFIERS = ((DNABertLongConfig, BertForLongSequenceClassification), (DNABertProbeConfig, BertForProbeClassification))
"""Fine-tuned model class by config class (anything else: a plain BertForSequenceClassification)."""


def load_classifier(path: str | Path, device: str | torch.device = "cpu"
                    ) -> BertForSequenceClassification | BertForLongSequenceClassification:
    """A fine-tuned model from its HF directory or Lightning checkpoint, in eval mode on `device` (no code
    executed)."""
    start = ModelStart.read(path)
    config = start.config
    if config.num_labels is None or not getattr(config, "problem_type", None):
        raise DnabertError(f"{path}: not a fine-tuned model (no task head); fine-tune it with `train.py task=...`")
    model_class = next((model for kind, model in CLASSIFIERS if isinstance(config, kind)),
                       BertForSequenceClassification)
    return start.build(model_class).eval().to(device)


def output_names(model: BertForSequenceClassification) -> list[str]:
    """Class (or target) names in output order."""
    return [str(model.config.id2label[i]) for i in range(model.config.num_labels)]


def prediction_lines(model, names: list[str], values: np.ndarray) -> list[str]:
    """TSV lines (header first): name, one column per class or target, and the predicted class."""
    labels = output_names(model)
    problem = model.config.problem_type
    classification = problem == "single_label_classification"
    header = ["name", *(f"p_{label}" if problem != "regression" else label for label in labels)]
    lines = ["\t".join(header + (["prediction"] if classification else []))]
    for name, row in zip(names, values):
        cells = [name, *(f"{value:.6g}" for value in row)]
        lines.append("\t".join(cells + ([labels[int(row.argmax())]] if classification else [])))
    return lines


@torch.no_grad()
def predict(model: BertForSequenceClassification, sequences: list[str], batch_size: int = 64,
            max_tokens: int = 512, reverse_complement: bool = False, progress: bool = True) -> np.ndarray:
    """Probabilities per class (softmax), per label (sigmoid) or raw values, one row per sequence (in input order;
    batches are formed longest first, so a batch pads to lengths close to its own)."""
    order = np.argsort([-len(sequence) for sequence in sequences], kind="stable")
    rows = []
    for _, batch in batches([sequences[i] for i in order], batch_size, "predict", progress):
        strands = [batch, [reverse_complement_text(s) for s in batch]] if reverse_complement else [batch]
        outputs = []
        for strand in strands:
            _, inputs = encode_batch(model, strand, max_tokens)
            outputs.append(output_values(model(**inputs).logits, model.config.problem_type))
        rows.append(to_numpy(torch.stack(outputs).mean(0)))
    values = np.zeros((len(sequences), model.config.num_labels), dtype=np.float32)
    if rows:
        values[order] = np.concatenate(rows)
    return values


def load_ensemble(paths: list[str | Path], device: str | torch.device = "cpu") -> list[BertForSequenceClassification]:
    """Fine-tuned models to average (a deep ensemble, e.g. one model per seed): one task, any k."""
    models = [load_classifier(path, device) for path in paths]
    task = output_names(models[0]), models[0].config.problem_type
    for path, model in zip(paths[1:], models[1:]):
        if (output_names(model), model.config.problem_type) != task:
            raise DnabertError(f"{path}: predicts {output_names(model)} ({model.config.problem_type}) but "
                               f"{paths[0]} predicts {task[0]} ({task[1]}); an ensemble needs models of one task")
    return models


def predict_ensemble(models: list[BertForSequenceClassification], sequences: list[str], batch_size: int = 64,
                     max_tokens: int = 512, reverse_complement: bool = False, progress: bool = True) -> np.ndarray:
    """The mean of every model's `predict` output (probabilities, or values for regression)."""
    return np.mean([predict(model, sequences, batch_size, max_tokens, reverse_complement, progress)
                    for model in models], axis=0)
