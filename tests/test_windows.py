"""Pretraining windows: DNABERT's length mix, N filtering, reverse complement, hold-out, ranks and resume."""

from __future__ import annotations

import numpy as np
import pytest

from dnabert.data.pretraining import GenomeDataModule, StepSampler, WindowDataset
from dnabert.data.windows import WindowSampler, holdout_regions
from dnabert.errors import DnabertError
from dnabert.genome.shards import GenomeShards, prepare_genome
from dnabert.tokenization import reverse_complement
from tests.conftest import data_file
from tests.test_genome import write_fasta


@pytest.fixture(scope="module")
def chr22(tmp_path_factory) -> GenomeShards:
    source = data_file("hg19_chr22_300kb.fa.gz")
    return GenomeShards(prepare_genome(source, tmp_path_factory.mktemp("g") / "chr22", progress=False))


def test_length_mix_and_ambiguity_filter(chr22):
    train, _ = holdout_regions(chr22)
    sampler = WindowSampler(chr22, train, k=6, max_kmers=510, max_ambiguous_fraction=0.0, seed=3)
    lengths = []
    for index in range(600):
        codes, noise = sampler(index)
        assert not (codes == 4).any()
        n_kmers = len(codes) - 5
        assert noise.shape == (n_kmers + 2, 3)
        lengths.append(n_kmers)
    lengths = np.array(lengths)
    full = np.mean(lengths == 510)
    assert 0.45 < full < 0.62  # half full-length, plus the few random lengths clipped by short blocks
    short = lengths[lengths < 510]
    assert short.min() >= 5 and abs(np.median(short) - 257) < 50


def test_windows_are_a_pure_function_of_seed_and_index(chr22):
    train, _ = holdout_regions(chr22)
    a = WindowSampler(chr22, train, k=6, max_kmers=510, seed=1)
    b = WindowSampler(chr22, train, k=6, max_kmers=510, seed=1)
    c = WindowSampler(chr22, train, k=6, max_kmers=510, seed=2)
    assert all(np.array_equal(a(i)[0], b(i)[0]) for i in (5, 17, 10_000_000))
    assert not all(np.array_equal(a(i)[0], c(i)[0]) for i in range(5))


def test_holdout_whole_contigs_from_the_end_or_named(chr22, tmp_path):
    train, val = holdout_regions(chr22, fraction=0.05)
    assert set(train.contig).isdisjoint(val.contig)
    assert val.contig.min() > train.contig.max()  # the blocks are in coordinate order: a held-out tail
    assert 0.05 <= val.total / chr22.lengths.sum() < 0.06
    names = [chr22.contigs[i].name for i in (0, 7)]
    train, val = holdout_regions(chr22, contigs=names)
    assert sorted(val.contig.tolist()) == [0, 7] and 0 not in train.contig
    with pytest.raises(DnabertError, match="no contig named 'chrZ'"):
        holdout_regions(chr22, contigs=["chrZ"])
    single = GenomeShards(prepare_genome(write_fasta(tmp_path / "one.fa", {"x": "ACGT" * 250}), tmp_path / "s", False))
    train, val = holdout_regions(single, fraction=0.1)
    assert (train.start[0], train.end[0], val.start[0], val.end[0]) == (0, 900, 900, 1000)
    sampler = WindowSampler(single, val, k=6, max_kmers=510, split="val")
    assert all(len(sampler(i)[0]) <= 100 for i in range(20))


def test_reverse_complement():
    codes = np.array([0, 2, 3, 1, 4, 1], dtype=np.uint8)  # A C G T N T
    assert reverse_complement(codes).tolist() == [0, 4, 0, 2, 3, 1]  # A N A C G T


def test_ranks_see_disjoint_windows_that_add_up_to_the_single_process_batch(ecoli, tmp_path):
    module = GenomeDataModule(str(ecoli), str(tmp_path), k=6, batch_size=4)
    module.prepare_data()
    module.setup()
    dataset = WindowDataset(module.train_windows, 2**62)
    ranks = [list(StepSampler(dataset, 4, 10, num_replicas=2, rank=r)) for r in (0, 1)]
    single = list(StepSampler(dataset, 8, 10))
    assert set(ranks[0]).isdisjoint(ranks[1])
    for step in range(10):
        both = ranks[0][step * 4 : step * 4 + 4] + ranks[1][step * 4 : step * 4 + 4]
        assert sorted(both) == single[step * 8 : step * 8 + 8]
    resumed = list(StepSampler(dataset, 4, 10, num_replicas=2, rank=1, position=lambda: 6))
    assert resumed == ranks[1][6 * 4 :]
