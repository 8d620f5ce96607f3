"""Attention and integrated-gradients scores per nucleotide: the rule by hand, the fast path, the CLI on real data."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from dnabert.cli import main
from dnabert.errors import DnabertError
from dnabert.interpret.attention import nucleotide_attention
from dnabert.interpret.attribution import (
    KmerSums,
    attribution_batches,
    hypothetical_contributions,
    kmer_token_ids,
    model_head,
    one_hot,
    path_gradients,
)
from dnabert.interpret.nucleotides import nucleotide_rows, spread_to_nucleotides
from dnabert.interpret.report import Interval, genomic_intervals, write_scores
from dnabert.models.checkpoints import save_hf_directory
from dnabert.models.inference import load_classifier, predict
from dnabert.models.inputs import encode_batch
from dnabert.models.long_sequence import BertForLongSequenceClassification, DNABertLongConfig
from dnabert.tokenization import batch_kmer_ids, kmer_vocab, vocab_size
from tests.conftest import data_file

TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
        "attention_probs_dropout_prob": 0.0}
"""conf/model/tiny.yaml's sizes."""


def tiny_config(k: int, max_positions: int = 512, config_class=BertConfig, **extra) -> BertConfig:
    config = config_class(vocab_size=vocab_size(k), max_position_embeddings=max_positions, num_labels=2,
                          problem_type="single_label_classification", id2label={0: "MafK", 1: "Oct4"},
                          label2id={"MafK": 0, "Oct4": 1}, **TINY, **extra)
    config.k = k
    return config


def random_sequences(lengths: list[int], seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), n)) for n in lengths]


def test_worked_example_k3_eight_nucleotides():
    # 8 nt, k=3: 6 k-mers scored 1..6. Covering k-mers per nucleotide: {1} {1,2} {1,2,3} {2,3,4} {3,4,5}
    # {4,5,6} {5,6} {6} -> means 1, 1.5, 2, 3, 4, 5, 5.5, 6; squares sum to 123.5, sqrt = 11.113055
    scores = spread_to_nucleotides(torch.tensor([[1.0, 2, 3, 4, 5, 6]]), torch.tensor([6]), k=3)
    expected = [0.0899843, 0.1349764, 0.1799685, 0.2699528, 0.3599370, 0.4499213, 0.4949134, 0.5399055]
    assert scores[0].tolist() == pytest.approx(expected, abs=1e-6)
    # the spec's example (6 nt, s = 1..4): [1, 1.5, 2, 3, 3.5, 4] / sqrt(44.5), sqrt(44.5) = 6.670832
    scores = spread_to_nucleotides(torch.tensor([[1.0, 2, 3, 4]]), torch.tensor([4]), k=3)
    assert scores[0].tolist() == pytest.approx([0.1499063, 0.2248595, 0.2998127, 0.4497190, 0.5246722, 0.5996253],
                                               abs=1e-6)
    raw = spread_to_nucleotides(torch.tensor([[1.0, 2, 3, 4]]), torch.tensor([4]), k=3, normalise=False)
    assert raw[0].tolist() == [1.0, 1.5, 2.0, 3.0, 3.5, 4.0]


def test_worked_example_k6_eight_nucleotides():
    # 8 nt, k=6: 3 k-mers scored 3, 6, 9 covering nt 0-5, 1-6, 2-7 -> means 3, 4.5, 6, 6, 6, 6, 7.5, 9;
    # squares sum to 310.5, sqrt = 17.621010
    scores = spread_to_nucleotides(torch.tensor([[3.0, 6, 9]]), torch.tensor([3]), k=6)
    expected = [0.1702513, 0.2553770, 0.3405026, 0.3405026, 0.3405026, 0.3405026, 0.4256283, 0.5107539]
    assert scores[0].tolist() == pytest.approx(expected, abs=1e-6)


