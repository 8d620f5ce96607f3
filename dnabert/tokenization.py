"""Overlapping k-mer tokenization with DNABERT's exact vocabulary.

Token ids: 0-4 are `[PAD] [UNK] [CLS] [SEP] [MASK]`, then every k-mer in Cartesian-product order over the
alphabet A, T, C, G, so `id(kmer) = 5 + sum(digit(base) * 4**(k-1-i))` with A=0, T=1, C=2, G=3. The hot path
(`batch_kmer_ids`) is numpy over a whole batch; `DNAKmerTokenizer` is the Hugging Face face of the same rule.
"""

from __future__ import annotations

import gc
import itertools
import json
import string
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from transformers import BatchEncoding, BertTokenizer
from transformers.tokenization_utils_base import PaddingStrategy, TruncationStrategy

from dnabert.errors import DnabertError, warn

if TYPE_CHECKING:
    import torch

ALPHABET = "ATCG"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
NUM_SPECIAL = len(SPECIAL_TOKENS)
AMBIGUOUS = 4
"""Nucleotide code of N and the other IUPAC ambiguity symbols; k-mers containing it map to `[UNK]`."""
INVALID = 255
IUPAC_AMBIGUOUS = "NRYSWKMBDHV"
MIN_K, MAX_K = 1, 15
OVERFLOW_MODES = ("truncate", "split", "error")


def _code_table() -> np.ndarray:
    table = np.full(256, INVALID, dtype=np.uint8)
    for digit, base in enumerate(ALPHABET):
        table[ord(base)] = table[ord(base.lower())] = digit
    for base in IUPAC_AMBIGUOUS:
        table[ord(base)] = table[ord(base.lower())] = AMBIGUOUS
    return table


CODE_TABLE = _code_table()
"""Byte -> nucleotide code: A,T,C,G (either case) -> 0..3, IUPAC ambiguity codes -> 4, anything else -> 255."""


def codes_to_text(codes: np.ndarray) -> str:
    """Nucleotide codes back to text (ambiguous codes become N)."""
    return np.frombuffer(b"ATCGN", dtype=np.uint8)[codes].tobytes().decode()


def check_k(k: int) -> int:
    """Return k if it is a supported k-mer size, else raise a user error."""
    if not isinstance(k, int) or isinstance(k, bool) or not MIN_K <= k <= MAX_K:
        raise DnabertError(f"k={k!r} is out of range: use a k-mer size from 3 to 6 (DNABERT), or up to {MAX_K}")
    return k


def vocab_size(k: int) -> int:
    """Number of tokens in the k-mer vocabulary (4**k k-mers plus 5 special tokens)."""
    return 4 ** check_k(k) + NUM_SPECIAL


def k_from_vocab_size(size: int) -> int:
    """Recover k from a DNABERT vocabulary size (69 -> 3, ..., 4101 -> 6)."""
    for k in range(MIN_K, MAX_K + 1):
        if 4**k + NUM_SPECIAL == size:
            return k
    raise DnabertError(f"vocabulary size {size} is not 4**k + 5 for any k: this is not a DNABERT k-mer vocabulary")


def kmer_vocab(k: int) -> list[str]:
    """All tokens in id order: the special tokens, then the k-mers in A,T,C,G product order."""
    check_k(k)
    return list(SPECIAL_TOKENS) + ["".join(p) for p in itertools.product(ALPHABET, repeat=k)]


