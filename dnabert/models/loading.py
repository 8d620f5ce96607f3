"""Where a model starts: random weights, a dnabert Lightning checkpoint, or a Hugging Face directory.

Nothing here executes code from a checkpoint: Lightning checkpoints are read with `weights_only=True`,
HF directories with `trust_remote_code=False` (safetensors, or `.bin` through torch's weights-only loader).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoConfig, BertConfig, PreTrainedModel

from dnabert.errors import DnabertError
from dnabert.models import long_sequence  # noqa: F401  (registers the long-sequence model with the Auto classes)
from dnabert.tokenization import k_from_vocab_size

RANDOM = "random"
WEIGHT_FILES = (
    "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json"
)


def kmer_size(config: BertConfig) -> int:
    """k of a DNABERT config: its `k` field, else inferred from the vocabulary size (4**k + 5)."""
    return getattr(config, "k", None) or k_from_vocab_size(config.vocab_size)


def read_checkpoint(path: Path) -> dict:
    """A dnabert Lightning checkpoint, loaded without unpickling arbitrary objects."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise DnabertError(f"{path}: not a loadable dnabert checkpoint ({type(error).__name__}: "
                           f"{str(error).splitlines()[0][:200]}); only weights-only checkpoints are accepted") from None
    if not isinstance(checkpoint, dict) or "bert_config" not in checkpoint or "state_dict" not in checkpoint:
        raise DnabertError(f"{path}: not a dnabert checkpoint (no bert_config/state_dict)")
    return checkpoint


def _check_hf_directory(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise DnabertError(
            f"{path}: no config.json; a model directory needs config.json and weights (model.safetensors)"
        )
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise DnabertError(f"{path}: no weights file ({', '.join(WEIGHT_FILES[:2])}) beside config.json")


def config_from_dict(values: dict) -> BertConfig:
    """A BertConfig (or the long-sequence subclass its `model_type` names) from a plain dict."""
    values = dict(values)
    return AutoConfig.for_model(values.pop("model_type", "bert"), **values)


def initial_config(init: str, config: BertConfig | None = None, **updates) -> BertConfig:
    """The BertConfig a model built from `init` will have (`config` is used for random init), with `updates`."""
    if init == RANDOM:
        if config is None:
            raise DnabertError("model.init=random needs a model config (model=tiny, small, dnabert6, ...)")
        result = config_from_dict(config.to_dict())
    else:
        path = Path(init)
        if path.is_dir():
            _check_hf_directory(path)
            result = config_from_dict(json.loads((path / "config.json").read_text()))
        elif path.is_file():
            result = config_from_dict(read_checkpoint(path)["bert_config"])
        else:
            raise DnabertError(f"model.init={init}: not found; give 'random', a .ckpt file or a model directory")
    result.k = kmer_size(result)
    for key, value in updates.items():
        setattr(result, key, value)
    return result


def build_model(model_class: type[PreTrainedModel], init: str, config: BertConfig,
                attn_implementation: str = "sdpa") -> PreTrainedModel:
    """`model_class` with `config`, its encoder weights (and any matching head) taken from `init`."""
    if init != RANDOM and Path(init).is_dir():
        model = model_class.from_pretrained(init, config=config, trust_remote_code=False,
                                            attn_implementation=attn_implementation)
        return model.train()
    model = model_class._from_config(config, attn_implementation=attn_implementation)
    if init != RANDOM:
        state = {key.removeprefix("model."): value for key, value in read_checkpoint(Path(init))["state_dict"].items()}
        own = model.state_dict()
        if not any(key.startswith("bert.") for key in own):
            state = {key.removeprefix("bert."): value for key, value in state.items()}
        usable = {key: value for key, value in state.items() if key in own and own[key].shape == value.shape}
        encoder = [key for key in own if key.removeprefix("bert.").startswith(("embeddings.", "encoder."))]
        missing = [key for key in encoder if key not in usable]
        if missing:
            raise DnabertError(f"model.init={init}: checkpoint lacks encoder weights such as {missing[0]}")
        model.load_state_dict(usable, strict=False)
    return model