def test_only_real_kmers_are_read_and_the_rest_is_nan():
    # k=3: 'ACGTACGT' (6 k-mers), 'ACGTA' (3 k-mers), 'AC' (none); max_tokens=7 truncates the first to 5 k-mers
    sequences = ["ACGTACGT", "ACGTA", "AC"]
    encoded = batch_kmer_ids(sequences, 3, max_tokens=7)
    big = 1000.0  # on [CLS], [SEP] and [PAD]: must never reach a nucleotide
    token_scores = torch.tensor([[big, 1, 2, 3, 4, 5, big],
                                 [big, 2, 2, 2, big, big, big],
                                 [big, big, big, big, big, big, big]])
    first, second, third = nucleotide_rows(token_scores, encoded, [len(s) for s in sequences], 3, normalise=False)
    # 5 k-mers cover 7 nt: 1, 1.5, 2, 3, 4, 4.5, 5; the 8th nucleotide is not read
    assert first[:7].tolist() == [1.0, 1.5, 2.0, 3.0, 4.0, 4.5, 5.0] and np.isnan(first[7])
    assert second.tolist() == [2.0] * 5
    assert third.shape == (2,) and np.isnan(third).all()


def test_names_become_intervals_only_when_they_match_the_sequence_length(tmp_path, capsys):
    sequences = ["ACGTAC", "ACGTAC", "ACGTAC"]
    assert genomic_intervals(["chr1:100-106", "x::chr2:1,001-1,006", "chr3:10-16(-)"], sequences) == [
        Interval("chr1", 100, False), Interval("chr2", 1000, False), Interval("chr3", 10, True)]  # 1-based: 1001-1006
    assert genomic_intervals(["chr1:100-106", "chr1:100-200"], sequences[:2]) is None
    assert genomic_intervals(["chr1:100-106", "peak7"], sequences[:2]) is None
    model = BertForSequenceClassification(tiny_config(3))
    scores = np.arange(1, 7, dtype=np.float32)
    write_scores(tmp_path, model, ["chr3:10-16(-)"], sequences[:1], [([scores], np.array([[0.5, 0.5]]))], "test")
    lines = (tmp_path / "scores.bedGraph").read_text().splitlines()[1:]
    assert lines[0] == "chr3\t10\t11\t6" and lines[-1] == "chr3\t15\t16\t1"  # minus strand: last base first
    capsys.readouterr()
    mixed = tmp_path / "mixed"  # one name that is not an interval: no bedGraph, said in one line
    write_scores(mixed, model, ["chr3:10-16", "peak7"], sequences[:2], [([scores, scores], np.full((2, 2), 0.5))],
                 "test")
    assert not (mixed / "scores.bedGraph").exists() and (mixed / "scores.tsv").exists()
    assert capsys.readouterr().err.splitlines() == [
        "dnabert: warning: no scores.bedGraph: 1 of 2 sequence names are not their genomic interval, the first "
        "'peak7' (not CHROM:START-END); name every sequence CHROM:START-END (0-based, half-open) for a bedGraph"]
    write_scores(tmp_path / "plain", model, ["peak1", "peak7"], sequences[:2],
                 [([scores, scores], np.full((2, 2), 0.5))], "test")
    assert capsys.readouterr().err == ""  # names that are no intervals at all: no bedGraph expected, nothing said


def test_attribute_refuses_long_sequence_models():
    model = BertForLongSequenceClassification(tiny_config(6, 64, DNABertLongConfig))
    with pytest.raises(DnabertError, match="long-sequence"):
        next(attribution_batches(model, ["ACGTACGT"], target=1))


def eager_cls_attention(model, inputs: dict) -> torch.Tensor:
    """The reference: every attention matrix from the eager implementation, last layer, [CLS] row, heads summed."""
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            attentions = model.bert(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                    output_attentions=True).attentions
    finally:
        model.set_attn_implementation("sdpa")
    return attentions[-1][:, :, 0].sum(1)


@pytest.mark.parametrize("long", [False, True])
def test_fast_path_equals_eager_attention(long):
    torch.manual_seed(0)
    model_class = BertForLongSequenceClassification if long else BertForSequenceClassification
    config = tiny_config(6, 64, DNABertLongConfig if long else BertConfig)
    model = model_class._from_config(config, attn_implementation="sdpa").eval()
    sequences = random_sequences([5, 20, 45, 67, 150])  # too short, padded, full, truncated / split in 3 chunks
    fast = [array for batch in nucleotide_attention(model, sequences, batch_size=5, max_tokens=64, progress=False)
            for array in batch]
    encoded, inputs = encode_batch(model, sequences, 64)
    reference = nucleotide_rows(eager_cls_attention(model, inputs), encoded, [len(s) for s in sequences], 6)
    for sequence, ours, theirs in zip(sequences, fast, reference):
        assert ours.dtype == np.float32 and ours.shape == (len(sequence),)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    scored = 150 if long else 67
    assert np.isnan(fast[0]).all() and not np.isnan(fast[4][:scored]).any() and np.isnan(fast[4][scored:]).all()
    assert np.linalg.norm(fast[4][:scored]) == pytest.approx(1.0, abs=1e-5)


