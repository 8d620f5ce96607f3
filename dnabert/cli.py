"""The `dnabert` command: everything that is not training (`python train.py` trains)."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from transformers.utils.logging import disable_progress_bar

from dnabert.config import BENCHMARK_SUITES, cache_root
from dnabert.errors import DnabertError, report_errors
from dnabert.interpret import MOTIF_METHODS

EXAMPLES = {
    "prepare-genome": ["dnabert prepare-genome hg38.fa.gz --out shards/hg38"],
    "build-dataset": ["dnabert build-dataset tfbs --genome hg38.fa.gz --peaks ENCFF123.narrowPeak.gz --out tfbs/ "
                      "--val-chroms chr8 --test-chroms chr9",
                      "dnabert build-dataset promoter --genome hg38.fa.gz --annotation gencode.v44.gtf.gz --out prom/ "
                      "--test-chroms chr1"],
    "predict": ["dnabert predict run/checkpoints/best.hf --input sequences.tsv --out predictions.tsv",
                "dnabert predict seed1/best.hf seed2/best.hf --input seqs.fa --out - --precision bf16 | head"],
    "evaluate": ["dnabert evaluate run/checkpoints/best.hf --input test.tsv --out test_metrics.json"],
    "embed": ["dnabert embed pretrain/checkpoints/last.hf --input sequences.tsv --out embeddings.npz --pooling mean"],
    "scan": ["dnabert scan best.hf --genome hg38.fa.gz --out promoters.bw   # every contig, bigWig + bedGraph",
             "dnabert scan best.hf --genome hg38.fa.gz --regions peaks.bed.gz --reverse-complement --out peaks.bw",
             "dnabert scan best.hf --genome ecoli.fa --region NC_000913.3:1-50,000 --out - > track.bedGraph"],
    "attention": ["dnabert attention best.hf --input positives.tsv --out attention/ --tracks 0,1,2"],
    "attribute": ["dnabert attribute best.hf --input positives.tsv --out attributions/ --target 1"],
    "motifs": ["dnabert motifs best.hf --input dev.tsv --out motifs/   # TF-MoDISco on integrated gradients",
               "dnabert motifs best.hf --input dev.tsv --out motifs-attention/ --method attention --set min_sd=1.5"],
    "variants": ["dnabert variants best.hf --vcf calls.vcf.gz --genome hg38.fa.gz --out effects.tsv",
                 "dnabert variants best.hf --sequences seqs.tsv --saturation --out saturation.tsv"],
    "benchmark": ["dnabert benchmark gue model=dnabert6 --init pretrain/checkpoints/last.hf --out gue/"],
    "study": ["dnabert study experiments/splice_primate   # after: python train.py -m -cd FOLDER -cn study",
              "dnabert study experiments/splice_primate seed=1,2,3 --out experiments/splice_primate/rerun"],
    "runs": ["dnabert runs multirun/2026-12-03/10-00-00 --metric val/mcc"],
    "figures": ["dnabert figures   # from the checkout root: every README block from its record",
                "dnabert figures --check"],
}
"""Usage examples shown at the end of each command's --help."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default (where it has one) and keeps the examples' lines as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and "(default" not in text
        return text + " (default: %(default)s)" if shown and action.option_strings else text