def nucleotide_codes(sequence: str | bytes, name: str = "sequence") -> np.ndarray:
    """Map DNA text to nucleotide codes (uint8), upper-casing soft-masked bases; reject non-nucleotides."""
    raw = sequence.encode("ascii", "replace") if isinstance(sequence, str) else bytes(sequence)
    codes = CODE_TABLE[np.frombuffer(raw, dtype=np.uint8)]
    _raise_on_invalid(codes, raw, [name], np.zeros(1, dtype=np.int64))
    return codes


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of nucleotide codes (A<->T and C<->G are codes 0<->1 and 2<->3; N stays N)."""
    flipped = codes[::-1].copy()
    unambiguous = flipped < AMBIGUOUS
    flipped[unambiguous] ^= 1
    return flipped


def reverse_complement_text(sequence: str) -> str:
    """Reverse complement of a DNA string (IUPAC codes other than ACGT become N)."""
    return codes_to_text(reverse_complement(nucleotide_codes(sequence)))


def _raise_on_invalid(codes: np.ndarray, raw: bytes, names: Sequence[str], offsets: np.ndarray) -> None:
    bad = np.flatnonzero(codes == INVALID)
    if bad.size == 0:
        return
    position = int(bad[0])
    index = int(np.searchsorted(offsets, position, side="right") - 1)
    char = chr(raw[position])
    shown = repr(char) if char in string.printable and char not in "\t\n\r\x0b\x0c" else f"byte {raw[position]:#04x}"
    raise DnabertError(
        f"{names[index]} position {position - int(offsets[index]) + 1}: {shown} is not a nucleotide "
        "(expected A, C, G, T or an IUPAC code such as N); remove it or replace it with N"
    )


def kmer_ids_from_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """Ids of the n-k+1 overlapping k-mers of a code array (no special tokens); ambiguous k-mers -> [UNK]."""
    m = codes.shape[-1] - k + 1
    if m <= 0:
        return np.zeros(codes.shape[:-1] + (0,), dtype=np.int64)
    index = np.zeros(codes.shape[:-1] + (m,), dtype=np.int32 if k <= 15 else np.int64)
    digits = codes & 3
    for j in range(k):
        index *= 4
        index += digits[..., j : j + m]
    ids = index.astype(np.int64)
    ids += NUM_SPECIAL
    ambiguous = codes >= AMBIGUOUS
    if ambiguous.any():
        counts = np.cumsum(ambiguous, axis=-1, dtype=np.int32)
        counts = np.concatenate([np.zeros(codes.shape[:-1] + (1,), np.int32), counts], axis=-1)
        ids[counts[..., k:] - counts[..., :m] > 0] = UNK_ID
    return ids


def kmer_ids(sequence: str | bytes, k: int, name: str = "sequence") -> np.ndarray:
    """Ids of the overlapping k-mers of one DNA sequence, without special tokens."""
    return kmer_ids_from_codes(nucleotide_codes(sequence, name), check_k(k))


@dataclass
class EncodedBatch:
    """Padded token ids of a batch; with overflow='split' a long sequence spans several rows."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    sequence_index: np.ndarray
    """Row -> index of the input sequence it came from."""

    def tensors(self, chunks: bool = False) -> dict[str, torch.Tensor]:
        """The model's keyword inputs; `chunks`: with `chunk_owner` (row -> sequence) for long-sequence models."""
        import torch  # here, so that the numpy tokenizer (and `dnabert --help`) does not load torch

        inputs = {"input_ids": torch.from_numpy(self.input_ids),
                  "attention_mask": torch.from_numpy(self.attention_mask)}
        if chunks:
            inputs["chunk_owner"] = torch.from_numpy(self.sequence_index)
        return inputs


def nucleotides_read(k: int, max_tokens: int) -> int:
    """The longest sequence (nt) whose k-mers fit in `max_tokens` tokens with [CLS] and [SEP]: 515 at k = 6, 512."""
    return max_tokens - 2 + k - 1


def say_truncated(sequences: Sequence[str], reach: int | None, what: str, advice: str) -> int:
    """Say in one warning line how many `sequences` are longer than the `reach` nt read of each (those are cut to
    their first `reach` nt); returns that count."""
    longer = 0 if reach is None else sum(len(sequence) > reach for sequence in sequences)
    if longer:
        warn(f"{what}: {longer:,} of {len(sequences):,} sequences are longer than the {reach} nt the model reads and "
             f"were truncated to their first {reach} nt; {advice}")
    return longer