def read_tsv(path) -> list[dict]:
    return list(csv.DictReader(open(path), delimiter="\t"))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny DNABERT-6 classifier trained briefly on real Oct4 vs MafK ChIP-seq peaks, as an HF directory."""
    rows = read_tsv(data_file("oct4_mafk_train_400.tsv"))
    rows = rows[:96] + rows[-96:]
    torch.manual_seed(0)
    model = BertForSequenceClassification._from_config(tiny_config(6), attn_implementation="sdpa")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    order = np.random.default_rng(0).permutation(len(rows))
    for step in range(12):  # a few steps on the peaks' central 100 nt: enough to move the logits
        batch = [rows[i] for i in order[step * 16 : (step + 1) * 16]]
        _, inputs = encode_batch(model, [r["sequence"][50:150] for r in batch], 512)
        labels = torch.tensor([int(r["label"]) for r in batch])
        loss = model(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_hf_directory(model.eval(), tmp_path_factory.mktemp("model") / "oct4.hf")


@pytest.fixture(scope="module")
def peaks(tmp_path_factory):
    """12 real test peaks of decreasing length, named by their hg19 interval (0-based, half-open)."""
    path = tmp_path_factory.mktemp("peaks") / "peaks.tsv"
    lines = ["name\tsequence"]
    for i, row in enumerate(read_tsv(data_file("oct4_mafk_test_50.tsv"))[::4][:12]):  # every 16th of the test split
        chrom, span = row["region_hg19"].split(":")
        start = int(span.split("-")[0])
        length = 200 - 10 * i
        lines.append(f"{chrom}:{start}-{start + length}\t{row['sequence'][:length]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_integrated_gradients_on_a_hand_worked_two_base_product():
    # k = 2, one hidden unit, the table 1 at "AC" and 0 elsewhere, the head the sum: f(x) = x[0, A] * x[1, C] at
    # "AC". Along the line from 0.25 everywhere, x[0, A] = x[1, C] = 0.25 + 0.75 a, so df/dx[0, A] = 0.25 + 0.75 a,
    # whose midpoint average is 0.625 for any number of steps; the other bases: 0
    table = torch.zeros(16, 1)
    table[0 * 4 + 1] = 1.0  # "AC" in ACGT base-4 order
    gradients = path_gradients(lambda kmers: kmers.sum(1), torch.tensor([[0, 1]]), torch.tensor([1]),
                               KmerSums.of(table, 2), torch.zeros(1), target=0, steps=7)
    torch.testing.assert_close(gradients, torch.tensor([[[0.625, 0, 0, 0], [0, 0.625, 0, 0]]]))
    hypothetical = hypothetical_contributions(gradients)
    torch.testing.assert_close(hypothetical[0, 0], torch.tensor([0.46875, -0.15625, -0.15625, -0.15625]))
    contributions = (hypothetical * torch.eye(4)[[0, 1]]).sum(-1)
    torch.testing.assert_close(contributions, torch.tensor([[0.46875, 0.46875]]))  # both positive: f rises with each
    assert contributions.sum().item() == pytest.approx(1 - 0.25 * 0.25)  # completeness: f(x) - f(baseline)


def test_integrated_gradients_of_a_linear_score_are_its_centred_weights_with_their_sign():
    # k = 1: f(x) = sum over positions of x[p] . w, w = (A 2, C -1, G 0, T 3); "TAN": the N is [UNK] (0), constant
    table = torch.tensor([[2.0], [-1.0], [0.0], [3.0]])
    codes = torch.tensor([[3, 0, -1]])
    gradients = path_gradients(lambda kmers: kmers.sum(1), codes, torch.tensor([3]), KmerSums.of(table, 1),
                               torch.zeros(1), target=0, steps=3)
    torch.testing.assert_close(gradients[0], torch.tensor([[2.0, -1.0, 0.0, 3.0]] * 2 + [[0.0] * 4]))
    x = torch.tensor([[0.0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]])
    contributions = (hypothetical_contributions(gradients)[0] * x).sum(-1)
    torch.testing.assert_close(contributions, torch.tensor([3.0 - 1.0, 2.0 - 1.0, 0.0]))  # w - mean(w), signed
    assert contributions.sum().item() == pytest.approx((3.0 + 2.0) - 2 * 0.25 * 4.0)  # f(x) - f(baseline)


def soft_kmer_logits(model, x: torch.Tensor, n_kmers: torch.Tensor) -> torch.Tensor:
    """The definition the fast path must equal: the model's logits on (B, L, 4) base weights, each k-mer embedded
    as the sum over all 4^k k-mers of the product of their bases' weights times their embedding ([UNK] the rest)."""
    k = model.config.k
    embeddings = model.get_input_embeddings().weight
    kmers = x.shape[1] - k + 1
    weights = x[:, :kmers]
    for j in range(1, k):
        weights = (weights.unsqueeze(-1) * x[:, j : j + kmers].unsqueeze(-2)).flatten(-2)
    soft = weights @ embeddings[kmer_token_ids(k)] + (1 - weights.sum(-1, keepdim=True)) * embeddings[1]
    return model_head(model, n_kmers)(soft)