def _command(commands, name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows defaults and examples."""
    examples = "\n".join(f"  {line}" for line in EXAMPLES[name])
    return commands.add_parser(name, help=help, description=help, formatter_class=_Formatter,
                               epilog=f"examples:\n{examples}")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one `dnabert:` line with exit status 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"dnabert: {message}; see `{self.prog} --help`\n")


def _at_least(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than `least`."""
    def whole_number(text: str) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is below {least}")
        return value
    return whole_number


def _prepare_genome(args: argparse.Namespace) -> None:
    from dnabert.genome.shards import GenomeShards, prepare_genome

    out = prepare_genome(args.genome, args.out, progress=not args.quiet)
    shards = GenomeShards(out)
    ambiguous = sum(end - start for c in shards.contigs for start, end in c.ambiguous_runs)
    print(f"{out}: {len(shards.contigs)} contigs, {int(shards.lengths.sum()):,} nt, {ambiguous:,} N/IUPAC")


def _say_truncated(models: list, sequences: list[str], max_tokens: int, command: str) -> None:
    """One warning line when some inputs are longer than the (shortest) reach of the models: they are truncated."""
    from dnabert.models.inputs import model_reach
    from dnabert.tokenization import say_truncated

    reaches = [reach for reach in (model_reach(model, max_tokens) for model in models) if reach is not None]
    positions = min(model.config.max_position_embeddings for model in models)
    longer = f"--max-tokens up to {positions}, " if max_tokens < positions else ""
    say_truncated(sequences, min(reaches, default=None), command,
                  f"give shorter sequences, {longer}or fine-tune with data.overflow=split (a long-sequence model "
                  "reads every chunk)")


def _predict(args: argparse.Namespace) -> None:
    from dnabert.atomic import write_text_atomic
    from dnabert.data.labelled import read_sequences
    from dnabert.models.inference import load_ensemble, predict_ensemble, prediction_lines

    models = load_ensemble(args.model, args.device)
    names, sequences = read_sequences(args.input, min_length=max(model.config.k for model in models))
    _say_truncated(models, sequences, args.max_tokens, "predict")
    values = predict_ensemble(models, sequences, args.batch_size, args.max_tokens, args.reverse_complement,
                              not args.quiet)
    text = "\n".join(prediction_lines(models[0], names, values)) + "\n"
    if str(args.out) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text_atomic(args.out, text)
    print(f"{args.out}: {len(names)} sequences", file=sys.stderr if str(args.out) == "-" else sys.stdout)


def _evaluate(args: argparse.Namespace) -> None:
    import json

    from dnabert.atomic import write_text_atomic
    from dnabert.models.evaluation import evaluate, labelled_rows
    from dnabert.models.inference import load_classifier

    model = load_classifier(args.model, args.device)
    rows = labelled_rows(model, args.input)
    _say_truncated([model], rows.sequences, args.max_tokens, "evaluate")
    scores = evaluate(model, rows, args.batch_size, args.max_tokens, args.reverse_complement, not args.quiet)
    write_text_atomic(args.out, json.dumps(scores, indent=1) + "\n")
    width = max(map(len, scores))
    print("\n".join(f"{name:<{width}}  {value:.4f}" for name, value in scores.items()))
    print(f"{args.out}: {len(scores)} metrics of {args.model} on {args.input}")


def _embed(args: argparse.Namespace) -> None:
    from dnabert.data.labelled import read_sequences
    from dnabert.models.embedding import embed_to_file, load_encoder

    encoder = load_encoder(args.model, args.device)
    names, sequences = read_sequences(args.input, min_length=encoder.config.k)
    _say_truncated([encoder], sequences, args.max_tokens, "embed")
    shape = embed_to_file(encoder, names, sequences, args.out, args.pooling, args.batch_size, args.max_tokens,
                          not args.quiet)
    print(f"{args.out}: embeddings of shape {shape}")


def _scan(args: argparse.Namespace) -> None:
    from dnabert.errors import warn
    from dnabert.genome.shards import open_genome
    from dnabert.models.inference import load_classifier
    from dnabert.models.scan import Track, check_window, scan_regions, scan_windows

    model = load_classifier(args.model, args.device)
    label, column = _output_column(model, args.label, "--label")
    window = args.window or model.config.max_position_embeddings - 2 + model.config.k - 1
    stride = args.stride or max(1, window // 2)
    check_window(model, window)
    shards = open_genome(args.genome, args.cache_dir, progress=not args.quiet)
    regions = scan_regions(shards, args.region, args.regions)
    fitting = [r for r in regions if r.end - r.start >= window]
    if not fitting:
        raise DnabertError(f"--window {window}: longer than every region to scan (the longest has "
                           f"{max(r.end - r.start for r in regions):,} nt); use a smaller --window")
    if len(fitting) < len(regions):
        warn(f"scan: {len(regions) - len(fitting):,} of {len(regions):,} regions (contigs) are shorter than the "
             f"{window}-nt window and are not scored")
    strands = ", both strands averaged" if args.reverse_complement else ""
    track = Track(args.out, shards, regions, f'track type=bedGraph name="dnabert {label}" description="P({label}), '
                                             f'window {window}, stride {stride}{strands}"')
    with track.writing():
        for contig, starts, ends, scores in scan_windows(model, shards, fitting, window, stride, column,
                                                         args.batch_size, args.reverse_complement, not args.quiet):
            track.add(contig, starts, ends, scores)
    written = f"{args.out} and {track.bedgraph}" if track.bigwig else str(args.out)
    print(f"{written}: {track.count:,} windows over {sum(r.end - r.start for r in regions):,} nt of "
          f"{len({r.contig for r in regions})} contigs", file=sys.stderr if str(args.out) == "-" else sys.stdout)


def _build_dataset(args: argparse.Namespace) -> None:
    from dnabert.data.build import build_promoter, build_splice, build_tfbs
    from dnabert.genome.shards import open_genome

    needed = "--peaks" if args.kind == "tfbs" else "--annotation"
    if (args.peaks if args.kind == "tfbs" else args.annotation) is None:
        raise DnabertError(f"build-dataset {args.kind} needs {needed}")
    shards = open_genome(args.genome, args.cache_dir, progress=not args.quiet)
    splits = {"val_chroms": args.val_chroms, "test_chroms": args.test_chroms, "seed": args.seed}
    if args.kind == "tfbs":
        counts = build_tfbs(shards, args.peaks, args.out, args.window or 101, args.negatives, **splits)
    elif args.kind == "promoter":
        counts = build_promoter(shards, args.annotation, args.out, **splits)
    else:
        counts = build_splice(shards, args.annotation, args.out, args.window or 400, **splits)
    print(f"{args.out}: " + ", ".join(f"{key} {value}" for key, value in counts.items()))


def _scores_report(args: argparse.Namespace, model, names: list[str], sequences: list[str], batches, label: str,
                   signed: bool, more: Callable[[], list[Path]] = list) -> None:
    """Shared tail of `attention` and `attribute`: stream the scores into args.out (then what `more` writes), plot
    them."""
    from dnabert.interpret.report import plot_scores, sequence_indexes, write_scores

    tracks = sequence_indexes(args.tracks, "--tracks", len(names), default=3)
    written = write_scores(args.out, model, names, sequences, batches, label) + more()
    written += plot_scores(args.out, names, sequences, tracks, args.align_at, label, signed)
    print(f"{args.out}: {label} of {len(names)} sequences in {len(written)} files")


def _attention(args: argparse.Namespace) -> None:
    from dnabert.data.labelled import read_sequences
    from dnabert.interpret.attention import attention_batches, attention_maps
    from dnabert.interpret.report import sequence_indexes, write_attention_maps
    from dnabert.models.inference import load_classifier

    model = load_classifier(args.model, args.device)
    names, sequences = read_sequences(args.input, min_length=model.config.k)
    _say_truncated([model], sequences, args.max_tokens, "attention")
    maps = sequence_indexes(args.maps, "--maps", len(names))
    batches = attention_batches(model, sequences, args.batch_size, args.max_tokens, not args.quiet)
    _scores_report(args, model, names, sequences, batches, "attention", signed=False)
    write_attention_maps(args.out, names, ((i, attention_maps(model, sequences[i], args.max_tokens)) for i in maps))


def _attribute(args: argparse.Namespace) -> None:
    from dnabert.data.labelled import read_sequences
    from dnabert.interpret.attribution import attribution_batches, modisco_inputs, save_modisco_inputs
    from dnabert.models.inference import load_classifier

    model = load_classifier(args.model, args.device)
    target, column = _output_column(model, args.target, "--target")
    names, sequences = read_sequences(args.input, min_length=model.config.k)
    _say_truncated([model], sequences, args.max_tokens, "attribute")
    hypothetical: list = []

    def batches():
        for batch in attribution_batches(model, sequences, column, args.steps, args.batch_size, args.max_tokens,
                                         not args.quiet):
            hypothetical.extend(batch.hypothetical)
            yield batch.contributions, batch.values

    _scores_report(args, model, names, sequences, batches(), f"attribution to {target}", signed=True,
                   more=lambda: save_modisco_inputs(args.out, *modisco_inputs(sequences, hypothetical)))


def _score_options(command: argparse.ArgumentParser) -> None:
    """Plot options shared by `attention` and `attribute`."""
    command.add_argument("--tracks", help="0-based sequence numbers to plot as tracks, e.g. 0,5 (default: first 3)")
    command.add_argument("--align-at", type=_at_least(1), default=1,
                         help="1-based position drawn as 0 in the summary heatmap (e.g. 250 for a TSS)")


def _output_column(model, label: str | None, option: str) -> tuple[str, int]:
    """The class named by `option` (default: the model's last class) and its output column."""
    from dnabert.models.inference import output_names

    names = output_names(model)
    label = label or names[-1]
    if label not in names:
        raise DnabertError(f"{option} {label}: the model predicts {names}")
    return label, names.index(label)


def _motifs(args: argparse.Namespace) -> None:
    from dnabert.data.labelled_layouts import read_labelled
    from dnabert.interpret.modisco import ModiscoConfig
    from dnabert.interpret.motif_outputs import run_motifs
    from dnabert.interpret.motifs import MotifConfig
    from dnabert.models.inference import load_classifier, output_names

    config = (MotifConfig() if args.method == "attention" else ModiscoConfig()).with_settings(args.set)
    model = load_classifier(args.model, args.device)
    rows = read_labelled(args.input)
    _say_truncated([model], rows.sequences, args.max_tokens, "motifs")
    classes = output_names(model)
    positive = args.positive or classes[-1]
    target = classes.index(positive) if positive in classes else None
    matrices, matches = run_motifs(model, rows, positive, target, args.out, args.method, config, args.jaspar,
                                   args.batch_size, args.max_tokens, not args.quiet)
    known = sum(1 for m in matches if m.rank == 1 and m.qvalue < 0.01)
    print(f"{args.out}: {len(matrices)} motifs ({args.method}), {known} matching JASPAR at q < 0.01")


def _variants(args: argparse.Namespace) -> None:
    from dnabert.atomic import write_text_atomic
    from dnabert.data.labelled import read_sequences
    from dnabert.interpret.variants import (
        SCORED,
        check_reach,
        plot_top_variants,
        read_mutations,
        report_lines,
        saturation_variants,
        score_variants,
    )
    from dnabert.models.inference import load_classifier
    from dnabert.models.inputs import model_reach

    if bool(args.vcf) == bool(args.sequences) or (args.sequences and bool(args.mutations) == args.saturation):
        raise DnabertError("variants: give --vcf with --genome, or --sequences with --mutations or --saturation")
    if args.vcf:
        from dnabert.genome.shards import open_genome
        from dnabert.interpret.vcf import read_vcf

        if not args.genome:
            raise DnabertError(f"--vcf {args.vcf}: give the reference genome with --genome")
        variants = read_vcf(args.vcf, open_genome(args.genome, args.cache_dir, not args.quiet), args.window)
    else:
        names, sequences = read_sequences(args.sequences)
        variants = (saturation_variants(names, sequences) if args.saturation
                    else read_mutations(args.mutations, names, sequences))
    model = load_classifier(args.model, args.device)
    label, column = _output_column(model, args.label, "--label")
    check_reach(variants, model_reach(model, args.max_tokens), "--window" if args.vcf else "--sequences")
    _say_truncated([model], [v.reference_window for v in variants if v.status == SCORED], args.max_tokens, "variants")
    scores = score_variants(model, variants, column, args.batch_size, args.max_tokens, not args.quiet)
    write_text_atomic(args.out, "\n".join(report_lines(variants, scores)) + "\n")
    scored = sum(v.status == SCORED for v in variants)
    if scored:
        plot_top_variants(args.out.with_name(f"{args.out.stem}_top"), variants, scores, label, args.top)
    print(f"{args.out}: {len(variants)} variants, {scored} scored, {len(variants) - scored} skipped (see status, note)")


def _benchmark(args: argparse.Namespace) -> None:
    from dnabert import benchmarks
    from dnabert.interpret import plots  # noqa: F401  (the bar chart's matplotlib: checked before hours of training)

    overrides = [*args.overrides, *([f"benchmark.root={args.root}"] if args.root else [])]
    results = benchmarks.run_suite(args.suite, args.init, list(range(1, args.seeds + 1)), args.out, args.tasks,
                                   overrides)
    written = benchmarks.write_tables(results, args.out)
    written += benchmarks.plot_results(results, args.out / "results", f"{args.suite}: {args.init}")
    print("\n".join(str(path) for path in written))


def _study(args: argparse.Namespace) -> None:
    from dnabert.study import report

    out = args.out or args.folder
    chosen, table = report(args.folder, args.overrides, out)
    print(table + f"chosen on validation: {chosen}; {out / 'results.json'}, {out / 'table.md'}")


def _runs(args: argparse.Namespace) -> None:
    from dnabert.runs import compare

    out = args.out or (args.directories[0] if len(args.directories) == 1 else None)
    if out is None:
        raise DnabertError("dnabert runs: give --out DIR when comparing several directories")
    written = compare(args.directories, out, args.metric, args.mode)
    print(written[0].read_text() + "\n".join(str(path) for path in written))


def _figures(args: argparse.Namespace) -> None:
    from dnabert.figures import stale, write_all

    root = Path.cwd()
    if not (root / "experiments").is_dir():
        raise DnabertError(f"{root}: not a dnabert checkout's root (no experiments/); run dnabert figures from there")
    if args.check:
        drifted = stale(root)
        if drifted:
            raise DnabertError(f"figures differ from their records in {', '.join(drifted)}: run dnabert figures")
        print("every generated figure matches its record")
        return
    print("\n".join(f"rewrote {name}" for name in write_all(root)) or "every generated figure matched its record")


def _model_command(commands, name: str, help: str, run, model: str, out: str, sequences: bool = True,
                   ensemble: bool = False):
    """A subcommand taking a model (or, with `ensemble`, several to average), an output file, batching and
    progress options (and input sequences)."""
    command = _command(commands, name, help)
    command.add_argument("model", nargs="+" if ensemble else None,
                         help=f"{model}: HF directory or .ckpt" + "; several: their mean" * ensemble)
    if sequences:
        command.add_argument("--input", type=Path, required=True,
                             help="TSV/CSV (plain or gzip) with a sequence column, or FASTA; - for standard input")
        command.add_argument("--max-tokens", type=_at_least(3), default=512, help="longer inputs are truncated")
    command.add_argument("--out", type=Path, required=True, help=out)
    command.add_argument("--batch-size", type=_at_least(1), default=64, help="sequences per forward pass")
    command.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                         help="auto: the GPU where there is one")
    command.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                         help="bf16: autocast on the device (fast on GPUs and CPUs with native bf16)")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(run=run)
    return command


