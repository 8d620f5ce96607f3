"""What the README promises, each run for real: README command 1, bf16 training on the CPU, an Optuna sweep of real
trials, a SIGKILL in the middle of pretraining, reverse-complement averaging and augmentation, VCF contig aliases,
DNABERT_CACHE and the provenance dirty flag."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import BertForSequenceClassification

from dnabert.data.windows import WindowSampler, holdout_regions
from dnabert.genome.shards import GenomeShards, prepare_genome
from dnabert.models.checkpoints import save_hf_directory
from dnabert.provenance import checkout_relative, git_revision
from dnabert.tokenization import reverse_complement, reverse_complement_text
from tests.conftest import LAMBDA, ROOT, data_file, dnabert_cli, genome_text, run, train
from tests.test_interpret_attention import tiny_config
from tests.test_resume import SignalAt, hook

PRETRAIN = ["model=tiny", f"data.genome={LAMBDA}", "data.max_tokens=64", "data.val_windows=16", "logger=csv"]


def test_readme_command_1_trains_and_writes_what_the_readme_lists(tmp_path):
    """`python train.py` on the embedded lambda genome (here 20 steps, not the preset's), from another directory, with
    every warning shown: nothing a user cannot act on, a step counter, and a closing summary."""
    result = run([sys.executable, str(ROOT / "train.py"), "trainer.max_steps=20", "trainer.val_check_interval=10"],
                 tmp_path, env={"PYTHONWARNINGS": "default"})
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("*/*")
    for name in ("best.ckpt", "last.ckpt", "best.hf/config.json", "best.hf/model.safetensors", "best.hf/vocab.txt",
                 "best.hf/tokenizer.json", "best.hf/README.md", "last.hf/model.safetensors"):
        assert (run_dir / "checkpoints" / name).is_file(), name
    console = result.stdout + result.stderr
    for noise in ("💡 Tip", "srun", "deprecated", "ckpt_path", "v_num", "Epoch 0/-2", "Warning"):
        assert noise not in console, noise
    assert "Step 20/20" in console
    summary = result.stdout[result.stdout.index("dnabert: 20 steps in "):]
    for part in ("final validation: val/loss ", "val/accuracy ", "(most frequent k-mer: ", "(local k-mer statistics",
                 "best model (val/loss ", str(run_dir / "checkpoints" / "best.hf"), f"run directory: {run_dir}"):
        assert part in summary, part
    assert "pipeline_tag: fill-mask" in (run_dir / "checkpoints" / "best.hf" / "README.md").read_text()
    assert (run_dir / "csv").is_dir() and (run_dir / "config.yaml").is_file()
    assert np.isfinite(json.loads((run_dir / "metrics.json").read_text())["val/loss"])
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 20


def test_bf16_autocast_pretraining_runs_on_the_cpu(tmp_path):
    result = train([*PRETRAIN, "trainer=bf16", "trainer.accelerator=cpu", "trainer.max_steps=6",
                    "trainer.val_check_interval=3", f"paths.output_dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert provenance["config"]["trainer"]["precision"] == "bf16-mixed"
    assert np.isfinite(json.loads((tmp_path / "run" / "metrics.json").read_text())["val/loss"])
    weights = load_file(tmp_path / "run" / "checkpoints" / "last.hf" / "model.safetensors")
    assert all(value.dtype == torch.float32 for value in weights.values())  # autocast: fp32 master weights


def test_optuna_sweep_runs_two_real_trials(tmp_path):
    result = run([sys.executable, str(ROOT / "train.py"), "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
                  "model=tiny", "data.max_tokens=64", "trainer.max_epochs=1", "callbacks.schedule=null",
                  "callbacks.progress_bar=null", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2",
                  f"data.train={data_file('splice_primate_train.tsv')}", "logger=csv",
                  f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = [json.loads((tmp_path / "sweep" / str(job) / "provenance.json").read_text())["config"] for job in (0, 1)]
    assert trials[0]["task"]["optimizer"]["lr"] != trials[1]["task"]["optimizer"]["lr"]  # TPE drew two trials
    losses = [json.loads((tmp_path / "sweep" / str(job) / "metrics.json").read_text())["val/loss"] for job in (0, 1)]
    best = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(losses), rel=1e-5)


def test_sigkill_mid_pretraining_then_the_same_command_ends_as_an_uninterrupted_run(tmp_path):
    common = [*PRETRAIN, "trainer.max_steps=12", "trainer.val_check_interval=4"]
    straight = train([*common, f"paths.output_dir={tmp_path / 'straight'}"], tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    command = [*common, f"paths.output_dir={tmp_path / 'run'}", *hook("kill", SignalAt, step=10,
                                                                      signum=int(signal.SIGKILL))]
    killed = train(command, tmp_path)
    assert killed.returncode == -signal.SIGKILL
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    resumed = train(command, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (load_file(tmp_path / name / "checkpoints" / "last.hf" / "model.safetensors")
            for name in ("straight", "run"))
    assert a.keys() == b.keys() and all(torch.allclose(a[key], b[key], atol=1e-6) for key in a)
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("straight", "run")]
    assert metrics[1]["val/loss"] == pytest.approx(metrics[0]["val/loss"], abs=1e-6)


def test_predict_reverse_complement_is_the_mean_of_both_strands(tmp_path):
    """Random weights drawn wide score the two strands of real sequence differently: --reverse-complement gives
    their mean."""
    torch.manual_seed(0)
    model = BertForSequenceClassification._from_config(tiny_config(6, initializer_range=0.3))
    directory = save_hf_directory(model.eval(), tmp_path / "model.hf")
    genome = genome_text(data_file("ecoli_k12_300kb.fa.gz"))
    sequences = [genome[start : start + 120] for start in range(0, 8000, 1000)]
    plain, flipped = tmp_path / "plain.tsv", tmp_path / "flipped.tsv"
    plain.write_text("sequence\n" + "\n".join(sequences) + "\n")
    flipped.write_text("sequence\n" + "\n".join(map(reverse_complement_text, sequences)) + "\n")

    def predict(path: Path, *options: str) -> np.ndarray:
        out = tmp_path / f"{path.stem}{len(options)}.out.tsv"
        result = dnabert_cli(["predict", str(directory), "--input", str(path), "--out", str(out), "--quiet",
                              *options], ROOT)
        assert result.returncode == 0, result.stderr
        return np.array([[float(v) for v in line.split("\t")[1:3]] for line in out.read_text().splitlines()[1:]])

    forward, backward, both = predict(plain), predict(flipped), predict(plain, "--reverse-complement")
    assert np.abs(forward - backward).max() > 0.05  # strand-asymmetric
    assert np.allclose(both, (forward + backward) / 2, atol=1e-5)


def test_data_reverse_complement_flips_that_fraction_of_pretraining_windows(tmp_path):
    shards = GenomeShards(prepare_genome(LAMBDA, tmp_path / "lambda", progress=False))
    regions, _ = holdout_regions(shards)
    samplers = {p: WindowSampler(shards, regions, k=6, max_kmers=60, reverse_complement=p, seed=3)
                for p in (0.0, 0.5, 1.0)}
    windows = {p: [sampler(i)[0] for i in range(200)] for p, sampler in samplers.items()}
    assert all(np.array_equal(flipped, reverse_complement(plain)) for flipped, plain in zip(windows[1.0], windows[0.0]))
    assert all(not np.array_equal(plain, reverse_complement(plain)) for plain in windows[0.0])  # asymmetric windows
    flipped = sum(np.array_equal(half, reverse_complement(plain)) for half, plain in zip(windows[0.5], windows[0.0]))
    assert 70 <= flipped <= 130 and all(np.array_equal(half, plain) or np.array_equal(half, reverse_complement(plain))
                                        for half, plain in zip(windows[0.5], windows[0.0]))


@pytest.mark.parametrize("genome_name,vcf_name", [("chr22", "22"), ("22", "chr22")])
def test_vcf_contigs_match_with_or_without_chr(planted_model, tmp_path, genome_name, vcf_name):
    sequence = genome_text(data_file("ecoli_k12_300kb.fa.gz"))[:400]
    (tmp_path / "genome.fa").write_text(f">{genome_name}\n{sequence}\n")
    other = "A" if sequence[199] != "A" else "C"
    (tmp_path / "calls.vcf").write_text(f"#CHROM\tPOS\tID\tREF\tALT\n{vcf_name}\t200\tv\t{sequence[199]}\t{other}\n")
    out = tmp_path / "report.tsv"
    result = dnabert_cli(["variants", str(planted_model["model"]), "--vcf", str(tmp_path / "calls.vcf"), "--genome",
                          str(tmp_path / "genome.fa"), "--window", "101", "--out", str(out), "--quiet",
                          "--cache-dir", str(tmp_path / "cache")], ROOT)
    assert result.returncode == 0, result.stderr
    assert "1 variants, 1 scored" in result.stdout


def test_dnabert_cache_holds_the_genome_shards_of_training_and_of_the_commands(tmp_path):
    """With DNABERT_CACHE set (and no paths.cache_dir or --cache-dir), a FASTA genome is prepared there, not under the
    run's cwd, and `dnabert build-dataset` reuses the shards training prepared."""
    genome = tmp_path / "lambda.fa.gz"
    shutil.copy(LAMBDA, genome)
    cache, cwd = tmp_path / "cache_home", tmp_path / "run_cwd"
    cwd.mkdir()
    overrides = [override for override in PRETRAIN if not override.startswith("data.genome=")]
    result = run([sys.executable, str(ROOT / "train.py"), *overrides, f"data.genome={genome}", "trainer.max_steps=2",
                  "trainer.val_check_interval=2", "callbacks.progress_bar=null", f"paths.output_dir={tmp_path / 'run'}",
                  f"hydra.run.dir={tmp_path / 'hydra'}"], cwd, env={"DNABERT_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr[-3000:]
    (shards,) = cache.glob("genomes/lambda.fa.gz-*")
    assert (shards / "metadata.json").is_file() and not (tmp_path / "run_cwd" / ".cache").exists()
    assert json.loads((tmp_path / "run" / "provenance.json").read_text())["config"]["paths"]["cache_dir"] == str(cache)
    built = (shards / "metadata.json").stat().st_mtime_ns
    (tmp_path / "peaks.bed").write_text("".join(f"gi|9626243|ref|NC_001416.1|\t{start}\t{start + 200}\n"
                                                 for start in range(1000, 40000, 2000)))
    result = run([sys.executable, "-m", "dnabert.cli", "build-dataset", "tfbs", "--genome", str(genome), "--peaks",
                  str(tmp_path / "peaks.bed"), "--out", str(tmp_path / "tfbs"), "--quiet"], cwd,
                 env={"DNABERT_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "tfbs" / "train.tsv").is_file() and [shards] == list(cache.glob("genomes/[!.]*"))
    assert (shards / "metadata.json").stat().st_mtime_ns == built  # reused, not prepared again
    assert not (cwd / ".cache").exists()


def test_a_benchmark_record_names_the_checkout_s_paths_from_its_root():
    shared = ROOT.parent / "shared" / "data" / "x.fa"
    outside = "/proc/dnabert-work"  # neither in the checkout nor beside it, wherever it was cloned (even in /tmp)
    values = {"record": ROOT / "experiments" / "b" / "record", "genome": str(shared), "work": outside, "rounds": 3}
    assert checkout_relative(values) == {"record": "experiments/b/record", "genome": "../shared/data/x.fa",
                                         "work": outside, "rounds": 3}


def test_provenance_records_the_commit_and_whether_the_tree_was_dirty(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    assert git_revision(tmp_path) == {"commit": None, "dirty": None}  # not a checkout
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a\n")
    git("add", "a.txt")
    git("commit", "-qm", "a")
    clean = git_revision(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "a.txt").write_text("changed\n")
    assert git_revision(tmp_path) == {"commit": clean["commit"], "dirty": True}


def test_every_command_s_help_shows_its_defaults_and_examples_that_parse(capsys):
    import shlex

    from dnabert.cli import EXAMPLES, build_parser, main

    parser = build_parser()
    for name, lines in EXAMPLES.items():
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert "examples:\n" in text and all(line in text for line in lines), name
        for line in lines:  # the examples are real command lines (shell redirection and comments cut off)
            parser.parse_args(shlex.split(line.split("   #")[0].split(" | ")[0].split(" > ")[0])[1:])
    main_help = build_parser().format_help()
    assert all(name in main_help for name in EXAMPLES)
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "sequences per forward pass (default: 64)" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("dnabert ")