def test_fast_path_equals_the_soft_kmer_embedding_and_attributions_are_complete():
    # random weights drawn wide (std 0.3, not 0.02) so the logits move far between baseline and input
    torch.manual_seed(0)
    model = BertForSequenceClassification._from_config(tiny_config(4, initializer_range=0.3),
                                                       attn_implementation="sdpa").eval()
    tokenizer_ids = {token: i for i, token in enumerate(kmer_vocab(4))}
    order = kmer_token_ids(4).tolist()
    assert order[0] == tokenizer_ids["AAAA"] and order[0b00011011] == tokenizer_ids["ACGT"]
    sequences = random_sequences([40, 31, 52], seed=3)
    sequences[1] = sequences[1][:9] + "N" + sequences[1][10:]  # k-mers with an N are [UNK]
    _, inputs = encode_batch(model, sequences, 512)
    with torch.no_grad():
        logits = model(**inputs).logits
    batch = next(attribution_batches(model, sequences, target=1, steps=64, progress=False))
    np.testing.assert_allclose(batch.values, torch.softmax(logits, -1).numpy(), atol=1e-6)  # the real inputs
    x = torch.zeros(3, 52, 4)
    for row, sequence in enumerate(sequences):
        x[row, : len(sequence)] = torch.from_numpy(one_hot(sequence))
    n_kmers = torch.tensor([len(s) - 3 for s in sequences])
    with torch.no_grad():
        torch.testing.assert_close(soft_kmer_logits(model, x, n_kmers), logits, atol=1e-5, rtol=1e-5)
        baseline = 0.25 * x.sum(-1, keepdim=True).expand_as(x)
        difference = logits[:, 1] - soft_kmer_logits(model, baseline, n_kmers)[:, 1]
    reference = torch.zeros_like(x)  # autograd through the definition, same midpoints
    for step in range(64):
        point = (baseline + (step + 0.5) / 64 * (x - baseline)).requires_grad_(True)
        reference += torch.autograd.grad(soft_kmer_logits(model, point, n_kmers)[:, 1].sum(), point)[0] / 64
    reference = hypothetical_contributions(reference)
    for row, sequence in enumerate(sequences):
        known = [i for i in range(len(sequence)) if all(sequence[j] != "N" for j in range(max(0, i - 3), i + 4)
                                                        if j < len(sequence))]  # k-mers with the N: [UNK], constant
        np.testing.assert_allclose(batch.hypothetical[row][known], reference[row, known].numpy(), atol=2e-5)
    assert (difference.abs() > 0.05).all()
    np.testing.assert_allclose([c.sum() for c in batch.contributions], difference, rtol=0.02, atol=0.01)
    assert [h.shape for h in batch.hypothetical] == [(40, 4), (31, 4), (52, 4)]
    assert all(np.allclose(h.sum(1), 0, atol=1e-6) for h in batch.hypothetical)
    assert batch.contributions[1][9] == 0 and not batch.hypothetical[1][9].any()  # the N


def test_attribution_stops_where_the_model_stops_reading():
    model = BertForSequenceClassification._from_config(tiny_config(6, max_positions=16)).eval()
    batch = next(attribution_batches(model, random_sequences([30]), target=0, steps=2, progress=False))
    reach = 16 - 2 + 6 - 1  # 14 k-mers of 6
    assert batch.hypothetical[0].shape == (reach, 4)
    assert not np.isnan(batch.contributions[0][:reach]).any() and np.isnan(batch.contributions[0][reach:]).all()