def _version() -> str:
    """The installed dnabert's version (a checkout never installed: unknown)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dnabert")
    except PackageNotFoundError:
        return "(not installed: a source checkout)"


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one subcommand per tool."""
    parser = _Parser(prog="dnabert", description=__doc__)
    genome_cache = str(Path(cache_root()) / "genomes")  # the genome cache training uses too ($DNABERT_CACHE)
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    parser.add_argument("--version", action="version", version=f"dnabert {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = _command(commands, "prepare-genome", "turn a FASTA/FASTA.gz/2bit genome into shards")
    prepare.add_argument("genome", type=Path)
    prepare.add_argument("--out", type=Path, required=True, help="shard directory to write")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(run=_prepare_genome)
    build = _command(commands, "build-dataset", "labelled TSV splits from a genome and annotations")
    build.add_argument("kind", choices=["promoter", "splice", "tfbs"],
                       help="promoter: -249..+50 around TSSs; splice: donor/acceptor/none; tfbs: peak summits")
    build.add_argument("--genome", required=True, help="FASTA/FASTA.gz/2bit, or a shard directory")
    build.add_argument("--annotation", type=Path, help="GTF with exon lines (promoter, splice)")
    build.add_argument("--peaks", type=Path, help="narrowPeak or BED file (tfbs)")
    build.add_argument("--out", type=Path, required=True, help="directory for train.tsv, dev.tsv, test.tsv")
    build.add_argument("--window", type=_at_least(1), help="window length in nt (tfbs: 101 on the summit; splice: 400)")
    build.add_argument("--negatives", default="shuffle", choices=["shuffle", "flank"], help="tfbs negatives")
    build.add_argument("--val-chroms", nargs="*", default=[], help="chromosomes held out for dev.tsv")
    build.add_argument("--test-chroms", nargs="*", default=[], help="chromosomes held out for test.tsv")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--cache-dir", default=genome_cache, help="where genome shards are kept")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(run=_build_dataset)
    predict = _model_command(commands, "predict", "class probabilities of a fine-tuned model (or an ensemble)",
                             _predict, "fine-tuned model",
                             "TSV: name, one column per class, prediction (- for standard output)",
                             ensemble=True)
    predict.add_argument("--reverse-complement", action="store_true", help="average with the reverse strand")
    evaluate = _model_command(commands, "evaluate", "score a fine-tuned model on a labelled file: the task's metrics",
                              _evaluate, "fine-tuned model", "JSON file of the metrics (test/loss, test/accuracy, ...)")
    evaluate.add_argument("--reverse-complement", action="store_true", help="average with the reverse strand")
    embed = _model_command(commands, "embed", "sequence, token or nucleotide embeddings, with the sequences' names",
                           _embed, "pretrained or fine-tuned model",
                           ".npz (arrays names, embeddings) or .npy (names in <out>.names.txt beside it)")
    embed.add_argument("--pooling", default="cls", choices=["cls", "mean", "tokens", "nucleotide"])
    scan = _model_command(commands, "scan", "slide a fine-tuned model along a genome -> bigWig and bedGraph", _scan,
                          "fine-tuned model", "OUT.bw (bigWig, with OUT.bedGraph beside it), OUT.bedGraph, or - "
                          "(bedGraph on standard output)", sequences=False)
    scan.add_argument("--genome", required=True, help="FASTA/FASTA.gz/2bit, or a shard directory")
    where = scan.add_mutually_exclusive_group()
    where.add_argument("--region", help="CONTIG or CONTIG:START-END (1-based, inclusive); default: every contig")
    where.add_argument("--regions", type=Path, help="BED file (plain or gzip) of the regions to scan")
    scan.add_argument("--reverse-complement", action="store_true", help="average each window with its reverse strand")
    scan.add_argument("--window", type=_at_least(1), help="window length in nt (default: the most the model takes)")
    scan.add_argument("--stride", type=_at_least(1), help="step between windows in nt (default: half the window)")
    scan.add_argument("--label", help="class whose probability is reported (default: the last class)")
    scan.add_argument("--cache-dir", default=genome_cache, help="where genome shards are kept")
    attention = _model_command(commands, "attention", "DNABERT's attention scores per nucleotide, with plots",
                               _attention, "fine-tuned model", "output directory")
    attention.add_argument("--maps", help="0-based sequence numbers whose per-layer, per-head attention to save")
    _score_options(attention)
    attribute = _model_command(commands, "attribute", "integrated-gradients contributions per nucleotide (and the "
                               "hypothetical contributions TF-MoDISco reads), with plots",
                               _attribute, "fine-tuned model", "output directory")
    attribute.add_argument("--target", help="class (or output) to explain (default: the last class)")
    attribute.add_argument("--steps", type=_at_least(2), default=50, help="integration steps")
    _score_options(attribute)
    motifs = _model_command(commands, "motifs", "motifs the model learnt (DNABERT-viz on attention, or TF-MoDISco "
                            "on integrated gradients), matched to JASPAR with TOMTOM", _motifs, "fine-tuned model",
                            "output directory")
    motifs.add_argument("--method", choices=MOTIF_METHODS, default=MOTIF_METHODS[0],
                        help="modisco: TF-MoDISco on integrated-gradients hypothetical contributions to the "
                             "positive class; attention: DNABERT-viz (high-attention regions enriched against the "
                             "other rows)")
    motifs.add_argument("--positive", help="label of the positive rows (default: the model's last class)")
    motifs.add_argument("--jaspar", type=Path, help="MEME file of known motifs (default: JASPAR 2024 CORE vertebrates)")
    motifs.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="parameter of the method (modisco: steps, sliding_window_size, flank_size, ...; "
                             "attention: window_size, min_len, rule, min_sd, pval_cutoff, min_n_motif, ...)")
    variants = _model_command(commands, "variants", "effects of variants: P(ref), P(alt), diff, log-odds ratio",
                              _variants, "fine-tuned model", "TSV report (plus <out>_top.png/.svg)", sequences=False)
    variants.add_argument("--vcf", type=Path, help="VCF or VCF.gz (with --genome)")
    variants.add_argument("--genome", help="FASTA/FASTA.gz/2bit, or a shard directory")
    variants.add_argument("--window", type=int, default=300, help="nt around each VCF variant that are scored")
    variants.add_argument("--sequences", type=Path, help="TSV/CSV with a sequence column, or FASTA")
    variants.add_argument("--mutations", type=Path, help="DNABERT mutation file: index, start, end, replacement")
    variants.add_argument("--saturation", action="store_true", help="every single-nucleotide substitution")
    variants.add_argument("--label", help="class whose probability is compared (default: the last class)")
    variants.add_argument("--top", type=int, default=20, help="variants in the bar chart")
    variants.add_argument("--max-tokens", type=int, default=512, help="longer inputs are truncated")
    variants.add_argument("--cache-dir", default=genome_cache, help="where genome shards are kept")
    benchmark = _command(commands, "benchmark", "fine-tune on every task of a suite over several seeds -> table")
    benchmark.add_argument("suite", choices=BENCHMARK_SUITES)
    benchmark.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                           help="train.py overrides for every run (model=tiny trainer.max_epochs=3 ...)")
    benchmark.add_argument("--init", required=True, help="HF directory, .ckpt or 'random'")
    benchmark.add_argument("--seeds", type=_at_least(1), default=3, help="seeds 1..N per task")
    benchmark.add_argument("--tasks", nargs="+", help="these tasks only (default: the whole suite)")
    benchmark.add_argument("--root", help="local copy of the suite (default: benchmark.root of its presets)")
    benchmark.add_argument("--out", type=Path, required=True,
                           help="directory: one run per task and seed, results.tsv, results.md, results.png/.svg")
    benchmark.set_defaults(run=_benchmark)
    study = _command(commands, "study", "report a finished study (run by python train.py -m -cd FOLDER -cn study): "
                                        "arm chosen on validation, ensembles, baselines -> results.json, table.md")
    study.add_argument("folder", type=Path, help="study folder: study.yaml and arm/*.yaml (see dnabert/study.py)")
    study.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the overrides the study ran with, if any")
    study.add_argument("--out", type=Path, default=None,
                       help="where results.json and table.md go (default: the study folder), e.g. for a rerun of part "
                            "of a study")
    study.set_defaults(run=_study)
    runs = _command(commands, "runs", "compare runs offline: the config values that differ, final and best "
                                            "metric, learning curves -> runs.md, runs.tsv, curves.png/.svg")
    runs.add_argument("directories", nargs="+", type=Path, metavar="DIR",
                      help="a sweep folder (multirun/<date>/<time>), or run directories")
    runs.add_argument("--metric", help="metric to sort and plot (default: the runs' optimized_metric)")
    runs.add_argument("--mode", choices=["min", "max"],
                      help="default: the sweeper's direction, else min for losses and max for other metrics")
    runs.add_argument("--out-dir", dest="out", type=Path, default=None,
                      help="where the table and plot go (default: the one DIR given)")
    runs.set_defaults(run=_runs)
    figures = _command(commands, "figures", "rewrite every generated figure block of the READMEs from its committed "
                                            "record (from the checkout root)")
    figures.add_argument("--check", action="store_true", help="write nothing; fail if a block differs from its record")
    figures.set_defaults(run=_figures)
    return parser


