"""`dnabert scan`: a fine-tuned model slid along the whole lambda genome (or a BED of regions) into bigWig and
bedGraph, read back with pyBigWig and checked against `predict` on the same windows."""

from __future__ import annotations

import gzip

import numpy as np
import pyBigWig
import pytest

from dnabert.cli import main
from dnabert.models.inference import load_classifier, predict
from tests.conftest import LAMBDA, genome_text

CONTIG = "gi|9626243|ref|NC_001416.1|"  # the lambda FASTA's record name
WINDOW, STRIDE = 60, 50
OFFSET = (WINDOW - STRIDE) // 2


def complement_reversed(sequence: str) -> str:
    """Written out here, independently of the package's own."""
    return sequence.translate(str.maketrans("ACGT", "TGCA"))[::-1]


def scan(model, tmp_path, out, *extra: str) -> None:
    main(["scan", str(model), "--genome", str(LAMBDA), "--window", str(WINDOW), "--stride", str(STRIDE), "--out",
          str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet", *extra])


def bedgraph(path) -> list[tuple[str, int, int, float]]:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("track type=bedGraph")
    return [(c, int(s), int(e), float(v)) for c, s, e, v in (line.split("\t") for line in lines[1:])]


def test_a_whole_genome_scan_to_bigwig_holds_predict_on_every_window(planted_model, tmp_path):
    genome = genome_text(LAMBDA)
    out = tmp_path / "track.bw"
    scan(planted_model["model"], tmp_path, out)
    starts = list(range(0, len(genome) - WINDOW + 1, STRIDE))
    expected = predict(load_classifier(planted_model["model"]), [genome[s : s + WINDOW] for s in starts],
                       progress=False)[:, -1]
    track = pyBigWig.open(str(out))
    assert track.chroms() == {CONTIG: len(genome)}
    intervals = track.intervals(CONTIG)
    track.close()
    assert [(s, e) for s, e, _ in intervals] == [(s + OFFSET, s + OFFSET + STRIDE) for s in starts]
    np.testing.assert_allclose([v for *_, v in intervals], expected, atol=1e-6)
    rows = bedgraph(out.with_suffix(".bedGraph"))
    assert [(c, s, e) for c, s, e, _ in rows] == [(CONTIG, s, e) for s, e, _ in intervals]
    np.testing.assert_allclose([v for *_, v in rows], expected, rtol=1e-5)
    assert (tmp_path / "cache").is_dir() and next((tmp_path / "cache").glob("*/chrom.sizes")).read_text() == \
        f"{CONTIG}\t{len(genome)}\n"


def test_regions_from_a_gzip_bed_are_merged_sorted_and_scored_on_both_strands(planted_model, tmp_path, capsys):
    genome = genome_text(LAMBDA)
    bed = "".join(f"{CONTIG}\t{start}\t{end}\tpeak\n" for start, end in ((30000, 32000), (1000, 2500), (2000, 3000),
                                                                        (40000, 40030)))
    (tmp_path / "regions.bed.gz").write_bytes(gzip.compress(("track name=peaks\n" + bed).encode()))
    scan(planted_model["model"], tmp_path, "-", "--regions", str(tmp_path / "regions.bed.gz"), "--reverse-complement")
    captured = capsys.readouterr()
    out = tmp_path / "stdout.bedGraph"
    out.write_text(captured.out)
    rows = bedgraph(out)
    assert "1 of 3 regions (contigs) are shorter than the 60-nt window" in captured.err
    window_starts = [*range(1000, 3000 - WINDOW + 1, STRIDE), *range(30000, 32000 - WINDOW + 1, STRIDE)]
    assert [(s, e) for _, s, e, _ in rows] == [(s + OFFSET, s + OFFSET + STRIDE) for s in window_starts]
    model = load_classifier(planted_model["model"])
    forward = [genome[s : s + WINDOW] for s in window_starts]
    both = (predict(model, forward, progress=False) + predict(model, [complement_reversed(w) for w in forward],
                                                              progress=False)) / 2
    np.testing.assert_allclose([v for *_, v in rows], both[:, -1], rtol=1e-5)
    assert np.abs(both[:, -1] - predict(model, forward, progress=False)[:, -1]).max() > 1e-4  # the strands differ


def test_a_bigwig_that_cannot_be_finished_is_not_left_behind(planted_model, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("model failed half-way")

    monkeypatch.setattr("dnabert.models.scan.predict", broken)
    with pytest.raises(RuntimeError, match="half-way"):
        scan(planted_model["model"], tmp_path, tmp_path / "track.bw")
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_a_stride_longer_than_the_window_scores_the_windows_themselves(planted_model, tmp_path):
    out = tmp_path / "sparse.bedGraph"
    main(["scan", str(planted_model["model"]), "--genome", str(LAMBDA), "--region", f"{CONTIG}:1-20000", "--window",
          str(WINDOW), "--stride", "5000", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert [(s, e) for _, s, e, _ in bedgraph(out)] == [(s, s + WINDOW) for s in range(0, 20000 - WINDOW + 1, 5000)]