def batch_kmer_ids(
    sequences: Sequence[str],
    k: int,
    max_tokens: int = 512,
    overflow: str = "truncate",
    names: Sequence[str] | None = None,
) -> EncodedBatch:
    """Tokenize a batch of raw DNA sequences to `[CLS] k-mers [SEP]` rows padded with `[PAD]`.

    `max_tokens` counts the special tokens. A sequence with more than `max_tokens - 2` k-mers is cut
    (`truncate`), cut into consecutive chunks that each become a row (`split`), or refused (`error`).
    """
    check_k(k)
    if overflow not in OVERFLOW_MODES:
        raise DnabertError(f"overflow={overflow!r}: use one of {', '.join(OVERFLOW_MODES)}")
    if max_tokens < 3:
        raise DnabertError(f"max_tokens={max_tokens} leaves no room for a k-mer between [CLS] and [SEP]")
    names = names or [f"sequence {i + 1}" for i in range(len(sequences))]
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    raw = "".join(sequences).encode("ascii", "replace")
    codes = CODE_TABLE[np.frombuffer(raw, dtype=np.uint8)]
    _raise_on_invalid(codes, raw, names, offsets)
    all_ids = kmer_ids_from_codes(codes, k)
    n_kmers = np.maximum(lengths - k + 1, 0)
    budget = max_tokens - 2
    rows = np.arange(len(sequences))
    starts = offsets
    if overflow == "error" and (n_kmers > budget).any():
        i = int(np.argmax(n_kmers > budget))
        raise DnabertError(
            f"{names[i]}: {n_kmers[i]} k-mers exceed the model's {budget}; "
            "choose overflow=truncate or overflow=split"
        )
    if overflow == "split":
        chunks = np.maximum((n_kmers + budget - 1) // budget, 1)
        rows = np.repeat(rows, chunks)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(chunks) - chunks, chunks)
        starts = offsets[rows] + within * budget
        n_kmers = np.clip(n_kmers[rows] - within * budget, 0, budget)
    return EncodedBatch(*with_special_tokens(all_ids, starts, np.minimum(n_kmers, budget)), rows)


