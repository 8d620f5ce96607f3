"""The model card (`README.md`, with the Hub's YAML metadata) in every exported HF directory: what the model is, what
it was trained on, how well it did, and how to run it with plain transformers or with dnabert."""

from __future__ import annotations

from pathlib import Path

from transformers import PretrainedConfig

from dnabert.atomic import write_text_atomic
from dnabert.models.long_sequence import DNABertLongConfig

CARD = "README.md"


def _metadata(k: int, fine_tuned: bool) -> str:
    tags = ["dna", "genomics", "dnabert", f"{k}-mer"]
    return "\n".join(["---", "library_name: transformers",
                      f"pipeline_tag: {'text-classification' if fine_tuned else 'fill-mask'}",
                      "tags:", *(f"- {tag}" for tag in tags), "---"])


def _architecture(config: PretrainedConfig, k: int, parameters: int) -> str:
    return (f"BERT over {k}-mers (DNABERT's vocabulary: {config.vocab_size} tokens), "
            f"{config.num_hidden_layers} layers, hidden size {config.hidden_size}, {config.num_attention_heads} "
            f"attention heads, feed-forward {config.intermediate_size}, {config.max_position_embeddings} positions; "
            f"{parameters / 1e6:,.1f} M parameters")


def _task(config: PretrainedConfig) -> str:
    labels = ", ".join(str(config.id2label[i]) for i in range(config.num_labels))
    kind = {"single_label_classification": "classification", "multi_label_classification": "multi-label "
            "classification", "regression": "regression"}.get(config.problem_type, config.problem_type)
    return f"{kind}; outputs: {labels}"


def _training(provenance: dict | None) -> list[str]:
    if not provenance:
        return ["- not recorded (the run directory's provenance.json was not found)"]
    config, lines = provenance.get("config", {}), []
    data = config.get("data", {})
    for key, checksum in provenance.get("data_sha256", {}).items():
        lines.append(f"- `data.{key}`: `{Path(str(data.get(key, '?'))).name}` (SHA-256 `{checksum[:16]}…`)")
    start = config.get("model", {}).get("init")
    if start is not None:
        lines.append(f"- started from: {'random weights' if start == 'random' else f'`{start}`'}")
    git = provenance.get("git", {})
    if git.get("commit"):
        dirty = " (with uncommitted changes)" if git["dirty"] else ""
        lines.append(f"- dnabert commit `{git['commit'][:12]}`{dirty}")
    return lines or ["- no data files recorded"]


def _metrics(metrics: dict[str, float]) -> list[str]:
    if not metrics:
        return ["Not scored yet (no validation or test run finished when this directory was written)."]
    rows = ["| metric | value |", "|---|---:|"]
    return rows + [f"| {name} | {value:.4f} |" for name, value in sorted(metrics.items())]


def _usage(config: PretrainedConfig, k: int, fine_tuned: bool) -> list[str]:
    if isinstance(config, DNABertLongConfig):
        return ["This is a dnabert long-sequence model (a custom class): it loads with dnabert, not with plain "
                "transformers' Auto classes.", "", "```bash", "pip install dnabert",
                "dnabert predict MODEL_DIR --input sequences.tsv --out predictions.tsv", "```"]
    head = "AutoModelForSequenceClassification" if fine_tuned else "AutoModelForMaskedLM"
    return [
        f"The tokenizer reads DNA written as space-separated overlapping {k}-mers (as DNABERT did):", "",
        "```python", "import torch", f"from transformers import AutoTokenizer, {head}", "",
        'tokenizer = AutoTokenizer.from_pretrained("MODEL_DIR")',
        f'model = {head}.from_pretrained("MODEL_DIR").eval()', 'sequence = "ACGTAGCATCGGATCTATCTATCGACACTTGG"',
        f'kmers = " ".join(sequence[i : i + {k}] for i in range(len(sequence) - {k} + 1))',
        "with torch.no_grad():",
        "    outputs = model(**tokenizer(kmers, return_tensors=\"pt\"))", "```", "",
        "With dnabert (raw sequences, batching, devices, attention and attributions):", "", "```bash",
        *(["dnabert predict MODEL_DIR --input sequences.tsv --out predictions.tsv",
           "dnabert evaluate MODEL_DIR --input labelled.tsv"] if fine_tuned else
          ["dnabert embed MODEL_DIR --input sequences.tsv --out embeddings.npz"]), "```"]


def model_card(config: PretrainedConfig, k: int, parameters: int, provenance: dict | None = None,
               metrics: dict[str, float] | None = None) -> str:
    """The card's text: Hub metadata, architecture, task, training data, metrics and usage."""
    fine_tuned = bool(getattr(config, "problem_type", None))
    title = f"DNABERT-{k} " + ("fine-tuned" if fine_tuned else "pretrained (masked k-mer model)")
    lines = [_metadata(k, fine_tuned), "", f"# {title}", "", "Exported by dnabert (DNABERT, Ji et al., "
             "Bioinformatics 2021, rebuilt on transformers).", "", "## Model", "",
             f"- {_architecture(config, k, parameters)}", f"- k = {k}"]
    if fine_tuned:
        lines.append(f"- task: {_task(config)}")
    lines += ["", "## Training data", "", *_training(provenance), "", "## Metrics", "", *_metrics(metrics or {}),
              "", "## Usage", "", *_usage(config, k, fine_tuned), ""]
    return "\n".join(lines)


def write_model_card(directory: Path, config: PretrainedConfig, k: int, parameters: int,
                     provenance: dict | None = None, metrics: dict[str, float] | None = None) -> None:
    """Write (or rewrite, once more is known) the card of an HF directory."""
    write_text_atomic(Path(directory) / CARD, model_card(config, k, parameters, provenance, metrics))
