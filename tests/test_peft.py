"""Parameter-efficient fine-tuning on real splice sites: LoRA (peft) and a frozen-encoder probe through the real
entry point (what trains, what is saved, how it reloads and resumes), and gradient checkpointing."""

from __future__ import annotations

import copy
import csv
import json

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoConfig, BertForMaskedLM, BertForSequenceClassification

from dnabert.config import composed as compose_config
from dnabert.config import register_resolvers
from dnabert.errors import DnabertError
from dnabert.models.checkpoints import save_hf_directory
from dnabert.models.inference import load_classifier, predict
from dnabert.models.parameter_efficient import lora
from dnabert.tokenization import batch_kmer_ids
from dnabert.training import data_and_module
from tests.conftest import data_file, train

register_resolvers()
CLASSES = 3  # splice: ei, ie, n
LORA = {"rank": 4, "target_modules": ["query", "value", "key"]}


def composed(overrides: list[str]):
    return compose_config(["paths.output_dir=out", "task=classify", "model=tiny", *overrides])


@pytest.fixture(scope="module")
def tiny_config():
    return instantiate(composed([]).model.config)


def pretrained(directory, model):
    """`model` (tiny, random) saved as a dnabert HF directory: the starting point of fine-tuning."""
    save_hf_directory(model, directory)
    return directory


@pytest.fixture(scope="module")
def splice(tmp_path_factory):
    """Every 10th row of the primate splice set (3 classes; every 5th of the half in tests/data): 200 training, 119
    test rows."""
    folder = tmp_path_factory.mktemp("splice_data")
    for split in ("train", "test"):
        lines = data_file(f"splice_primate_{split}.tsv").read_text().splitlines()
        (folder / f"{split}.tsv").write_text("\n".join([lines[0], *lines[1::5]]) + "\n")
    return folder


