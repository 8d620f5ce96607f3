"""Reference models that need no pretraining, scored on the same splits as dnabert runs: logistic regression on
4-mer counts (of the whole sequence, or of each third), on one-hot sequence, and a small one-hot CNN."""

from __future__ import annotations

import functools

import numpy as np
import torch

from dnabert.data.finetuning import natural_order
from dnabert.data.labelled import LabelledRows
from dnabert.models.metrics import task_metrics
from dnabert.problems import metric_inputs
from dnabert.tokenization import CODE_TABLE, NUM_SPECIAL, batch_kmer_ids, vocab_size


def kmer_counts(sequences: list[str], k: int) -> np.ndarray:
    """Normalised counts of every k-mer (DNABERT's vocabulary order) per sequence; k-mers with N are skipped."""
    ids = batch_kmer_ids(sequences, k, max_tokens=max(map(len, sequences)) + 2).input_ids
    counts = np.zeros((len(sequences), vocab_size(k)), dtype=np.float32)
    np.add.at(counts, (np.arange(len(ids))[:, None], ids), 1)
    counts = counts[:, NUM_SPECIAL:]
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)


def kmer_counts_by_third(sequences: list[str], k: int = 4) -> np.ndarray:
    """`kmer_counts` of each third of equal-length sequences, side by side: k-mer content with coarse position."""
    edges = np.linspace(0, len(sequences[0]), 4).astype(int)
    return np.concatenate([kmer_counts([s[a:b] for s in sequences], k) for a, b in zip(edges, edges[1:])], axis=1)


def one_hot(sequences: list[str]) -> np.ndarray:
    """Position-specific one-hot encoding of equal-length sequences (ambiguous bases: all zeros)."""
    codes = CODE_TABLE[np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8)]
    return np.eye(5, dtype=np.float32)[codes.reshape(len(sequences), -1)][..., :4].reshape(len(sequences), -1)


def logistic_regression(train_x, train_y, test_x, classes: int, l2: float = 1e-3) -> np.ndarray:
    """Multinomial logistic regression (L-BFGS, L2 penalty, standardised features); test logits."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.from_numpy((train_x - mean) / std)
    y = torch.from_numpy(train_y)
    weights = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weights + bias, y) + l2 * weights.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return (torch.from_numpy((test_x - mean) / std) @ weights + bias)


def cnn(train_x, train_y, test_x, classes: int, epochs: int, batch_size: int = 64) -> torch.Tensor:
    """A two-layer 1-D CNN on one-hot sequences (a supervised reference without tokens); test logits.

    Conv 15 nt x 128, max-pool 4, conv 7 x 128, global max-pool, linear; dropout 0.3, AdamW lr 1e-3, seed 0,
    the last epoch's weights (no validation split: a reference, not a tuned model).
    """
    torch.manual_seed(0)

    def channels(features: np.ndarray) -> torch.Tensor:  # (n, length x 4) one-hot -> (n, 4, length)
        return torch.from_numpy(features).view(len(features), -1, 4).transpose(1, 2)

    x, y = channels(train_x), torch.from_numpy(train_y)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(4, 128, 15, padding=7), torch.nn.ReLU(), torch.nn.MaxPool1d(4), torch.nn.Dropout(0.3),
        torch.nn.Conv1d(128, 128, 7, padding=3), torch.nn.ReLU(), torch.nn.AdaptiveMaxPool1d(1), torch.nn.Flatten(),
        torch.nn.Dropout(0.3), torch.nn.Linear(128, classes))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(batch_size):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        return net(channels(test_x))


def baseline_rows(train: LabelledRows, test: LabelledRows, cnn_epochs: int = 0) -> dict[str, dict[str, float]]:
    """Test metrics (`test/...`, as train.py writes them) of logistic regression on 4-mer counts (of the whole
    sequence and of each third) and on one-hot sequence, and of the one-hot CNN when `cnn_epochs` > 0. All but the
    first need equal-length sequences and are left out without.
    """
    classes = natural_order({labels[0] for labels in train.labels})
    lookup = {name: i for i, name in enumerate(classes)}
    train_y = np.array([lookup[labels[0]] for labels in train.labels])
    test_y = torch.tensor([lookup[labels[0]] for labels in test.labels])
    rows = {}
    models = [("4-mer logistic regression", lambda s: kmer_counts(s, 4), logistic_regression),
              ("4-mer-per-third logistic regression", kmer_counts_by_third, logistic_regression),
              ("one-hot logistic regression", one_hot, logistic_regression)]
    if cnn_epochs:
        models.append((f"one-hot CNN, {cnn_epochs} epochs", one_hot,
                       functools.partial(cnn, epochs=cnn_epochs)))
    featurised = {}  # each featuriser runs once, however many models read its features
    for name, features, model in models:
        if features in (kmer_counts_by_third, one_hot) and len({len(s) for s in train.sequences + test.sequences}) > 1:
            continue
        if features not in featurised:
            featurised[features] = features(train.sequences), features(test.sequences)
        train_x, test_x = featurised[features]
        logits = model(train_x, train_y, test_x, len(classes))
        metrics = task_metrics("classification", len(classes))
        metrics.update(metric_inputs("classification", logits), test_y)
        rows[name] = {f"test/{key}": float(value) for key, value in metrics.compute().items()}
    return rows