def _run(args: argparse.Namespace) -> None:
    """Run a subcommand once its --out is known to be writable, so it cannot fail there after hours of work."""
    from dnabert.atomic import prepare_output

    if getattr(args, "out", None) is not None and str(args.out) != "-":
        prepare_output(args.out)
    precision = contextlib.nullcontext()
    if getattr(args, "device", None) is not None:  # the inference commands
        from dnabert.models.inputs import inference_device, inference_precision

        args.device = inference_device(args.device)
        precision = inference_precision(args.device, args.precision)
    try:
        with precision, _standard_input(args):
            args.run(args)
    except ModuleNotFoundError as error:  # the interpretation commands' plotting/motif packages are an extra
        if _import_name((error.name or "").split(".")[0]) not in _extra_packages("interp"):
            raise
        raise DnabertError(f"`dnabert {args.command}` needs the package {error.name!r}: "
                           "pip install 'dnabert[interp]' (or -e '.[interp]' in a checkout)") from None


@contextlib.contextmanager
def _standard_input(args: argparse.Namespace):
    """`--input -`: standard input (a TSV with a header, or FASTA) read into a temporary file the command reads."""
    if str(getattr(args, "input", None)) != "-":
        yield
        return
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dnabert-stdin-") as folder:
        args.input = Path(folder) / "stdin"
        with open(args.input, "w") as handle:
            shutil.copyfileobj(sys.stdin, handle)
        yield


def _extra_packages(extra: str) -> set[str]:
    """The distributions an extra of the installed dnabert adds, as import names (`modisco-lite`: modiscolite)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires("dnabert") or []
    except PackageNotFoundError:  # run from a checkout that was never installed
        return set()
    return {_import_name(re.split(r"[<>=!~;\[ ]", line)[0]) for line in requirements if f'extra == "{extra}"' in line}


def _import_name(name: str) -> str:
    """A distribution or module name compared case- and separator-blind (modisco-lite ~ modiscolite, pyBigWig)."""
    return re.sub(r"[-_.]", "", name).lower()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `dnabert` console script."""
    args = build_parser().parse_args(argv)
    disable_progress_bar()  # transformers' per-load bars: our commands show their own progress
    report_errors(lambda: _run(args), debug=args.debug)


if __name__ == "__main__":
    main()
