"""The `dnabert` command: everything that is not training (`python train.py` trains)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dnabert.errors import report_errors


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
    predict = commands.add_parser("predict", help="class probabilities of a fine-tuned model for TSV/CSV/FASTA input")
    predict.add_argument("model", help="fine-tuned model: HF directory or .ckpt")
    predict.add_argument("--input", type=Path, required=True, help="TSV/CSV with a sequence column, or FASTA")
    predict.add_argument("--out", type=Path, required=True, help="TSV: name, one column per class, prediction")
    predict.add_argument("--reverse-complement", action="store_true", help="average with the reverse strand")
    predict.add_argument("--batch-size", type=int, default=64)
    predict.add_argument("--max-tokens", type=int, default=512)
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(run=_predict)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `dnabert` console script."""
    args = build_parser().parse_args(argv)
    report_errors(lambda: args.run(args), debug=args.debug)


if __name__ == "__main__":
    main()