def with_special_tokens(flat_ids: np.ndarray, starts: np.ndarray, n_kmers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows `[CLS] flat_ids[start:start+n] [SEP]` padded with `[PAD]`, and their attention mask."""
    width = int(n_kmers.max(initial=0)) + 2
    input_ids = np.full((len(starts), width), PAD_ID, dtype=np.int64)
    input_ids[:, 0] = CLS_ID
    column = np.arange(width - 2)
    valid = column[None, :] < n_kmers[:, None]
    positions = starts[:, None] + column[None, :]
    input_ids[:, 1 : width - 1][valid] = flat_ids[positions[valid]]
    input_ids[np.arange(len(starts)), n_kmers + 1] = SEP_ID
    attention_mask = (np.arange(width)[None, :] < (n_kmers + 2)[:, None]).astype(np.int64)
    return input_ids, attention_mask


def kmer_text(sequence: str, k: int) -> str:
    """DNABERT's input text for a raw sequence: its overlapping k-mers joined by spaces (N-k-mers -> [UNK])."""
    tokens = np.asarray(kmer_vocab(k), dtype=object)
    return " ".join(tokens[kmer_ids(sequence, k)])


@contextmanager
def _collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a block that only allocates (lists of ints hold no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class DNAKmerTokenizer(BertTokenizer):
    """Hugging Face tokenizer for DNABERT: takes raw DNA or DNABERT's space-separated k-mer text.

    Saved directories hold `vocab.txt`, `tokenizer.json` and a `tokenizer_config.json` naming `BertTokenizer`
    (case-sensitive), so plain `transformers` loads them and gives the same ids on k-mer text.
    """

    def __init__(self, vocab: str | dict[str, int] | None = None, k: int | None = None, **kwargs):
        if vocab is None:
            if k is None:
                raise DnabertError("DNAKmerTokenizer needs a vocabulary or k")
            vocab = {token: i for i, token in enumerate(kmer_vocab(k))}
        if isinstance(vocab, str):
            vocab = {line.rstrip("\n"): i for i, line in enumerate(Path(vocab).read_text().splitlines(True))}
        inferred = k_from_vocab_size(len(vocab))
        if k is not None and k != inferred:
            raise DnabertError(f"k={k} does not match the vocabulary, which holds {inferred}-mers")
        if list(vocab)[:NUM_SPECIAL] != list(SPECIAL_TOKENS):
            raise DnabertError("vocabulary does not start with [PAD] [UNK] [CLS] [SEP] [MASK]")
        self.k = inferred
        kwargs.update(do_lower_case=False, strip_accents=False, tokenize_chinese_chars=False)
        kwargs.setdefault("model_max_length", 512)
        super().__init__(vocab=vocab, k=inferred, **kwargs)

    def to_kmer_text(self, text: str | list[str] | None) -> str | list[str] | None:
        """Raw DNA (no whitespace) becomes k-mer text; k-mer text is upper-cased and kept."""
        if text is None:
            return None
        if isinstance(text, (list, tuple)):
            return [self.to_kmer_text(t) for t in text]
        stripped = text.strip()
        if any(c.isspace() for c in stripped) or stripped in SPECIAL_TOKENS:
            return " ".join(t if t in SPECIAL_TOKENS else t.upper() for t in stripped.split())
        return kmer_text(stripped, self.k)

    def _encode_plus(self, text, text_pair=None, **kwargs):
        fast = self._raw_dna_batch(text, text_pair, **kwargs)
        if fast is not None:
            return fast
        return super()._encode_plus(text=self.to_kmer_text(text), text_pair=self.to_kmer_text(text_pair), **kwargs)

    def _raw_dna_batch(self, text, text_pair, *, add_special_tokens: bool = True,
                       padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
                       truncation_strategy: TruncationStrategy = TruncationStrategy.DO_NOT_TRUNCATE,
                       max_length: int | None = None, pad_to_multiple_of: int | None = None,
                       padding_side: str | None = None, return_tensors=None, return_token_type_ids: bool | None = None,
                       return_attention_mask: bool | None = None, verbose: bool = True, **other
                       ) -> BatchEncoding | None:
        """Raw DNA (one sequence or a batch, no pair) the way `batch_kmer_ids` reads it: the ids, masks, padding and
        truncation the k-mer text path gives, in numpy; None for anything else (pairs, k-mer text, overflowing
        tokens, offsets, left padding, ...), which takes that path."""
        batched = isinstance(text, (list, tuple))
        sequences = list(text) if batched else [text]
        unusual = any(value not in (None, False, 0) for value in other.values())  # stride, offsets, overflow, ...
        if (text_pair is not None or not add_special_tokens or unusual or not sequences
                or (padding_side or self.padding_side) != "right"
                or truncation_strategy not in (TruncationStrategy.DO_NOT_TRUNCATE, TruncationStrategy.LONGEST_FIRST,
                                               TruncationStrategy.ONLY_FIRST)
                or not all(isinstance(s, str) and s.isalpha() for s in sequences)):  # letters only: raw DNA
            return None
        truncate = truncation_strategy != TruncationStrategy.DO_NOT_TRUNCATE and max_length is not None
        most = max(len(s) for s in sequences) - self.k + 3  # tokens of the longest sequence, untruncated
        encoded = batch_kmer_ids(sequences, self.k, max(max_length, 3) if truncate else max(most, 3))
        lengths = encoded.attention_mask.sum(1)
        width = encoded.input_ids.shape[1]
        if padding_strategy == PaddingStrategy.MAX_LENGTH and max_length is not None:
            if width > max_length:  # rows longer than max_length stay longer (ragged): the k-mer text path's
                return None
            width = max_length
        if pad_to_multiple_of and padding_strategy != PaddingStrategy.DO_NOT_PAD:
            width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        if return_tensors and padding_strategy == PaddingStrategy.DO_NOT_PAD and lengths.min() < lengths.max():
            return None  # ragged rows make no tensor: the k-mer text path says so
        ids = np.pad(encoded.input_ids, ((0, 0), (0, width - encoded.input_ids.shape[1])))
        longest = int(lengths.argmax())
        self._eventual_warn_about_too_long_sequence(ids[longest, : lengths[longest]], max_length, verbose)
        if return_tensors:
            data = {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
                    "attention_mask": (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)}
        else:
            with _collection_paused():  # millions of small lists: the cyclic collector would rescan them all
                padded = padding_strategy != PaddingStrategy.DO_NOT_PAD
                sizes = [width] * len(lengths) if padded else lengths.tolist()
                rows = ids.tolist()
                data = {"input_ids": rows if padded else [row[:size] for row, size in zip(rows, sizes)],
                        "token_type_ids": [[0] * size for size in sizes],
                        "attention_mask": [[1] * length + [0] * (size - length)
                                           for length, size in zip(lengths.tolist(), sizes)]}
        wanted = {"token_type_ids": return_token_type_ids, "attention_mask": return_attention_mask}
        data = {key: value for key, value in data.items()
                if wanted.get(key) or (wanted.get(key) is None and key in (*self.model_input_names, "input_ids"))}
        if not batched and return_tensors is None:
            data = {key: value[0] for key, value in data.items()}
        return BatchEncoding(data, tensor_type=return_tensors)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as a plain, case-sensitive BERT tokenizer directory (plus vocab.txt for older tools)."""
        files = super().save_pretrained(save_directory, *args, **kwargs)
        directory = Path(save_directory)
        vocab = sorted(self.get_vocab().items(), key=lambda item: item[1])
        (directory / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab))
        config_file = directory / "tokenizer_config.json"
        config = json.loads(config_file.read_text())
        config.update(tokenizer_class="BertTokenizer", do_lower_case=False, k=self.k)
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return (*files, str(directory / "vocab.txt"))
