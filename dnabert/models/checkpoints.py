"""The checkpoint format, read and written here only: where a model starts (random weights, a dnabert Lightning
checkpoint, a Hugging Face directory such as a published DNABERT) and the plain HF directory beside every checkpoint.

Nothing here executes code from a checkpoint: Lightning checkpoints are read with `weights_only=True`,
HF directories with `trust_remote_code=False` (safetensors, or `.bin` through torch's weights-only loader).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoConfig, BertConfig, PreTrainedModel

from dnabert.atomic import build_directory
from dnabert.errors import DnabertError, read_json
from dnabert.models import linear_probe, long_sequence  # noqa: F401  (register their models with the Auto classes)
from dnabert.models.model_card import write_model_card
from dnabert.tokenization import DNAKmerTokenizer, k_from_vocab_size

RANDOM = "random"
CONFIG_KEY = "bert_config"
"""The entry of a dnabert Lightning checkpoint that holds the model's BertConfig (as a dict)."""
MODEL_PREFIX = "model."
"""The prefix of the HF model's weights in a Lightning checkpoint's state_dict (the module's `model` attribute)."""
WEIGHT_FILES = (
    "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json"
)


READ_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, SafetensorError)
"""What torch and transformers raise for a damaged, truncated or refused weights file (OSError is the user's own:
a missing file or a full disk, said as such)."""


def kmer_size(config: BertConfig) -> int:
    """k of a DNABERT config: its `k` field, else inferred from the vocabulary size (4**k + 5)."""
    return getattr(config, "k", None) or k_from_vocab_size(config.vocab_size)


