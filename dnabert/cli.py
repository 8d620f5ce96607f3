"""The `dnabert` command: everything that is not training (`python train.py` trains)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dnabert.errors import DnabertError, report_errors


def _prepare_genome(args: argparse.Namespace) -> None:
    from dnabert.genome.shards import GenomeShards, prepare_genome

    out = prepare_genome(args.genome, args.out, progress=not args.quiet)
    shards = GenomeShards(out)
    ambiguous = sum(end - start for c in shards.contigs for start, end in c.ambiguous_runs)
    print(f"{out}: {len(shards.contigs)} contigs, {int(shards.lengths.sum()):,} nt, {ambiguous:,} N/IUPAC")


def _predict(args: argparse.Namespace) -> None:
    from dnabert.atomic import write_text_atomic
    from dnabert.data.labelled import read_sequences
    from dnabert.models.inference import load_classifier, output_names, predict

    model = load_classifier(args.model)
    names, sequences = read_sequences(args.input)
    values = predict(model, sequences, args.batch_size, args.max_tokens, args.reverse_complement, not args.quiet)
    labels = output_names(model)
    classification = model.config.problem_type == "single_label_classification"
    header = ["name", *(f"p_{label}" if model.config.problem_type != "regression" else label for label in labels)]
    lines = ["\t".join(header + (["prediction"] if classification else []))]
    for name, row in zip(names, values):
        cells = [name, *(f"{value:.6g}" for value in row)]
        lines.append("\t".join(cells + ([labels[int(row.argmax())]] if classification else [])))
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    print(f"{args.out}: {len(names)} sequences")


def _embed(args: argparse.Namespace) -> None:
    from dnabert.data.labelled import read_sequences
    from dnabert.models.embedding import embed_to_file, load_encoder

    encoder = load_encoder(args.model)
    _, sequences = read_sequences(args.input)
    shape = embed_to_file(encoder, sequences, args.out, args.pooling, args.batch_size, args.max_tokens, not args.quiet)
    print(f"{args.out}: embeddings of shape {shape}")


def _scan(args: argparse.Namespace) -> None:
    from dnabert.atomic import write_text_atomic
    from dnabert.genome.shards import open_genome
    from dnabert.models.inference import load_classifier, output_names, scan_windows

    model = load_classifier(args.model)
    names = output_names(model)
    label = args.label or names[-1]
    if label not in names:
        raise DnabertError(f"--label {label}: the model predicts {names}")
    window = args.window or model.config.max_position_embeddings - 2 + model.config.k - 1
    stride = args.stride or max(1, window // 2)
    shards = open_genome(args.genome, args.cache_dir, progress=not args.quiet)
    lines = [f'track type=bedGraph name="dnabert {label}" description="P({label}), window {window}, stride {stride}"']
    for contig, start, end, score in scan_windows(model, shards, args.region, window, stride, names.index(label),
                                                  args.batch_size, not args.quiet):
        lines.append(f"{contig}\t{start}\t{end}\t{score:.6g}")
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    print(f"{args.out}: {len(lines) - 1} windows")


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


def _model_command(commands, name: str, help: str, run, model: str, out: str, sequences: bool = True):
    """A subcommand taking a model, an output file, batching and progress options (and input sequences)."""
    command = commands.add_parser(name, help=help)
    command.add_argument("model", help=f"{model}: HF directory or .ckpt")
    if sequences:
        command.add_argument("--input", type=Path, required=True, help="TSV/CSV with a sequence column, or FASTA")
        command.add_argument("--max-tokens", type=int, default=512, help="longer inputs are truncated")
    command.add_argument("--out", type=Path, required=True, help=out)
    command.add_argument("--batch-size", type=int, default=64)
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(run=run)
    return command


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one subcommand per tool."""
    parser = argparse.ArgumentParser(prog="dnabert", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare-genome", help="turn a FASTA/FASTA.gz/2bit genome into shards")
    prepare.add_argument("genome", type=Path)
    prepare.add_argument("--out", type=Path, required=True, help="shard directory to write")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(run=_prepare_genome)
    build = commands.add_parser("build-dataset", help="labelled TSV splits from a genome and annotations")
    build.add_argument("kind", choices=["promoter", "splice", "tfbs"],
                       help="promoter: -249..+50 around TSSs; splice: donor/acceptor/none; tfbs: peak summits")
    build.add_argument("--genome", required=True, help="FASTA/FASTA.gz/2bit, or a shard directory")
    build.add_argument("--annotation", type=Path, help="GTF with exon lines (promoter, splice)")
    build.add_argument("--peaks", type=Path, help="narrowPeak or BED file (tfbs)")
    build.add_argument("--out", type=Path, required=True, help="directory for train.tsv, dev.tsv, test.tsv")
    build.add_argument("--window", type=int, help="window length in nt (tfbs: 101 on the summit; splice: 400)")
    build.add_argument("--negatives", default="shuffle", choices=["shuffle", "flank"], help="tfbs negatives")
    build.add_argument("--val-chroms", nargs="*", default=[], help="chromosomes held out for dev.tsv")
    build.add_argument("--test-chroms", nargs="*", default=[], help="chromosomes held out for test.tsv")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--cache-dir", default=".cache/dnabert/genomes", help="where genome shards are kept")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(run=_build_dataset)
    predict = _model_command(commands, "predict", "class probabilities of a fine-tuned model", _predict,
                             "fine-tuned model", "TSV: name, one column per class, prediction")
    predict.add_argument("--reverse-complement", action="store_true", help="average with the reverse strand")
    embed = _model_command(commands, "embed", "sequence, token or nucleotide embeddings as .npy", _embed,
                           "pretrained or fine-tuned model", ".npy file")
    embed.add_argument("--pooling", default="cls", choices=["cls", "mean", "tokens", "nucleotide"])
    scan = _model_command(commands, "scan", "slide a fine-tuned model along a genome region -> bedGraph", _scan,
                          "fine-tuned model", "bedGraph file", sequences=False)
    scan.add_argument("--genome", required=True, help="FASTA/FASTA.gz/2bit, or a shard directory")
    scan.add_argument("--region", required=True, help="CONTIG or CONTIG:START-END (1-based, inclusive)")
    scan.add_argument("--window", type=int, help="window length in nt (default: the most the model takes)")
    scan.add_argument("--stride", type=int, help="step between windows in nt (default: half the window)")
    scan.add_argument("--label", help="class whose probability is reported (default: the last class)")
    scan.add_argument("--cache-dir", default=".cache/dnabert/genomes", help="where genome shards are kept")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `dnabert` console script."""
    args = build_parser().parse_args(argv)
    report_errors(lambda: args.run(args), debug=args.debug)


if __name__ == "__main__":
    main()
