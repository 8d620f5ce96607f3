"""Token ids equal DNABERT's original vocabulary files and transformers' BertTokenizer on real sequence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from transformers import BertTokenizer

from dnabert.errors import DnabertError
from dnabert.tokenization import (
    UNK_ID,
    DNAKmerTokenizer,
    batch_kmer_ids,
    kmer_ids,
    kmer_text,
    kmer_vocab,
    vocab_size,
)
from tests.conftest import data_file, genome_text, original_dnabert_directory


def original_vocab(k: int, directory: Path) -> list[str]:
    """DNABERT's vocab.txt for k (rebuilt in `directory`, checked against the original's SHA-256)."""
    return (original_dnabert_directory(directory / f"bert-config-{k}", k) / "vocab.txt").read_text().splitlines()


@pytest.fixture(scope="module")
def real_sequences() -> list[str]:
    """300 windows of 200-700 nt from E. coli, some soft-masked (lower case) and some with N."""
    genome = genome_text(data_file("ecoli_k12_300kb.fa.gz"))
    rng = np.random.default_rng(0)
    sequences = []
    for i in range(300):
        start, length = int(rng.integers(0, len(genome) - 700)), int(rng.integers(200, 700))
        window = genome[start : start + length]
        if i % 5 == 0:
            window = window[:50] + window[50:90].lower() + window[90:]
        if i % 7 == 0:
            window = window[:100] + "NNN" + window[103:]
        sequences.append(window)
    return sequences


def reference_ids(sequence: str, k: int, vocab: list[str]) -> list[int]:
    """DNABERT's own rule written plainly: upper-case, slide, look up, unknown -> [UNK]."""
    lookup = {token: i for i, token in enumerate(vocab)}
    sequence = sequence.upper()
    return [lookup.get(sequence[i : i + k], UNK_ID) for i in range(len(sequence) - k + 1)]


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_vocabulary_equals_original_files(k):
    original = json.loads(data_file("dnabert_original_configs.json").read_text())[str(k)]
    assert hashlib.sha256("\n".join(kmer_vocab(k)).encode()).hexdigest() == original["vocab_sha256"]
    assert vocab_size(k) == len(kmer_vocab(k)) == 4**k + 5 == original["config"]["vocab_size"]


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_ids_match_original_vocab_and_bert_tokenizer(k, real_sequences, tmp_path):
    vocab = original_vocab(k, tmp_path)
    config_dir = tmp_path / f"bert-config-{k}"
    bert = BertTokenizer.from_pretrained(str(config_dir), do_lower_case=False)
    batch = batch_kmer_ids(real_sequences, k, max_tokens=10_000)
    for row, sequence in enumerate(real_sequences):
        expected = reference_ids(sequence, k, vocab)
        assert len(expected) == len(sequence) - k + 1
        assert kmer_ids(sequence, k).tolist() == expected
        n = len(expected)
        assert batch.input_ids[row, : n + 2].tolist() == [2, *expected, 3]
        assert batch.attention_mask[row].sum() == n + 2
        dnabert_text = " ".join(sequence.upper()[i : i + k] for i in range(n))
        assert bert(dnabert_text)["input_ids"] == [2, *expected, 3]


def test_spot_checks_from_the_paper_vocabulary():
    assert kmer_ids("TATAAA", 6).tolist() == [1093]
    assert kmer_ids("ACGTAC", 6).tolist() == [727]
    assert kmer_ids("aaaaaa", 6).tolist() == [5]


def test_ambiguous_bases_give_unk_for_every_kmer_that_covers_them():
    ids = kmer_ids("ACGTNACGTA", 3)
    assert ids.tolist()[:5] == [ids[0], ids[1], UNK_ID, UNK_ID, UNK_ID]
    assert UNK_ID not in ids[[0, 1, 5, 6, 7]]
    assert (kmer_ids("ACRYACGT", 3)[:4] == UNK_ID).all()


def test_non_nucleotide_character_names_sequence_and_position():
    with pytest.raises(DnabertError, match=r"chr7 position 5: 'X' is not a nucleotide"):
        kmer_ids("ACGTXACGT", 3, name="chr7")
    with pytest.raises(DnabertError, match=r"sequence 2 position 3: '-'"):
        batch_kmer_ids(["ACGTACG", "AC-GTA"], 3)


def test_short_sequence_and_k_bounds():
    assert kmer_ids("ACG", 6).size == 0
    assert batch_kmer_ids(["ACG"], 6).input_ids.tolist() == [[2, 3]]
    for bad in (0, 2.5, 16):
        with pytest.raises(DnabertError, match="out of range"):
            kmer_ids("ACGT", bad)