def unreadable(path: Path, error: Exception) -> DnabertError:
    """The user error for a weights file or checkpoint that failed to load (refused pickles said plainly)."""
    if isinstance(error, pickle.UnpicklingError):
        return DnabertError(f"{path}: refused: it holds pickled objects besides weights, which could run code; "
                            "load only models you trust, preferably saved as safetensors")
    return DnabertError(f"{path}: cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                        "download or export the model again")


def read_checkpoint(path: Path) -> dict:
    """A dnabert Lightning checkpoint, loaded without unpickling arbitrary objects."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except READ_ERRORS as error:
        raise unreadable(path, error) from None
    if not isinstance(checkpoint, dict) or CONFIG_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise DnabertError(f"{path}: not a dnabert checkpoint (no {CONFIG_KEY}/state_dict)")
    return checkpoint


def store_config(checkpoint: dict, config: BertConfig) -> None:
    """Put the model's config into a Lightning checkpoint being saved (what `read_checkpoint` needs)."""
    checkpoint[CONFIG_KEY] = config.to_dict()


def model_weights(state_dict: dict) -> dict:
    """The HF model's weights of a Lightning state_dict, under their HF names."""
    return {key.removeprefix(MODEL_PREFIX): value for key, value in state_dict.items() if key.startswith(MODEL_PREFIX)}


def _weights_file(path: Path) -> Path:
    """The weights file of a model directory (checked to exist beside its config.json)."""
    if not (path / "config.json").is_file():
        raise DnabertError(
            f"{path}: no config.json; a model directory needs config.json and weights (model.safetensors)"
        )
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise DnabertError(f"{path}: no weights file ({', '.join(WEIGHT_FILES[:2])}) beside config.json")


def _read_config(source: Path, values: dict) -> BertConfig:
    """The DNABERT config stored in `source` (a model directory's config.json or a checkpoint), with its k."""
    try:
        config = config_from_dict(values)
        config.k = kmer_size(config)
    except (DnabertError, ValueError, TypeError, KeyError) as error:
        raise DnabertError(f"{source}: not a DNABERT model config ({error})") from error
    return config


def config_from_dict(values: dict) -> BertConfig:
    """A BertConfig (or the long-sequence subclass its `model_type` names) from a plain dict."""
    values = dict(values)
    return AutoConfig.for_model(values.pop("model_type", "bert"), **values)


@dataclass
class ModelStart:
    """Where a model starts, read once: `model.init` ('random', a dnabert .ckpt or a model directory), the config a
    model built from it has (with k), and a checkpoint's HF-named weights (a directory's are read when building)."""

    init: str
    config: BertConfig
    weights: dict | None = None

    @classmethod
    def read(cls, init: str, config: BertConfig | None = None) -> ModelStart:
        """Resolve `init`; `config` is the architecture of random weights (a checkpoint or directory brings its own)."""
        init = str(init)
        if init == RANDOM:
            if config is None:
                raise DnabertError("model.init=random needs a model config (model=tiny, small, dnabert6, ...)")
            result = config_from_dict(config.to_dict())
            result.k = kmer_size(result)
            return cls(init, result)
        path = Path(init)
        if path.is_dir():
            _weights_file(path)
            config_file = path / "config.json"
            return cls(init, _read_config(config_file, read_json(config_file, "download or export the model again")))
        if path.is_file():
            checkpoint = read_checkpoint(path)
            return cls(init, _read_config(path, checkpoint[CONFIG_KEY]), model_weights(checkpoint["state_dict"]))
        raise DnabertError(f"model.init={init}: not found; give 'random', a .ckpt file or a model directory")

    @property
    def k(self) -> int:
        """The k-mer size of the model."""
        return self.config.k

    def updated(self, **values) -> BertConfig:
        """A copy of the start's config with `values` set (dropout, a task head's labels)."""
        result = config_from_dict(self.config.to_dict())
        for key, value in values.items():
            setattr(result, key, value)
        return result

    def build(self, model_class: type[PreTrainedModel], config: BertConfig | None = None,
              attn_implementation: str = "sdpa") -> PreTrainedModel:
        """`model_class` with `config` (default: the start's), its encoder weights (and any matching head) from
        the start."""
        config = config or self.config
        if self.init != RANDOM and self.weights is None:
            return self._from_directory(model_class, config, attn_implementation)
        model = model_class._from_config(config, attn_implementation=attn_implementation)
        if self.weights is not None:
            self._load_checkpoint_weights(model)
        return model

    def _from_directory(self, model_class: type[PreTrainedModel], config: BertConfig,
                        attn_implementation: str) -> PreTrainedModel:
        weights = _weights_file(Path(self.init))
        try:
            model, info = model_class.from_pretrained(self.init, config=config, trust_remote_code=False,
                                                      weights_only=True, attn_implementation=attn_implementation,
                                                      ignore_mismatched_sizes=True, output_loading_info=True)
        except READ_ERRORS as error:
            raise unreadable(weights, error) from error
        mismatched = sorted(item for item in info["mismatched_keys"] if in_encoder(item[0]))
        if mismatched:
            key, stored, wanted = mismatched[0]
            raise DnabertError(f"{self.init}: the weights do not fit its config.json ({key} is {tuple(stored)}, the "
                               f"config asks for {tuple(wanted)}); a model of another k or size?")
        missing, unexpected = (sorted(key for key in info[kind] if in_encoder(key))
                               for kind in ("missing_keys", "unexpected_keys"))
        if missing or unexpected:  # a head's keys (a published model's cls.* MLM head) may differ; the encoder's not
            found = "; ".join(f"{what} {', '.join(keys[:3])}" + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
                              for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys)
            raise DnabertError(f"{weights}: its encoder weights do not match a BERT encoder ({found}); export the "
                               "model again with save_pretrained, or rename its keys to BERT's")
        return model.train()

    def _load_checkpoint_weights(self, model: PreTrainedModel) -> None:
        state = self.weights
        own = model.state_dict()
        if not any(key.startswith("bert.") for key in own):
            state = {key.removeprefix("bert."): value for key, value in state.items()}
        usable = {key: value for key, value in state.items() if key in own and own[key].shape == value.shape}
        encoder = [key for key in own if in_encoder(key)]
        missing = [key for key in encoder if key not in usable]
        if missing and any(".base_layer." in key for key in state):
            raise DnabertError(f"{self.init}: a finetune=lora checkpoint (adapter weights, kept for resuming); use "
                               f"the merged HF directory beside it, {hf_directory_of(self.init)}")
        if missing:
            raise DnabertError(f"model.init={self.init}: checkpoint lacks encoder weights such as {missing[0]}")
        model.load_state_dict(usable, strict=False)


def in_encoder(key: str) -> bool:
    """Whether a state-dict key belongs to the BERT encoder (embeddings and layers) rather than a task head."""
    return key.removeprefix("bert.").startswith(("embeddings.", "encoder."))


def save_hf_directory(model: PreTrainedModel, directory: str | Path, state_dict: dict | None = None,
                      provenance: dict | None = None, metrics: dict[str, float] | None = None) -> Path:
    """Write `model` (with `state_dict`'s weights if given), its k-mer tokenizer and its model card (with the run's
    provenance and metrics where known) as a standard HF directory, atomically (temp dir + rename)."""

    def build(work: Path) -> None:
        model.save_pretrained(work, safe_serialization=True, state_dict=state_dict)
        DNAKmerTokenizer(k=kmer_size(model.config)).save_pretrained(work)
        write_model_card(work, model.config, kmer_size(model.config), model.num_parameters(), provenance, metrics)

    return build_directory(Path(directory), build)


def hf_directory_of(checkpoint_path: str | Path) -> Path:
    """The HF directory that accompanies a Lightning checkpoint file (`x.ckpt` -> `x.hf/`)."""
    path = Path(checkpoint_path)
    return path.with_name(path.name.removesuffix(".ckpt") + ".hf")
