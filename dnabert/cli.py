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
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `dnabert` console script."""
    args = build_parser().parse_args(argv)
    report_errors(lambda: args.run(args), debug=args.debug)


if __name__ == "__main__":
    main()
