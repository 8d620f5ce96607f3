"""Length grouping: a micro-batch's windows share one k-mer count, padding vanishes, the length mix stays DNABERT's;
`predict` batches sequences by length and answers in input order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnabert.data.pretraining import GenomeDataModule
from dnabert.data.windows import WindowSampler, holdout_regions
from dnabert.genome.shards import GenomeShards, prepare_genome
from tests.conftest import data_file, genome_text

BATCH = 8


@pytest.fixture(scope="module")
def chr22(tmp_path_factory) -> GenomeShards:
    source = data_file("hg19_chr22_300kb.fa.gz")
    return GenomeShards(prepare_genome(source, tmp_path_factory.mktemp("g") / "chr22", progress=False))


def batches(shards: GenomeShards, grouping: bool, count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """The first `count` training batches of a data module over `shards`."""
    module = GenomeDataModule(str(shards.directory), "unused", k=6, batch_size=BATCH, length_grouping=grouping,
                              seed=seed)
    module.setup()
    loader = iter(module.train_dataloader())
    return [next(loader) for _ in range(count)]


def padding(rows: list[dict[str, torch.Tensor]]) -> float:
    """Fraction of padded positions over all batches."""
    real = sum(int(b["attention_mask"].sum()) for b in rows)
    return 1 - real / sum(b["attention_mask"].numel() for b in rows)


def test_grouping_removes_padding(chr22):
    assert padding(batches(chr22, grouping=True, count=60)) < 0.05
    assert padding(batches(chr22, grouping=False, count=60)) > 0.15  # DNABERT's per-window lengths


def test_length_mix_is_dnabert_rule(chr22):
    train, _ = holdout_regions(chr22)
    grouped = WindowSampler(chr22, train, k=6, max_kmers=510, max_ambiguous_fraction=0.0, seed=3,
                            length_group=BATCH)
    kmers = np.array([len(grouped(i)[0]) - 5 for i in range(400 * BATCH)]).reshape(400, BATCH)
    group_length = kmers.max(axis=1)
    assert np.mean(kmers == group_length[:, None]) > 0.97  # only windows clipped by a short block differ
    assert 0.43 < np.mean(group_length == 510) < 0.57  # half the batches full length
    short = group_length[group_length < 510]
    assert short.min() >= 5 and abs(np.median(short) - 257) < 40  # the rest uniform in 5..510
    fresh = WindowSampler(chr22, train, k=6, max_kmers=510, max_ambiguous_fraction=0.0, seed=3,
                          length_group=BATCH)
    assert all(np.array_equal(fresh(i)[0], grouped(i)[0]) for i in (1234, 37, 5))  # any order: pure in the index


def test_grouped_windows_are_deterministic(chr22):
    first, again = batches(chr22, True, 6), batches(chr22, True, 6)
    assert all(torch.equal(a[key], b[key]) for a, b in zip(first, again) for key in a)
    other_seed = batches(chr22, True, 6, seed=1)
    assert not all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(first, other_seed))


def test_predict_sorts_by_length_and_answers_in_input_order():
    from transformers import BertConfig, BertForSequenceClassification

    from dnabert.models.inference import predict
    from dnabert.tokenization import kmer_vocab

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(kmer_vocab(6)), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, num_labels=3, problem_type="single_label_classification",
                        initializer_range=0.5)
    config.k = 6
    model = BertForSequenceClassification(config).eval()
    genome = genome_text(data_file("ecoli_k12_300kb.fa.gz"))
    lengths = np.random.default_rng(0).integers(6, 300, size=23)
    sequences = [genome[1000 * i : 1000 * i + n] for i, n in enumerate(lengths)]
    alone = np.concatenate([predict(model, [sequence], progress=False) for sequence in sequences])
    together = predict(model, sequences, batch_size=4, progress=False)
    assert alone.std(0).max() > 0.1  # the sequences get different answers, so a reordering would show
    np.testing.assert_allclose(together, alone, atol=1e-5)
