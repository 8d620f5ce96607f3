"""Fine-tuning through the real entry point: tiny models on real labelled sets, DNABERT directories, predict."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from dnabert.tokenization import reverse_complement_text
from tests.conftest import (
    LAMBDA,
    ROOT,
    assert_user_error,
    data_file,
    dnabert_cli,
    genome_text,
    original_dnabert_directory,
    train,
    train_in_process,
)

TINY = ["task=classify", "model=tiny", "task.optimizer.lr=1e-3", "logger=csv"]


def read_tsv(path) -> list[dict]:
    return list(csv.DictReader(open(path), delimiter="\t"))


@pytest.fixture(scope="module")
def splice_run(tmp_path_factory):
    """A tiny random-init DNABERT-6 fine-tuned for 6 epochs on half the primate splice-junction set (3 classes; the
    steps of 3 epochs on the whole set)."""
    cwd = tmp_path_factory.mktemp("splice")
    result = train([*TINY, f"data.train={data_file('splice_primate_train.tsv')}",
                    f"data.test={data_file('splice_primate_test.tsv')}", "trainer.max_epochs=6",
                    "callbacks.schedule=null", f"paths.output_dir={cwd / 'run'}"], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "run"


def test_tiny_model_beats_chance_on_real_splice_sites(splice_run):
    metrics = json.loads((splice_run / "test_metrics.json").read_text())
    majority = 299 / 593  # 'n' in the fixture's half of the StatLog test split
    assert metrics["test/accuracy"] > majority + 0.1
    assert metrics["test/mcc"] > 0.3 and metrics["test/auroc"] > 0.75
    config = json.loads((splice_run / "checkpoints" / "best.hf" / "config.json").read_text())
    assert config["id2label"] == {"0": "ei", "1": "ie", "2": "n"} and config["k"] == 6


def test_predict_writes_one_row_per_sequence_from_hf_dir_and_checkpoint(splice_run, tmp_path):
    test_file = data_file("splice_primate_test.tsv")
    outputs = {}
    for name in ("best.hf", "best.ckpt"):
        out = tmp_path / f"{name}.tsv"
        result = dnabert_cli(["predict", str(splice_run / "checkpoints" / name), "--input", str(test_file),
                              "--out", str(out), "--quiet"], ROOT)
        assert result.returncode == 0, result.stderr
        outputs[name] = read_tsv(out)
    rows = outputs["best.hf"]
    assert len(rows) == 593 and list(rows[0]) == ["name", "p_ei", "p_ie", "p_n", "prediction"]
    probabilities = np.array([[float(r[c]) for c in ("p_ei", "p_ie", "p_n")] for r in rows])
    assert np.allclose(probabilities.sum(1), 1, atol=1e-4)
    other = np.array([[float(r[c]) for c in ("p_ei", "p_ie", "p_n")] for r in outputs["best.ckpt"]])
    assert np.allclose(probabilities, other, atol=1e-5)
    truth = [r["label"] for r in read_tsv(test_file)]
    accuracy = np.mean([r["prediction"] == t for r, t in zip(rows, truth)])
    scored = json.loads((splice_run / "test_metrics.json").read_text())["test/accuracy"]
    assert accuracy == pytest.approx(scored, abs=1e-3)


def test_predict_averages_an_ensemble_and_refuses_models_of_another_task(splice_run, tmp_path):
    best = splice_run / "checkpoints" / "best.hf"
    other = tmp_path / "other.hf"  # the same task, other weights: the classifier's sign flipped
    shutil.copytree(best, other)
    model = BertForSequenceClassification.from_pretrained(best)
    with torch.no_grad():
        model.classifier.weight.neg_()
    model.save_pretrained(other)
    test_file = data_file("splice_primate_test.tsv")
    columns = ("p_ei", "p_ie", "p_n")

    def probabilities(*models):
        out = tmp_path / f"{len(models)}-{models[0].name}.tsv"
        result = dnabert_cli(["predict", *map(str, models), "--input", str(test_file), "--out", str(out), "--quiet"],
                             ROOT)
        assert result.returncode == 0, result.stderr
        rows = read_tsv(out)
        assert [r["prediction"] for r in rows] == [columns[i][2:] for i in
                                                   np.argmax([[float(r[c]) for c in columns] for r in rows], 1)]
        return np.array([[float(r[c]) for c in columns] for r in rows])

    first, second, both = probabilities(best), probabilities(other), probabilities(best, other)
    assert not np.allclose(first, second, atol=1e-2)
    assert np.allclose(both, (first + second) / 2, atol=1e-5)

    relabelled = tmp_path / "relabelled.hf"
    shutil.copytree(best, relabelled)
    config = json.loads((relabelled / "config.json").read_text())
    config["id2label"] = {"0": "donor", "1": "acceptor", "2": "neither"}
    config["label2id"] = {name: int(i) for i, name in config["id2label"].items()}
    (relabelled / "config.json").write_text(json.dumps(config))
    out = tmp_path / "mixed.tsv"
    assert_user_error(dnabert_cli(["predict", str(best), str(relabelled), "--input", str(test_file), "--out", str(out)],
                                  ROOT), "relabelled.hf", "an ensemble needs models of one task")
    assert not out.exists()


def published_layout(directory, k: int):
    """A DNABERT directory as `zhihan1996/DNA_bert_k` is published (config.json, vocab.txt, pytorch_model.bin,
    tokenizer files) from the original config files (tests/data), with random weights and one layer to stay fast."""
    config = json.loads((original_dnabert_directory(directory, k) / "config.json").read_text())
    model = BertForMaskedLM(BertConfig(**{**config, "num_hidden_layers": 1}))
    (directory / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1}))
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    return model


def test_fine_tune_from_a_published_dnabert_directory_in_its_own_kmer_format(tmp_path):
    pretrained = published_layout(tmp_path / "DNA_bert_6", 6)
    sample = data_file("dnabert_format_6mer_200.tsv")
    result = train(["task=classify", f"model.init={tmp_path / 'DNA_bert_6'}", f"data.train={sample}",
                    f"data.test={sample}", "trainer.max_epochs=1", "callbacks.schedule=null",
                    "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2", "data.max_tokens=128",
                    f"paths.output_dir={tmp_path / 'run'}"],
                   tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    tuned = BertForSequenceClassification.from_pretrained(tmp_path / "run" / "checkpoints" / "last.hf")
    assert tuned.config.k == 6 and tuned.config.num_labels == 2 and tuned.config.num_hidden_layers == 1
    embeddings = pretrained.bert.embeddings.word_embeddings.weight
    assert not torch.equal(tuned.bert.embeddings.word_embeddings.weight, embeddings)  # trained ...
    assert torch.allclose(tuned.bert.embeddings.word_embeddings.weight, embeddings, atol=0.05)  # ... from there


def test_fine_tune_from_a_dnabert_pretraining_checkpoint(tmp_path):
    genome = LAMBDA
    pretrain = train(["model=tiny", f"data.genome={genome}", "trainer.max_steps=4", "trainer.val_check_interval=2",
                      "data.val_windows=16", "data.max_tokens=64", f"paths.output_dir={tmp_path / 'pre'}"], tmp_path)
    assert pretrain.returncode == 0, pretrain.stderr[-3000:]
    checkpoint = tmp_path / "pre" / "checkpoints" / "last.ckpt"
    splice = data_file("splice_primate_train.tsv")
    result = train(["task=classify", f"model.init={checkpoint}", f"data.train={splice}", "trainer.max_epochs=1",
                    "callbacks.schedule=null", "+trainer.limit_train_batches=2",
                    f"paths.output_dir={tmp_path / 'ft'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    tuned = BertForSequenceClassification.from_pretrained(tmp_path / "ft" / "checkpoints" / "last.hf")
    start = state["model.bert.embeddings.position_embeddings.weight"]
    assert torch.allclose(tuned.bert.embeddings.position_embeddings.weight, start, atol=0.01)


def test_a_published_directory_with_legacy_layer_norm_names_loads_and_renamed_encoder_keys_are_refused(tmp_path):
    """DNABERT's released weights name LayerNorm parameters gamma/beta (transformers renames them); a directory whose
    encoder keys match no BERT encoder would fine-tune from random weights with only a library warning: refused,
    naming the keys."""
    from dnabert.models.checkpoints import ModelStart

    model = published_layout(tmp_path / "legacy", 6)
    state = torch.load(tmp_path / "legacy" / "pytorch_model.bin", weights_only=True)
    legacy = {key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): value
              for key, value in state.items()}
    assert legacy.keys() != state.keys()
    torch.save(legacy, tmp_path / "legacy" / "pytorch_model.bin")
    loaded = ModelStart.read(str(tmp_path / "legacy")).build(BertForSequenceClassification)
    assert torch.equal(loaded.bert.embeddings.LayerNorm.weight, model.bert.embeddings.LayerNorm.weight)

    published_layout(tmp_path / "renamed", 6)
    renamed = {key.replace("encoder.layer.", "encoder.block."): value for key, value in state.items()}
    torch.save(renamed, tmp_path / "renamed" / "pytorch_model.bin")
    result = train(["task=classify", f"model.init={tmp_path / 'renamed'}",
                    f"data.train={data_file('splice_primate_train.tsv')}", f"paths.output_dir={tmp_path / 'run'}"],
                   tmp_path)
    line = assert_user_error(result, "pytorch_model.bin", "encoder weights do not match a BERT encoder",
                             "missing bert.encoder.layer.0.", "unexpected bert.encoder.block.0.")
    assert "more" in line and not (tmp_path / "run" / "checkpoints").exists()


def test_a_run_that_stops_inside_its_first_epoch_validates_scores_test_and_says_what_it_truncated(tmp_path):
    """trainer.max_steps=3 ends inside the first epoch (29 steps): the final weights are validated, so best.hf
    exists and test is scored; 60-nt rows read through 32 tokens (35 nt) are truncated, said once per split."""
    result = train([*TINY, f"data.train={data_file('splice_primate_train.tsv')}",
                    f"data.test={data_file('splice_primate_test.tsv')}", "trainer.max_steps=3", "data.max_tokens=32",
                    f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "checkpoints" / "best.hf" / "model.safetensors").exists()
    assert torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["global_step"] == 3
    assert json.loads((run / "test_metrics.json").read_text())["test/accuracy"] > 0
    warnings = [line for line in result.stderr.splitlines() if "are longer than the 35 nt the model reads" in line]
    assert len(warnings) == 2 and "data.train" in warnings[0] and "1,000 of 1,000 sequences" in warnings[0]
    assert "data.test" in warnings[1] and "593 of 593" in warnings[1]
    no_validation = train([*TINY, f"data.train={data_file('splice_primate_train.tsv')}",
                           f"data.test={data_file('splice_primate_test.tsv')}", "trainer.max_steps=3",
                           "+trainer.limit_val_batches=0", "callbacks.schedule=null",
                           f"paths.output_dir={tmp_path / 'none'}"], tmp_path)
    assert_user_error(no_validation, "ended at step 3 without a validation", "data.val")


def test_predict_says_how_many_sequences_it_truncated(splice_run, tmp_path):
    long = genome_text(data_file("ecoli_k12_300kb.fa.gz"))
    (tmp_path / "seqs.tsv").write_text("sequence\n" + "\n".join([long[:100], long[:600], long[1000:1700]]) + "\n")
    out = tmp_path / "p.tsv"
    result = dnabert_cli(["predict", str(splice_run / "checkpoints" / "best.hf"), "--input", str(tmp_path / "seqs.tsv"),
                          "--out", str(out), "--max-tokens", "128", "--quiet"], ROOT)
    assert result.returncode == 0, result.stderr
    assert ("dnabert: warning: predict: 2 of 3 sequences are longer than the 131 nt the model reads and were "
            "truncated to their first 131 nt; give shorter sequences, --max-tokens up to 512") in result.stderr
    assert len(read_tsv(out)) == 3


@pytest.fixture
def bad_files(tmp_path):
    files = {
        "train": "sequence\tlabel\n"
                 + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(["ACGTACGTAA", "TTGACGTACG"] * 10)),
        "unknown": "sequence\tlabel\nACGTACGTAC\t7\n",
        "short": "sequence\tlabel\nACGTACGTAC\t0\nACG\t1\n",
        "empty": "sequence\tlabel\n",
        "columns": "sequence\tlabel\nACGTACGTAC\t0\textra\n",
        "regress": "sequence\tvalue\nACGTACGTAC\t0.5\nACGTACGTAC\thigh\n",
        "kmers4": "sequence\tlabel\nACGT CGTA GTAC\t0\nTTGA TGAC GACG\t1\n",
    }
    for name, text in files.items():
        (tmp_path / f"{name}.tsv").write_text(text)
    return tmp_path


@pytest.mark.parametrize("overrides,fragments", [
    (["data.test={d}/unknown.tsv"], ["unknown.tsv line 2", "label '7' is not one of ['0', '1']"]),
    (["data.test={d}/short.tsv"], ["short.tsv line 3", "shorter than k=6"]),
    (["data.test={d}/empty.tsv"], ["empty.tsv", "no data rows"]),
    (["data.test={d}/columns.tsv"], ["columns.tsv line 2", "3 columns where the header has 2"]),
    (["data.train={d}/regress.tsv", "data.task_type=regression"],
     ["regress.tsv line 3", "value='high' is not a number"]),
    (["data.label_columns=[tf]"], ["train.tsv line 1", "no column 'tf'"]),
    (["data.train={d}/kmers4.tsv"], ["kmers4.tsv", "written as 4-mers but the model uses k=6"]),
    (["data.test={d}/missing.tsv"], ["data.test={d}/missing.tsv", "not found"]),
    (["model.init={d}/nowhere"], ["nowhere", "not found"]),
    (["data.val_overlap=-1"], ["data.val_overlap=-1", "use a length in nucleotides"]),
    (["data.val_overlap=5"], ["train.tsv", "sharing 5 nt holds 20 rows, more than the 2 validation rows"]),
])
def test_bad_labelled_input_is_one_clear_line(bad_files, overrides, fragments):
    output = bad_files / "out"
    args = ["task=classify", "model=tiny", f"data.train={bad_files}/train.tsv", f"paths.output_dir={output}",
            *[o.format(d=bad_files) for o in overrides]]
    assert_user_error(train_in_process(args, bad_files), *[f.format(d=bad_files) for f in fragments])
    assert not (output / "checkpoints").exists() and not (output / "test_metrics.json").exists()


def stretches(sequences: list[str], length: int) -> set[str]:
    """Every `length`-nt stretch of the sequences and of their reverse complements."""
    strands = [*sequences, *map(reverse_complement_text, sequences)]
    return {s[i:i + length] for s in strands for i in range(len(s) - length + 1)}


def test_validation_holds_out_whole_groups_of_overlapping_windows():
    """Real fly promoter windows overlap (nearby TSSs): in a fixture where half the rows belong to such groups, drawn
    row by row more than a third of validation shares 50 nt with training; with data.val_overlap=50 no validation
    window shares 50 nt with a training window, on either strand."""
    from dnabert.data.finetuning import LabelledDataModule

    def split(**options):
        data = LabelledDataModule(str(data_file("promoter_dm3_overlap_600.tsv")), val_fraction=0.1, seed=3, **options)
        data.setup()
        train, val = data.splits["train"], data.splits["val"]
        assert len(train) + len(val) == 599 and set(train.names).isdisjoint(val.names)
        seen = stretches(train.sequences, 50)
        leaked = sum(any(s[i:i + 50] in seen for i in range(len(s) - 49)) for s in val.sequences)
        return len(val), set(val.labels.ravel().tolist()), leaked

    rows, classes, leaked = split()
    assert rows == 60 and classes == {0, 1} and leaked > 20  # 34
    rows, classes, leaked = split(val_overlap=50)
    assert rows == 60 and classes == {0, 1} and leaked == 0


def test_checkpoint_directory_missing_weights_is_refused(tmp_path, bad_files):
    published_layout(tmp_path / "model", 6)
    (tmp_path / "model" / "pytorch_model.bin").unlink()
    result = train(["task=classify", f"model.init={tmp_path / 'model'}", f"data.train={bad_files}/train.tsv",
                    f"paths.output_dir={tmp_path / 'out'}"], tmp_path)
    assert_user_error(result, "model", "no weights file")


@pytest.fixture(scope="module")
def ecoli_windows(tmp_path_factory) -> tuple:
    """800 real 100-nt E. coli windows with computed targets: GC fraction, GC-rich and purine-rich flags."""
    genome = genome_text(data_file("ecoli_k12_300kb.fa.gz"))
    rng = np.random.default_rng(1)
    windows = [genome[s : s + 100] for s in rng.integers(0, len(genome) - 100, 800)]
    directory = tmp_path_factory.mktemp("ecoli_sets")
    for name, rows in (("train", windows[:600]), ("test", windows[600:])):
        gc = [(w.count("G") + w.count("C")) / len(w) for w in rows]
        purine = [(w.count("A") + w.count("G")) / len(w) for w in rows]
        lines = ["sequence\tgc\tgc_rich\tpurine_rich"] + [
            f"{w}\t{g:.3f}\t{int(g > 0.52)}\t{int(p > 0.5)}" for w, g, p in zip(rows, gc, purine)]
        (directory / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return directory


@pytest.mark.parametrize("task,metric,threshold", [("regress", "test/pearson", 0.5), ("multilabel", "test/auroc", 0.7)])
def test_regression_and_multilabel_heads_learn_real_targets(ecoli_windows, tmp_path, task, metric, threshold):
    labels = "[gc]" if task == "regress" else "[gc_rich,purine_rich]"
    result = train([f"task={task}", "model=tiny", "task.optimizer.lr=2e-3", f"data.train={ecoli_windows}/train.tsv",
                    f"data.test={ecoli_windows}/test.tsv", f"data.label_columns={labels}", "trainer.max_epochs=6",
                    "callbacks.schedule=null", "data.batch_size=16", f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert metrics[metric] > threshold, metrics
    out = tmp_path / "predictions.tsv"
    assert dnabert_cli(["predict", str(tmp_path / "run" / "checkpoints" / "best.hf"), "--input",
                        str(ecoli_windows / "test.tsv"), "--out", str(out), "--quiet"], ROOT).returncode == 0
    rows = read_tsv(out)
    assert len(rows) == 200 and len(rows[0]) == 1 + (1 if task == "regress" else 2)


def test_nucleotide_embedding_is_the_mean_of_the_covering_kmers():
    from dnabert.models.embedding import nucleotide_average

    states = torch.tensor([[[1.0], [2.0], [4.0], [0.0]]])  # 3 real 3-mers of a 5-nt sequence, one padding row
    result = nucleotide_average(states, torch.tensor([3]), k=3, width=5)
    assert result[0, :, 0].tolist() == pytest.approx([1.0, 1.5, 7 / 3, 3.0, 4.0])


@pytest.mark.parametrize("pooling,shape,suffix", [("cls", (593, 64), ".npz"), ("mean", (593, 64), ".npy"),
                                                  ("tokens", (593, 55, 64), ".npz"),
                                                  ("nucleotide", (593, 60, 64), ".npy")])
def test_embed_writes_one_row_per_sequence_with_its_name(splice_run, tmp_path, pooling, shape, suffix):
    from dnabert.cli import main

    out = tmp_path / f"embeddings{suffix}"
    main(["embed", str(splice_run / "checkpoints" / "best.ckpt"), "--input", str(data_file("splice_primate_test.tsv")),
          "--out", str(out), "--pooling", pooling, "--quiet"])
    if suffix == ".npz":
        archive = np.load(out)
        values, names = archive["embeddings"], list(archive["names"])
    else:
        values, names = np.load(out), out.with_suffix(".names.txt").read_text().splitlines()
    assert values.shape == shape and np.isfinite(values).all() and values.std() > 0
    assert names == [f"splice_primate_test.tsv:{line}" for line in range(2, 595)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({out.name, out.with_suffix(".names.txt").name}
                                                               if suffix == ".npy" else {out.name})


def test_evaluate_scores_the_run_s_test_file_as_the_run_did(splice_run, tmp_path, capsys):
    from dnabert.cli import main

    main(["evaluate", str(splice_run / "checkpoints" / "best.hf"), "--input", str(data_file("splice_primate_test.tsv")),
          "--out", str(tmp_path / "metrics.json"), "--quiet"])
    expected = json.loads((splice_run / "test_metrics.json").read_text())
    scores = json.loads((tmp_path / "metrics.json").read_text())
    assert scores.keys() == expected.keys() and scores == pytest.approx(expected, abs=1e-5)
    assert f"test/accuracy  {expected['test/accuracy']:.4f}" in capsys.readouterr().out.replace("   ", "  ")


def test_the_model_card_says_what_the_model_is_and_how_it_scored(splice_run):
    card = (splice_run / "checkpoints" / "best.hf" / "README.md").read_text()
    metadata = card.split("---\n")[1]
    assert "library_name: transformers\npipeline_tag: text-classification\n" in metadata
    assert all(f"- {tag}\n" in metadata for tag in ("dna", "genomics", "dnabert", "6-mer"))
    assert "- k = 6" in card and "- task: classification; outputs: ei, ie, n" in card
    provenance = json.loads((splice_run / "provenance.json").read_text())
    assert f"`splice_primate_train.tsv` (SHA-256 `{provenance['data_sha256']['train'][:16]}" in card
    for name, value in json.loads((splice_run / "test_metrics.json").read_text()).items():
        assert f"| {name} | {value:.4f} |" in card
    assert 'AutoTokenizer.from_pretrained("MODEL_DIR")' in card
    last = (splice_run / "checkpoints" / "last.hf" / "README.md").read_text()
    assert "| val/auroc |" in last and "| test/" not in last


def test_predict_reads_standard_input_and_writes_standard_output(splice_run, tmp_path, monkeypatch, capsys):
    from dnabert.cli import main

    best, test_file = str(splice_run / "checkpoints" / "best.hf"), data_file("splice_primate_test.tsv")
    main(["predict", best, "--input", str(test_file), "--out", str(tmp_path / "p.tsv"), "--quiet"])
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO(test_file.read_text()))
    main(["predict", best, "--input", "-", "--out", "-", "--quiet"])
    captured = capsys.readouterr()
    piped, written = captured.out.splitlines(), (tmp_path / "p.tsv").read_text().splitlines()
    assert len(piped) == 594 and [line.split("\t")[1:] for line in piped] == [row.split("\t")[1:] for row in written]
    assert "-: 593 sequences" in captured.err and list(tmp_path.iterdir()) == [tmp_path / "p.tsv"]