def fine_tune(cwd, init, splice, *overrides: str):
    """A tiny DNABERT-6 from `init` fine-tuned on the splice subset, 23 steps per epoch."""
    return train(["task=classify", "logger=csv", f"model.init={init}", "task.optimizer.lr=2e-3", "data.batch_size=8",
                  f"data.train={splice / 'train.tsv'}", f"data.test={splice / 'test.tsv'}",
                  f"paths.output_dir={cwd / 'run'}", *overrides], cwd)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_config, splice):
    """LoRA from a masked-LM directory (no pooler, as dnabert pretraining writes it): one epoch, then the same command
    for two epochs, which resumes from its last.ckpt (46 steps in all)."""
    cwd = tmp_path_factory.mktemp("lora")
    init = pretrained(cwd / "pretrained", BertForMaskedLM(tiny_config))
    targets = ",".join(LORA["target_modules"])
    steps = []
    for epochs in (1, 2):
        result = fine_tune(cwd, init, splice, "finetune=lora", f"finetune.rank={LORA['rank']}",
                           f"finetune.target_modules=[{targets}]", f"trainer.max_epochs={epochs}",
                           "callbacks.schedule=null")
        assert result.returncode == 0, result.stderr[-3000:]
        steps.append(torch.load(cwd / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"])
    return {"run": cwd / "run", "init": init, "steps": steps}


def test_lora_trains_only_adapters_and_head_and_resumes(lora_run, tiny_config):
    checkpoint = torch.load(lora_run["run"] / "checkpoints" / "last.ckpt", weights_only=True)
    first, second = lora_run["steps"]
    assert first > 20 and second == checkpoint["global_step"] == 2 * first  # the second command resumed
    state = {key.removeprefix("model.base_model.model."): value for key, value in checkpoint["state_dict"].items()}
    start = load_file(lora_run["init"] / "model.safetensors")
    frozen = {key.replace(".base_layer", ""): value for key, value in state.items()
              if key.startswith("bert.") and ".lora_" not in key and "modules_to_save" not in key
              and "original_module" not in key}
    assert frozen.keys() == {key for key in start if key.startswith("bert.")}
    assert all(torch.equal(frozen[key], start[key]) for key in frozen)  # every pretrained weight as it was
    adapters = [key for key in state if ".lora_B." in key]
    assert len(adapters) == tiny_config.num_hidden_layers * len(LORA["target_modules"])
    assert all(state[key].abs().max() > 0 for key in adapters)  # LoRA B starts at zero: trained
    for head in ("bert.pooler.dense", "classifier"):
        assert not torch.equal(state[f"{head}.modules_to_save.default.weight"], state[f"{head}.original_module.weight"])

    hidden, layers = tiny_config.hidden_size, tiny_config.num_hidden_layers
    adapter_count = layers * len(LORA["target_modules"]) * LORA["rank"] * (hidden + hidden)  # A: r x in, B: out x r
    head_count = (hidden * hidden + hidden) + (hidden * CLASSES + CLASSES)  # pooler, classifier
    trained = sum(s["exp_avg"].numel() for s in checkpoint["optimizer_states"][0]["state"].values())
    assert trained == adapter_count + head_count

    merged = load_file(lora_run["run"] / "checkpoints" / "last.hf" / "model.safetensors")
    targets = tuple(f".{name}.weight" for name in LORA["target_modules"])
    for key, value in start.items():
        if key.startswith("bert.encoder."):
            assert torch.equal(merged[key], value) != key.endswith(targets), key


def test_lora_result_reloads_identically_in_dnabert_transformers_and_peft(lora_run, splice):
    directory = lora_run["run"] / "checkpoints" / "best.hf"
    rows = list(csv.DictReader(open(splice / "test.tsv"), delimiter="\t"))
    sequences = [row["sequence"] for row in rows]
    ours = predict(load_classifier(directory), sequences, batch_size=256, progress=False)

    encoded = batch_kmer_ids(sequences, k=6, max_tokens=512)
    inputs = {"input_ids": torch.from_numpy(encoded.input_ids),
              "attention_mask": torch.from_numpy(encoded.attention_mask)}
    plain = BertForSequenceClassification.from_pretrained(directory).eval()
    base = BertForSequenceClassification.from_pretrained(lora_run["init"], config=AutoConfig.from_pretrained(directory))
    adapted = PeftModel.from_pretrained(base, directory / "adapter").eval()
    with torch.no_grad():
        for model in (plain, adapted):
            assert np.allclose(model(**inputs).logits.softmax(-1).numpy(), ours, atol=1e-5)

    names = [plain.config.id2label[i] for i in range(CLASSES)]
    accuracy = np.mean([names[i] == row["label"] for i, row in zip(ours.argmax(1), rows)])
    tested = json.loads((lora_run["run"] / "test_metrics.json").read_text())  # the unmerged model, from best.ckpt
    assert accuracy == pytest.approx(tested["test/accuracy"], abs=2e-3)
    with pytest.raises(DnabertError, match=r"finetune=lora checkpoint.*best\.hf"):
        load_classifier(lora_run["run"] / "checkpoints" / "best.ckpt")  # adapter weights: the merged .hf serves


def test_unknown_lora_target_is_one_clear_error(tiny_config):
    with pytest.raises(DnabertError, match="no linear layer named 'qkv' in the encoder; choose from dense, key"):
        lora(BertForSequenceClassification(tiny_config), target_modules=["query", "qkv"])


def test_gradient_checkpointing_trains_and_computes_the_same(tmp_path, splice):
    cfg = composed(["finetune=lora", "task.gradient_checkpointing=true", "data.batch_size=8",
                    f"data.train={splice / 'train.tsv'}"])
    data, module = data_and_module(cfg)
    trainer = L.Trainer(max_steps=3, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                        default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    checkpointed = module.model
    assert checkpointed.get_base_model().is_gradient_checkpointing
    plain = copy.deepcopy(checkpointed)
    plain.get_base_model().gradient_checkpointing_disable()

    batch = next(iter(data.train_dataloader()))
    outputs = {}
    for name, model in (("checkpointed", checkpointed), ("plain", plain)):
        model.eval()
        with torch.no_grad():
            evaluated = model(**batch).logits
        model.train()
        model.zero_grad(set_to_none=True)
        calls = []
        hook = model.get_base_model().bert.encoder.layer[0].attention.self.query.register_forward_hook(
            lambda *_, calls=calls: calls.append(1))
        torch.manual_seed(0)  # the same dropout masks (recomputation restores the RNG state)
        loss = model(**batch).loss
        loss.backward()
        hook.remove()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        outputs[name] = evaluated, loss.detach(), grads, len(calls)
    (eval_a, loss_a, grads_a, calls_a), (eval_b, loss_b, grads_b, calls_b) = outputs["checkpointed"], outputs["plain"]
    assert (calls_a, calls_b) == (2, 1)  # the layer ran again in the backward pass
    assert torch.equal(eval_a, eval_b) and torch.isfinite(loss_a) and torch.equal(loss_a, loss_b)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b))
