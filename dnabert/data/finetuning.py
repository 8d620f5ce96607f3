"""LightningDataModule over labelled DNA sets (train / validation / test) for fine-tuning."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dnabert.data.distributed import evaluation_sampler
from dnabert.data.labelled import LabelledRows, check_lengths, encode_labels
from dnabert.data.labelled_layouts import read_labelled
from dnabert.data.overlap import grouped_holdout, overlap_groups
from dnabert.errors import DnabertError
from dnabert.problems import TASK_TYPES, LabelInfo
from dnabert.tokenization import batch_kmer_ids, check_k, nucleotides_read, say_truncated

FRACTION_STREAM = 1
"""Second seed word of the `data.train_fraction` draw (the validation hold-out draws from the seed alone)."""
FOLD_SEED = 0
"""Seed of the cross-validation folds' dealing (the run seed varies training only, so every run shares the folds)."""


class LabelledSplit(Dataset):
    """Sequences and encoded labels of one split."""

    def __init__(self, sequences: list[str], labels: np.ndarray, names: list[str]):
        self.sequences, self.labels, self.names = sequences, labels, names

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, str]:
        return self.sequences[index], self.labels[index], self.names[index]

    def subset(self, rows: np.ndarray) -> LabelledSplit:
        """The split's rows `rows`, in that order."""
        return LabelledSplit([self.sequences[i] for i in rows], self.labels[rows], [self.names[i] for i in rows])


