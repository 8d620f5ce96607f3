"""Which weights fine-tuning trains: all (`full`) or LoRA adapters in the encoder plus the head (`lora`, through
`peft`); and how a LoRA model is saved. (`frozen_probe` is a logistic regression: `dnabert.models.linear_probe`.)"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from torch import nn
from transformers import PreTrainedModel

from dnabert.atomic import build_directory
from dnabert.errors import DnabertError
from dnabert.models.checkpoints import in_encoder, save_hf_directory

ADAPTER_DIRECTORY = "adapter"
"""Sub-directory of a LoRA model's HF directory that holds the `peft` adapter."""


def full(model: PreTrainedModel) -> PreTrainedModel:
    """Every weight trains (DNABERT's fine-tuning)."""
    return model


def head_modules(model: PreTrainedModel) -> list[str]:
    """Modules with weights outside the pretrained embeddings and layers: the pooler (which masked-k-mer pretraining
    never trains), any chunk aggregator and the classifier."""
    return sorted({name.rsplit(".", 1)[0] for name, _ in model.named_parameters() if not in_encoder(name)})


def lora(model: PreTrainedModel, rank: int = 8, alpha: float = 16, dropout: float = 0.1,
         target_modules: Sequence[str] = ("query", "value")) -> PeftModel:
    """LoRA adapters on the encoder's `target_modules` linear layers; they and the head train, the rest is frozen."""
    available = sorted({name.rsplit(".", 1)[-1] for name, module in model.bert.encoder.named_modules()
                        if isinstance(module, nn.Linear)})
    unknown = [name for name in target_modules if name not in available]
    if unknown:
        raise DnabertError(f"finetune.target_modules: no linear layer named '{unknown[0]}' in the encoder; "
                           f"choose from {', '.join(available)}")
    try:
        config = LoraConfig(task_type=TaskType.SEQ_CLS, r=rank, lora_alpha=alpha, lora_dropout=dropout,
                            target_modules=list(target_modules), modules_to_save=head_modules(model))
        return get_peft_model(model, config)
    except ValueError as error:
        raise DnabertError(f"finetune: {error}") from None


def save_lora_directory(model: PeftModel, directory: str | Path) -> None:
    """The adapter merged into a plain HF directory (dnabert, `transformers`), and the adapter itself in its
    `adapter/` sub-directory (`peft`, on top of the model.init directory)."""
    save_hf_directory(copy.deepcopy(model).merge_and_unload(), directory)
    build_directory(Path(directory) / ADAPTER_DIRECTORY, model.save_pretrained)
