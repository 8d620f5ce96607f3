"""Plain Hugging Face directories (config.json, safetensors weights, tokenizer files) for every checkpoint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from transformers import PreTrainedModel

from dnabert.tokenization import DNAKmerTokenizer, k_from_vocab_size


def save_hf_directory(model: PreTrainedModel, directory: str | Path) -> Path:
    """Write `model` and its k-mer tokenizer as a standard HF directory, atomically (temp dir + rename)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    work = directory.parent / f".{directory.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        model.save_pretrained(work, safe_serialization=True)
        DNAKmerTokenizer(k=k_from_vocab_size(model.config.vocab_size)).save_pretrained(work)
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{os.getpid()}"
            os.replace(directory, old)
            os.replace(work, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return directory


def hf_directory_of(checkpoint_path: str | Path) -> Path:
    """The HF directory that accompanies a Lightning checkpoint file (`x.ckpt` -> `x.hf/`)."""
    path = Path(checkpoint_path)
    return path.with_name(path.name.removesuffix(".ckpt") + ".hf")
