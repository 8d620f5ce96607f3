"""Plain Hugging Face directories (config.json, safetensors weights, tokenizer files) for every checkpoint."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel

from dnabert.atomic import build_directory
from dnabert.tokenization import DNAKmerTokenizer, k_from_vocab_size


def save_hf_directory(model: PreTrainedModel, directory: str | Path, state_dict: dict | None = None) -> Path:
    """Write `model` (with `state_dict`'s weights if given) and its k-mer tokenizer as a standard HF directory,
    atomically (temp dir + rename)."""

    def build(work: Path) -> None:
        model.save_pretrained(work, safe_serialization=True, state_dict=state_dict)
        DNAKmerTokenizer(k=k_from_vocab_size(model.config.vocab_size)).save_pretrained(work)

    return build_directory(Path(directory), build)


def hf_directory_of(checkpoint_path: str | Path) -> Path:
    """The HF directory that accompanies a Lightning checkpoint file (`x.ckpt` -> `x.hf/`)."""
    path = Path(checkpoint_path)
    return path.with_name(path.name.removesuffix(".ckpt") + ".hf")