def nested_fraction(strata: list[str], fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of `fraction` of the rows in every stratum (at least one each); for one seed the subsets of
    smaller fractions lie inside those of larger ones (each stratum's order is drawn once, from the seed)."""
    rng = np.random.default_rng([seed, FRACTION_STREAM])
    strata = np.asarray(strata)
    kept = []
    for stratum in sorted(set(strata.tolist())):
        rows = rng.permutation(np.flatnonzero(strata == stratum))
        kept.append(rows[: max(1, int(round(fraction * len(rows))))])
    return np.sort(np.concatenate(kept))


class ResumableShuffle(DistributedSampler):
    """This rank's share of a training epoch, shuffled from (seed, epoch), after the batches already trained in it.

    The epoch and the batches done are read from the trainer when iteration starts, so a run restarted from a
    mid-epoch checkpoint sees exactly the rest of that epoch, in the order an uninterrupted run would.
    """

    def __init__(self, dataset: Dataset, batch_size: int, trainer: L.Trainer, seed: int):
        super().__init__(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=True, seed=seed)
        self.batch_size = batch_size
        self.trainer = trainer

    def __iter__(self) -> Iterator[int]:
        self.set_epoch(self.trainer.current_epoch)
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.completed
        return itertools.islice(super().__iter__(), done * self.batch_size, None)


def stratified_folds(labels: list[str], folds: int, seed: int = FOLD_SEED) -> np.ndarray:
    """Fold index of every row: each class shuffled (seeded) and dealt round-robin, so folds stay balanced."""
    labels_array = np.array(labels)
    assignment = np.empty(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    dealt = 0
    for label in natural_order(set(labels)):
        members = rng.permutation(np.flatnonzero(labels_array == label))
        assignment[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return assignment


def natural_order(values: set[str]) -> list[str]:
    """Class names sorted numerically when they are all numbers ('2' < '10'), else alphabetically."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


class LabelledDataModule(L.LightningDataModule):
    """Fine-tuning data: TSV/CSV (or DNABERT k-mer TSV), FASTA (+ a label table) or class-folder splits; k comes
    from the model being fine-tuned.

    Without a validation file, `val_fraction` of the training rows (seeded) is held out, so model selection
    never sees the test split; with `val_overlap`, in whole groups of rows that share that many nucleotides (on
    either strand; transitively, so rows linked through others are grouped too). `train_fraction` keeps that
    fraction of the training file's rows first (stratified by class, nested across fractions for one seed), as
    if that were all the labelled data: a validation split is then held out of those rows. With `folds`, the
    training file's rows are dealt into that many stratified folds (the same for every seed): fold `fold` is the
    test split, the others train.
    """

    def __init__(
        self,
        train: str,
        test: str | None = None,
        val: str | None = None,
        val_fraction: float = 0.1,
        val_overlap: int | None = None,
        train_fraction: float = 1.0,
        folds: int | None = None,
        fold: int = 0,
        task_type: str = "classification",
        classes: list[str] | None = None,
        sequence_column: str = "sequence",
        label_columns: list[str] | None = None,
        labels: str | None = None,
        max_tokens: int = 512,
        overflow: str = "truncate",
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        k: int | None = None,
    ):
        super().__init__()
        if k is not None:
            check_k(k)
        if task_type not in TASK_TYPES:
            raise DnabertError(f"data.task_type={task_type!r}: use one of {', '.join(TASK_TYPES)}")
        if not 0 < train_fraction <= 1:
            raise DnabertError(f"data.train_fraction={train_fraction}: must lie in (0, 1] (1: every training row)")
        if val is None and not 0 < val_fraction < 1:
            raise DnabertError(f"data.val_fraction={val_fraction}: must lie between 0 and 1 when data.val is not given")
        if val_overlap is not None and (isinstance(val_overlap, bool) or not isinstance(val_overlap, int)
                                        or val_overlap < 1):
            raise DnabertError(f"data.val_overlap={val_overlap!r}: use a length in nucleotides (e.g. 50), or null")
        for key, value, least in (("batch_size", batch_size, 1), ("max_tokens", max_tokens, 3),
                                  ("num_workers", num_workers, 0)):
            if value < least:
                raise DnabertError(f"data.{key}={value}: must be at least {least}")
        if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2
                                  or test is not None or not 0 <= fold < folds):
            raise DnabertError(f"data.folds={folds}, data.fold={fold}: cross-validation deals data.train into 2 or "
                               "more folds and tests on fold 0 to folds-1 (data.test stays null)")
        for split, path in (("train", train), ("val", val), ("test", test)):
            if path is not None and not Path(path).exists():
                raise DnabertError(f"data.{split}={path}: file not found")
        if labels is not None and not Path(labels).is_file():
            raise DnabertError(f"data.labels={labels}: file not found")
        self.paths = {"train": train, "val": val, "test": test}
        self.val_fraction = val_fraction
        self.val_overlap = val_overlap
        self.train_fraction = train_fraction
        self.folds, self.fold = folds, fold
        self.task_type = task_type
        self.classes = [str(c) for c in classes] if classes else None
        self.read_options = {"sequence_column": sequence_column, "label_columns": label_columns, "labels": labels}
        self.max_tokens = max_tokens
        self.overflow = overflow
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.k = k
        self.splits: dict[str, LabelledSplit] = {}

    @cached_property
    def _rows(self) -> dict[str, LabelledRows]:
        """Every split's rows as read (checked against the training file's label columns and the model's k)."""
        rows = {split: read_labelled(path, **self.read_options) for split, path in self.paths.items() if path}
        train = rows["train"]
        for split in rows.values():
            if split.label_columns != train.label_columns:
                raise DnabertError(f"{split.path}: label columns {split.label_columns} differ from the training "
                                   f"file's {train.label_columns}")
            if self.k is not None:
                if split.kmer_size not in (None, self.k):
                    raise DnabertError(f"{split.path}: written as {split.kmer_size}-mers but the model uses "
                                       f"k={self.k}; use a DNABERT-{split.kmer_size} model or re-write the file")
                check_lengths(split.sequences, split.places, self.k)
        return rows

    @cached_property
    def label_info(self) -> LabelInfo:
        """What the head predicts, fixed by the training rows (or `classes`)."""
        train = self._rows["train"]
        if self.task_type != "classification":
            return LabelInfo(self.task_type, train.label_columns)
        names = self.classes or natural_order({labels[0] for labels in train.labels})
        if len(names) < 2:
            raise DnabertError(f"{train.path}: only one class ({names[0]!r}); classification needs at least two")
        return LabelInfo(self.task_type, names)

    def model_inputs(self) -> dict:
        """What a fine-tuning module built on this data is given: the labels and the token budget."""
        return {"labels": self.label_info, "max_tokens": self.max_tokens, "overflow": self.overflow}

    def setup(self, stage: str | None = None) -> None:
        """Read every split, fix the label set from the training rows, hold out validation rows if needed."""
        if self.splits:
            return
        train = self._rows["train"]
        names = self.label_info.names
        if self.overflow == "truncate" and self.k is not None and rank_zero_only.rank == 0:
            for split, rows in self._rows.items():
                say_truncated(rows.sequences, nucleotides_read(self.k, self.max_tokens), f"data.{split} {rows.path}",
                              "raise data.max_tokens (up to the model's positions) or read them whole with "
                              "data.overflow=split")
        encoded = {split: encode_labels(rows, self.task_type, names) for split, rows in self._rows.items()}
        for split, rows in self._rows.items():
            self.splits[split] = LabelledSplit(rows.sequences, encoded[split], rows.names)
        train_labels = train.labels
        if self.folds:
            assignment = stratified_folds([labels[0] for labels in train.labels], self.folds)
            kept = np.flatnonzero(assignment != self.fold)
            self.splits["test"] = self.splits["train"].subset(np.flatnonzero(assignment == self.fold))
            self.splits["train"] = self.splits["train"].subset(kept)
            train_labels = [train.labels[row] for row in kept]
        if self.train_fraction < 1:
            strata = [labels[0] if self.task_type == "classification" else "" for labels in train_labels]
            self.splits["train"] = self.splits["train"].subset(nested_fraction(strata, self.train_fraction, self.seed))
        if "val" not in self.splits:
            rng = np.random.default_rng(self.seed)
            full = self.splits["train"]
            n_rows = len(full)
            n_val = max(1, int(round(self.val_fraction * n_rows)))
            if n_val >= n_rows:
                raise DnabertError(f"{train.path}: too few rows ({n_rows}) to hold out a validation split")
            held = (self._overlap_holdout(full.sequences, n_val, rng) if self.val_overlap
                    else np.sort(rng.permutation(n_rows)[:n_val]))
            rest = np.setdiff1d(np.arange(n_rows), held)
            self.splits["val"], self.splits["train"] = full.subset(held), full.subset(rest)

    def _overlap_holdout(self, sequences: list[str], n_val: int, rng: np.random.Generator) -> np.ndarray:
        """Validation rows drawn in whole groups of rows that share `val_overlap` nt."""
        train = self._rows["train"]
        groups = overlap_groups(sequences, self.val_overlap)
        held = grouped_holdout(groups, n_val, rng)
        if held.size == 0:
            smallest = np.unique(groups, return_counts=True)[1].min()
            raise DnabertError(f"{train.path}: the smallest group of rows sharing {self.val_overlap} nt holds "
                               f"{smallest} rows, more than the {n_val} validation rows; raise data.val_fraction, "
                               "lower data.val_overlap or give data.val")
        if held.size < n_val:
            rank_zero_warn(f"{train.path}: held out {held.size} of {n_val} validation rows (the groups of rows sharing "
                           f"{self.val_overlap} nt left no smaller group to fill the rest)")
        return held

    def collate(self, items: list[tuple[str, np.ndarray, str]]) -> dict[str, torch.Tensor]:
        """Tokenize a batch with its labels; long sequences are truncated, or split into chunk rows."""
        sequences, labels, _ = zip(*items)
        encoded = batch_kmer_ids(list(sequences), self.k, self.max_tokens, self.overflow)
        return {**encoded.tensors(chunks=self.overflow == "split"), "labels": torch.from_numpy(np.stack(labels))}

    def _loader(self, split: str, sampler: DistributedSampler | None = None) -> DataLoader:
        if split not in self.splits:
            raise DnabertError(f"no {split} split: set data.{split}=FILE")
        if self.k is None:
            raise DnabertError("the data module has no k: give LabelledDataModule(k=...) (train() passes the model's)")
        return DataLoader(self.splits[split], batch_size=self.batch_size, sampler=sampler, collate_fn=self.collate,
                          num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", ResumableShuffle(self.splits["train"], self.batch_size, self.trainer, self.seed))

    def _evaluation_loader(self, split: str) -> DataLoader:
        """A validation or test split, each row once over all ranks, in input order within each rank."""
        sampler = evaluation_sampler(self.splits[split], self.trainer) if split in self.splits else None
        return self._loader(split, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")