def test_long_sequences_are_truncated_split_or_refused(real_sequences):
    sequence = real_sequences[1]
    n = len(sequence) - 6 + 1
    truncated = batch_kmer_ids([sequence], 6, max_tokens=102)
    assert truncated.input_ids.shape == (1, 102)
    assert truncated.input_ids[0, 1:101].tolist() == kmer_ids(sequence, 6)[:100].tolist()
    split = batch_kmer_ids([sequence, "ACGTACGT"], 6, max_tokens=102, overflow="split")
    chunks = -(-n // 100)
    assert split.sequence_index.tolist() == [0] * chunks + [1]
    rejoined = np.concatenate([row[1 : m - 1] for row, m in zip(split.input_ids, split.attention_mask.sum(1))][:chunks])
    assert rejoined.tolist() == kmer_ids(sequence, 6).tolist()
    with pytest.raises(DnabertError, match="overflow=truncate or overflow=split"):
        batch_kmer_ids([sequence], 6, max_tokens=102, overflow="error")


def test_hf_tokenizer_raw_dna_kmer_text_and_round_trip(tmp_path, real_sequences):
    tokenizer = DNAKmerTokenizer(k=6)
    sequence = real_sequences[3]
    expected = [2, *kmer_ids(sequence, 6).tolist(), 3][:512]
    assert tokenizer(sequence, truncation=True)["input_ids"] == expected
    assert tokenizer(kmer_text(sequence, 6), truncation=True)["input_ids"] == expected
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "vocab.txt").read_text().splitlines() == original_vocab(6, tmp_path / "original")
    reloaded = DNAKmerTokenizer.from_pretrained(tmp_path)
    assert reloaded.k == 6 and reloaded(sequence.lower(), truncation=True)["input_ids"] == expected
    plain = BertTokenizer.from_pretrained(tmp_path)
    assert plain(kmer_text(sequence, 6), truncation=True)["input_ids"] == expected
    batch = tokenizer(real_sequences[:4], padding=True, truncation=True, return_tensors="np")
    ours = batch_kmer_ids(real_sequences[:4], 6)
    assert (batch["input_ids"] == ours.input_ids).all()


def test_original_dnabert_directory_loads_with_k_inferred(tmp_path):
    tokenizer = DNAKmerTokenizer.from_pretrained(str(original_dnabert_directory(tmp_path / "bert-config-4", 4)))
    assert tokenizer.k == 4
    assert tokenizer("ACGTACGT")["input_ids"] == [2, *kmer_ids("ACGTACGT", 4).tolist(), 3]


def test_larger_k_gets_a_generated_vocabulary(tmp_path):
    tokenizer = DNAKmerTokenizer(k=8)
    assert len(tokenizer.get_vocab()) == 4**8 + 5
    ids = tokenizer("ACGTACGTAC")["input_ids"]
    assert ids[1:-1] == kmer_ids("ACGTACGTAC", 8).tolist()
    assert tokenizer.convert_ids_to_tokens(ids[1]) == "ACGTACGT"


OPTIONS = [dict(padding=padding, truncation=truncation, max_length=max_length, return_tensors=tensors,
                pad_to_multiple_of=multiple)
           for padding in (False, True, "max_length") for truncation in (False, True) for max_length in (None, 64, 600)
           for tensors in (None, "np", "pt") for multiple in (None, 8)
           if not (padding == "max_length" and max_length is None) and not (padding is False and tensors)
           and not (truncation and multiple and max_length and max_length % multiple)
           and not (padding == "max_length" and not truncation and tensors)]  # ragged rows: no tensor either way


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_the_hf_call_on_raw_dna_gives_what_the_kmer_text_path_gives(real_sequences, options):
    """A batch of raw DNA (soft-masked, with N, one shorter than k) through `DNAKmerTokenizer(...)`, on its numpy
    path, equals the same sequences as k-mer text through the tokenizer's own path: ids, token types, masks, padding,
    truncation, tensors; one sequence alone too."""
    tokenizer = DNAKmerTokenizer(k=6)
    sequences = [*real_sequences[:5], "ACGTA", real_sequences[5][:40]]
    texts = [kmer_text(s, 6) if len(s) >= 6 else "ACGTA" for s in sequences]
    texts[5] = ""  # 5 nt make no 6-mer: [CLS] [SEP]
    raw, text = tokenizer(sequences, **options), tokenizer(texts, **options)
    assert set(raw) == set(text) == {"input_ids", "token_type_ids", "attention_mask"}
    for key in text:
        assert np.array_equal(np.asarray(raw[key]), np.asarray(text[key])) if options["return_tensors"] \
            else raw[key] == text[key], key
        assert type(raw[key]) is type(text[key])
    one = {key: value for key, value in options.items() if key != "pad_to_multiple_of"}
    assert {k: np.asarray(v).tolist() for k, v in tokenizer(sequences[0], **one).items()} == \
        {k: np.asarray(v).tolist() for k, v in tokenizer(texts[0], **one).items()}


def test_the_hf_call_on_raw_dna_takes_the_numpy_path(real_sequences, monkeypatch):
    """The common call (a batch of raw DNA, padded and truncated) never reaches the tokenizers backend."""
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    def backend(*args, **kwargs):
        raise AssertionError("the k-mer text path ran")

    monkeypatch.setattr(TokenizersBackend, "_encode_plus", backend)
    tokenizer = DNAKmerTokenizer(k=6)
    batch = tokenizer(real_sequences[:8], padding=True, truncation=True, return_tensors="pt")
    assert batch["input_ids"].shape[0] == 8
    with pytest.raises(AssertionError, match="k-mer text path"):
        tokenizer([kmer_text(real_sequences[0], 6)], padding=True)
