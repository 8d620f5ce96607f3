"""Figures of nucleotide scores (PNG + SVG, matplotlib's Agg backend): tracks, per-head maps, aligned summaries."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from dnabert.atomic import open_atomic  # noqa: E402

LETTERS_UP_TO = 120
"""Tracks of sequences up to this length get their nucleotides written under the axis."""


def save_figure(figure: plt.Figure, stem: Path) -> list[Path]:
    """Write `stem.png` and `stem.svg` atomically and close the figure."""
    paths = []
    for suffix in (".png", ".svg"):
        path = stem.with_suffix(suffix)
        with open_atomic(path, "wb") as handle:
            figure.savefig(handle, format=suffix[1:], dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(figure)
    return paths


def plot_track(stem: Path, name: str, sequence: str, scores: np.ndarray, label: str) -> list[Path]:
    """Scores along one sequence (1-based positions), nucleotides on the axis for short sequences."""
    positions = np.arange(1, len(scores) + 1)
    figure, axis = plt.subplots(figsize=(min(max(6.0, len(scores) / 12), 18), 2.6))
    colours = np.where(np.nan_to_num(scores) >= 0, "#3b6ea8", "#c0504d")
    axis.bar(positions, np.nan_to_num(scores), width=1.0, color=colours, linewidth=0)
    axis.axhline(0, color="black", linewidth=0.5)
    axis.set_xlim(0.5, len(scores) + 0.5)
    axis.set_ylabel(label)
    axis.set_title(name, fontsize=10)
    if len(sequence) <= LETTERS_UP_TO:
        axis.set_xticks(positions, list(sequence), fontsize=6, family="monospace")
        axis.set_xlabel("nucleotide")
    else:
        axis.set_xlabel("position (nt)")
    return save_figure(figure, stem)


def plot_attention_maps(stem: Path, name: str, maps: np.ndarray) -> list[Path]:
    """A grid of attention matrices, one row per layer and one column per head (query down, key across)."""
    layers, heads = maps.shape[:2]
    figure, axes = plt.subplots(layers, heads, figsize=(1.6 * heads + 1, 1.6 * layers + 0.6), squeeze=False)
    for layer in range(layers):
        for head in range(heads):
            axis = axes[layer, head]
            axis.imshow(maps[layer, head], cmap="viridis", vmin=0, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if layer == 0:
                axis.set_title(f"head {head + 1}", fontsize=8)
            if head == 0:
                axis.set_ylabel(f"layer {layer + 1}", fontsize=8)
    figure.suptitle(f"{name}: attention per layer and head (query down, key across; [CLS] k-mers [SEP]; "
                     "each panel scaled 0 to its maximum)", fontsize=9)
    return save_figure(figure, stem)


def summary_rows(scores: np.ndarray, max_rows: int = 1000, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray, int]:
    """Heatmap rows (means over blocks of consecutive sequences, at most `max_rows`), the mean profile over all
    sequences, and the block size; `scores` (a memory map) is read a chunk at a time, so memory stays flat."""
    count, width = scores.shape
    block = max(1, -(-count // max_rows))
    step = block * max(1, chunk // block)
    sums, counts, rows = np.zeros(width), np.zeros(width), []
    with np.errstate(all="ignore"):
        for start in range(0, count, step):
            piece = np.asarray(scores[start : start + step], dtype=np.float64)
            sums += np.nansum(piece, axis=0)
            counts += np.isfinite(piece).sum(axis=0)
            padded = np.full((-(-len(piece) // block) * block, width), np.nan)
            padded[: len(piece)] = piece
            blocks = padded.reshape(-1, block, width)
            rows.append(np.nansum(blocks, axis=1) / np.isfinite(blocks).sum(axis=1))
        profile = sums / counts
    return np.concatenate(rows), profile, block


def plot_summary(stem: Path, scores: np.ndarray, align_at: int, label: str, signed: bool) -> list[Path]:
    """All sequences as heatmap rows with position `align_at` (1-based) at 0, under their mean profile
    (above 1,000 sequences, each row is the mean of a block of consecutive sequences)."""
    rows, profile, block = summary_rows(scores)
    offsets = np.arange(scores.shape[1]) + 1 - align_at
    figure, (top, heatmap) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [1, 3]})
    top.plot(offsets, profile, color="#3b6ea8", linewidth=1)
    top.set_ylabel(f"mean {label}")
    top.axvline(0, color="grey", linewidth=0.5, linestyle="--")
    limit = (float(np.nanmax(np.abs(rows))) if np.isfinite(rows).any() else 0.0) or 1.0
    norm = TwoSlopeNorm(0, -limit, limit) if signed else None
    image = heatmap.imshow(rows, aspect="auto", cmap="RdBu_r" if signed else "viridis", norm=norm,
                           extent=(offsets[0] - 0.5, offsets[-1] + 0.5, len(scores) + 0.5, 0.5))
    heatmap.set_xlabel(f"position relative to nucleotide {align_at} (nt)")
    heatmap.set_ylabel("sequence" if block == 1 else f"sequence (rows: means of {block})")
    figure.colorbar(image, ax=[top, heatmap], label=label, shrink=0.6)
    return save_figure(figure, stem)
