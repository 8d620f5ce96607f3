"""LightningDataModule for masked-k-mer pretraining on genome windows."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dnabert.data.distributed import evaluation_sampler
from dnabert.data.masking import NOISE_CHANNELS
from dnabert.data.windows import WindowSampler, holdout_regions
from dnabert.errors import DnabertError
from dnabert.genome.shards import GenomeShards, open_genome
from dnabert.tokenization import check_k, kmer_ids_from_codes, with_special_tokens


class WindowDataset(Dataset):
    """Window `index` of a split as k-mer ids plus its masking noise."""

    def __init__(self, sampler: WindowSampler, length: int):
        self.sampler = sampler
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[int, np.ndarray, np.ndarray]:
        codes, noise = self.sampler(index)
        return index, kmer_ids_from_codes(codes, self.sampler.k), noise


def collate_windows(items: Sequence[tuple[int, np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Pad windows to `[CLS] k-mers [SEP] [PAD]...` rows with their attention mask, noise and indices."""
    indices, ids, noises = zip(*items)
    n_kmers = np.array([len(x) for x in ids], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(n_kmers)[:-1]]).astype(np.int64)
    input_ids, attention_mask = with_special_tokens(np.concatenate(ids), starts, n_kmers)
    noise = np.zeros(input_ids.shape + (NOISE_CHANNELS,), dtype=np.float32)
    for row, values in enumerate(noises):
        noise[row, : len(values)] = values
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "noise": torch.from_numpy(noise),
        "index": torch.tensor(indices, dtype=torch.int64),
    }


class StepSampler(DistributedSampler):
    """Sample indices of this rank's micro-batches, continuing from the training position.

    Micro-batch `m` of rank `r` out of `R` holds windows `(m * R + r) * B ... + B - 1`, so one process with
    batch `R * B` sees exactly the windows that `R` processes with batch `B` see together. An epoch is a fixed
    number of micro-batches; `position()` (micro-batches already trained) makes a restart continue mid-epoch.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        batches_per_epoch: int,
        num_replicas: int = 1,
        rank: int = 0,
        position: Callable[[], int] = lambda: 0,
    ):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.position = position

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def __iter__(self) -> Iterator[int]:
        done = self.position()
        for batch in range(done, (done // self.batches_per_epoch + 1) * self.batches_per_epoch):
            first = (batch * self.num_replicas + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)


class GenomeDataModule(L.LightningDataModule):
    """Pretraining windows from a genome (FASTA, 2bit or shard directory), with a held-out validation part.

    With `length_grouping` the windows of one micro-batch (`batch_size` consecutive indices, see `StepSampler`)
    share one k-mer count drawn by DNABERT's rule, so batches carry almost no padding (the windows then depend on
    `batch_size` too); without it every window draws its own count, as DNABERT did.
    """

    def __init__(
        self,
        genome: str,
        cache_dir: str,
        k: int,
        max_tokens: int = 512,
        batch_size: int = 16,
        min_kmers: int = 5,
        full_length_fraction: float = 0.5,
        max_ambiguous_fraction: float = 0.05,
        reverse_complement: float = 0.0,
        length_grouping: bool = True,
        holdout_contigs: list[str] | None = None,
        holdout_fraction: float = 0.05,
        val_windows: int = 256,
        batches_per_epoch: int = 1000,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        check_k(k)
        if batch_size < 1 or val_windows < 1 or batches_per_epoch < 1:
            raise DnabertError("data.batch_size, data.val_windows and data.batches_per_epoch must be positive")
        if max_tokens < min_kmers + 2:
            raise DnabertError(f"data.max_tokens={max_tokens} must exceed data.min_kmers + 2 special tokens")
        if not Path(genome).exists():
            raise DnabertError(
                f"data.genome={genome}: not found; give a FASTA (.fa/.fa.gz), a .2bit file or a directory "
                "made by `dnabert prepare-genome`"
            )
        self.genome = genome
        self.cache_dir = cache_dir
        self.k = k
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.window_options = dict(
            k=k,
            max_kmers=max_tokens - 2,
            min_kmers=min_kmers,
            full_length_fraction=full_length_fraction,
            max_ambiguous_fraction=max_ambiguous_fraction,
            reverse_complement=reverse_complement,
            seed=seed,
            length_group=batch_size if length_grouping else 1,
        )
        self.holdout_contigs = list(holdout_contigs) if holdout_contigs else None
        self.holdout_fraction = holdout_fraction
        self.val_windows = val_windows
        self.batches_per_epoch = batches_per_epoch
        self.num_workers = num_workers
        self.shards: GenomeShards | None = None

    def prepare_data(self) -> None:
        """Build the genome's shards once (rank 0) when given a FASTA or 2bit file."""
        self.shards = open_genome(self.genome, self.cache_dir)

    def setup(self, stage: str | None = None) -> None:
        """Open the shards and split them into training and validation regions."""
        if self.shards is None:  # ranks other than 0 skip prepare_data
            self.shards = open_genome(self.genome, self.cache_dir, progress=False)
        train, val = holdout_regions(self.shards, self.holdout_contigs, self.holdout_fraction)
        self.train_windows = WindowSampler(self.shards, train, split="train", **self.window_options)
        self.val_windows_sampler = WindowSampler(self.shards, val, split="val", **self.window_options)

    def model_inputs(self) -> dict:
        """What a pretraining module built on this data is given: the token budget and the training sequence."""
        return {"max_tokens": self.max_tokens, "training_sequence": self.training_sequence}

    def training_sequence(self) -> str:
        """The training regions' sequence as text (after `setup`), for the local k-mer baseline."""
        return self.train_windows.sequence()

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        accumulate = trainer.accumulate_grad_batches if trainer else 1
        per_epoch = math.ceil(self.batches_per_epoch / accumulate) * accumulate
        dataset = WindowDataset(self.train_windows, length=2**62)
        sampler = StepSampler(
            dataset,
            self.batch_size,
            per_epoch,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            position=(lambda: trainer.global_step * accumulate) if trainer else (lambda: 0),
        )
        return self._loader(dataset, sampler)

    def val_dataloader(self) -> DataLoader:
        """The validation windows, each once over all ranks."""
        dataset = WindowDataset(self.val_windows_sampler, self.val_windows)
        return self._loader(dataset, evaluation_sampler(dataset, self.trainer))

    def _loader(self, dataset: Dataset, sampler: DistributedSampler | None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            collate_fn=collate_windows,
            num_workers=self.num_workers,
            persistent_workers=False,
        )