def test_attention_and_attribute_commands_write_scores_bedgraph_and_plots(classifier, peaks, tmp_path):
    main(["attention", str(classifier), "--input", str(peaks), "--out", str(tmp_path / "att"), "--quiet",
          "--batch-size", "5", "--maps", "0,11", "--align-at", "100"])
    main(["attribute", str(classifier), "--input", str(peaks), "--out", str(tmp_path / "ig"), "--quiet",
          "--batch-size", "6", "--steps", "8", "--target", "Oct4", "--tracks", "2"])
    names = [line.split("\t")[0] for line in peaks.read_text().splitlines()[1:]]
    lengths = [200 - 10 * i for i in range(12)]
    probabilities = predict(load_classifier(classifier), [line.split("\t")[1] for line in
                                                           peaks.read_text().splitlines()[1:]], progress=False)
    for out, normalised in ((tmp_path / "att", True), (tmp_path / "ig", False)):
        scores = np.load(out / "nucleotide_scores.npy")
        assert scores.shape == (12, 200) and scores.dtype == np.float32
        for row, length in zip(scores, lengths):
            assert not np.isnan(row[:length]).any() and np.isnan(row[length:]).all()
            if normalised:
                assert np.linalg.norm(row[:length]) == pytest.approx(1.0, abs=1e-5)
        tidy = read_tsv(out / "scores.tsv")
        assert len(tidy) == sum(lengths) and list(tidy[0]) == ["name", "position", "nucleotide", "score"]
        last = tidy[lengths[0] - 1]
        assert (last["name"], last["position"]) == (names[0], "200")
        assert float(last["score"]) == pytest.approx(float(scores[0, 199]), rel=1e-5)
        bedgraph = (out / "scores.bedGraph").read_text().splitlines()
        assert bedgraph[0].startswith("track type=bedGraph") and len(bedgraph) == 1 + sum(lengths)
        chrom, span = names[0].split(":")
        first = bedgraph[1].split("\t")
        assert first[:3] == [chrom, span.split("-")[0], str(int(span.split("-")[0]) + 1)]
        assert float(first[3]) == pytest.approx(float(scores[0, 0]), rel=1e-5)
        predictions = read_tsv(out / "predictions.tsv")
        assert [row["name"] for row in predictions] == names
        got = np.array([[float(row["p_MafK"]), float(row["p_Oct4"])] for row in predictions])
        np.testing.assert_allclose(got, probabilities, atol=1e-5)
        assert (out / "plots" / "summary.png").stat().st_size > 0 and (out / "plots" / "summary.svg").exists()
    assert {p.name for p in (tmp_path / "att" / "plots").glob("*.png")} == {
        "summary.png", "track_0.png", "track_1.png", "track_2.png", "attention_maps_0.png", "attention_maps_11.png"}
    assert np.load(tmp_path / "att" / "attention_maps" / "11.npy").shape == (2, 4, 87, 87)  # 90 nt: 85 k-mers + 2
    assert {p.name for p in (tmp_path / "ig" / "plots").glob("*.svg")} == {"summary.svg", "track_2.svg"}
    one_hot_inputs = np.load(tmp_path / "ig" / "one_hot.npy")
    hypothetical = np.load(tmp_path / "ig" / "hypothetical.npy")
    assert one_hot_inputs.shape == hypothetical.shape == (12, 4, 200)  # modisco's layout: N x ACGT x L
    contributions = np.load(tmp_path / "ig" / "nucleotide_scores.npy")
    np.testing.assert_allclose((one_hot_inputs * hypothetical).sum(1), np.nan_to_num(contributions), atol=1e-6)


@pytest.mark.parametrize("option, message", [(["--maps", "12"], "--maps 12: the input has 12 sequences"),
                                             (["--tracks", "a"], "--tracks a: give 0-based sequence numbers")])
def test_bad_sequence_numbers_are_one_line_errors(classifier, peaks, tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["attention", str(classifier), "--input", str(peaks), "--out", str(tmp_path / "x"), "--quiet", *option])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"dnabert: {message}")


def test_unknown_target_is_a_one_line_error(classifier, peaks, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["attribute", str(classifier), "--input", str(peaks), "--out", str(tmp_path / "x"), "--target", "CTCF"])
    assert capsys.readouterr().err.splitlines()[-1] == "dnabert: --target CTCF: the model predicts ['MafK', 'Oct4']"
