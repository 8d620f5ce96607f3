"""DNABERT-viz motif discovery: the statistics against hand values, each step on built inputs, JASPAR, and the
`dnabert motifs` command recovering a planted CTCF site from a tiny trained model."""

from __future__ import annotations

import csv
from math import comb

import numpy as np
import pytest
from scipy.stats import hypergeom

from dnabert.cli import build_parser
from dnabert.errors import DnabertError
from dnabert.interpret.jaspar import Matrix, jaspar_core_vertebrates, read_meme, tomtom_matches
from dnabert.interpret.motifs import (
    MotifConfig,
    discover_motifs,
    enriched_motifs,
    high_attention_regions,
    hypergeometric_pvalues,
    instance_windows,
    merge_motifs,
)
from tests.conftest import ROOT, assert_user_error, data_file, dnabert_cli


def test_hypergeometric_pvalue_matches_the_spec_vector_scipy_and_a_hand_sum():
    assert hypergeometric_pvalues(np.array([4]), np.array([4]), 5, 10)[0] == pytest.approx(5 / 210)
    x, n, K, N = np.array([3, 7, 12]), np.array([5, 9, 30]), 20, 50
    by_hand = [sum(comb(K, i) * comb(N - K, m - i) for i in range(xi, m + 1)) / comb(N, m) for xi, m in zip(x, n)]
    assert hypergeometric_pvalues(x, n, K, N) == pytest.approx(by_hand, rel=1e-10)
    assert hypergeometric_pvalues(x, n, K, N) == pytest.approx(hypergeom.sf(x - 1, N, K, n), rel=1e-12)


def test_enrichment_counts_each_sequence_once_and_applies_benjamini_hochberg():
    positives = ["AAGGTTCC", "TTGGTTAA", "GGTTGGTT", "CGGTTC", "AGGTTA", "CCCCCCCC"]
    negatives = ["CCCCACGT", "TTTTTTTT", "ACGTACGT", "AAAAAAAA", "CACACACA", "GTGTGTGT"]
    candidates = {"GGTT": [], "CCCC": [], "TTTT": []}
    kept = enriched_motifs(candidates, positives, negatives, cutoff=1.01)
    # GGTT: 5 of 6 positives (one holds it twice), no negative -> x=5, n=5; CCCC: x=1, n=2; TTTT: x=0, n=1
    p = [comb(6, 5) / comb(12, 5), 1 - comb(6, 2) / comb(12, 2), 1.0]
    assert [kept[m][0] for m in candidates] == pytest.approx(p)
    assert [kept[m][1] for m in candidates] == pytest.approx([p[0] * 3, 1.0, 1.0])  # BH: p * m / rank, capped
    assert set(enriched_motifs(candidates, positives, negatives, cutoff=0.05)) == {"GGTT"}


def test_benjamini_hochberg_hand_values():
    from scipy.stats import false_discovery_control

    assert false_discovery_control([0.01, 0.04, 0.03, 0.005], method="bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_dnabert_rule_keeps_runs_above_mean_and_ten_times_min():
    scores = np.array([0.1, 0.1, 5, 5, 5, 5, 5, 0.1, 5, 5, 0.1, 0.1, 4, 4, 4, 4, 4, 4])
    dnabert = MotifConfig(rule="dnabert")
    assert high_attention_regions(scores, dnabert) == [(2, 7), (12, 18)]
    assert high_attention_regions(scores, MotifConfig(rule="dnabert", min_len=2)) == [(2, 7), (8, 10), (12, 18)]
    flat = np.where(scores > 1, 0.5, 0.1)
    assert high_attention_regions(flat, MotifConfig(rule="dnabert", min_len=2)) == []  # 0.5 is not > 10 x 0.1
    with_nan = np.concatenate([scores, [np.nan] * 4])
    assert high_attention_regions(with_nan, dnabert) == [(2, 7), (12, 18)]


def test_relative_rule_is_the_same_for_any_scale_and_offset_of_a_sequence_scores():
    # mean 1.7, sd 2.13 (population): mean + 1 sd = 3.83, so 4 and 5 pass and 3 does not; mean + 2 sd = 5.96
    scores = np.array([0, 0, 5, 5, 5, 5, 5, 0, 3, 3, 0, 0, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert np.mean(scores) + np.std(scores) == pytest.approx(3.8315, abs=1e-4)
    relative = MotifConfig()
    assert relative.rule == "relative" and high_attention_regions(scores, relative) == [(2, 7), (12, 17)]
    for flattened in (0.1 * scores + 10, 3 * scores + 0.5):  # nearly flat attention keeps the same runs
        assert high_attention_regions(flattened, relative) == [(2, 7), (12, 17)]
    assert high_attention_regions(0.1 * scores + 10, MotifConfig(rule="dnabert")) == []  # no score > 10 x min
    assert high_attention_regions(scores, MotifConfig(min_sd=2.0)) == []
    with pytest.raises(DnabertError, match="rule=max: use one of"):
        MotifConfig().with_settings(["rule=max"])


def test_merging_shortest_first_reexpresses_instances_in_the_key_frame():
    config = MotifConfig(min_len=5)
    candidates = {"ACGTAC": [(0, 10, 16)], "CGTACGT": [(1, 20, 27)], "TTTTTT": [(2, 3, 9)]}
    merged = merge_motifs(candidates, config)
    assert [m.key for m in merged] == ["ACGTAC", "TTTTTT"]
    # CGTACGT aligns to ACGTAC with query[i] ~ key[i + 1] (5 matches): the key starts one base earlier
    assert merged[0].instances == [(0, 10, 16), (1, 19, 25)]
    motif = merged[0]
    instance_windows(motif, ["N" * 30, "A" * 40], window_size=11)
    # width 6 -> 11: 2 bases left, 3 right (odd extra on the right); the first window would start at 8 -> kept
    assert motif.window_instances == [(0, 8, 19), (1, 17, 28)]
    instance_windows(motif, ["N" * 18, "A" * 28], window_size=11)
    assert motif.window_instances == [(1, 17, 28)]  # 8..19 runs past an 18-nt sequence


def test_discovery_on_built_attention_finds_the_high_attention_motif():
    rng = np.random.default_rng(0)
    site = "TTGACGTCAAGG"
    positives, scores = [], []
    for _ in range(40):
        background = "".join(rng.choice(list("ACGT"), 60))
        start = int(rng.integers(6, 42))
        positives.append(background[:start] + site + background[start + len(site):])
        score = np.full(60, 0.01)
        score[start : start + len(site)] = 1.0
        scores.append(score)
    negatives = ["".join(rng.choice(list("ACGT"), 60)) for _ in range(40)]
    motifs, enrichment = discover_motifs(positives, negatives, scores, MotifConfig())
    assert motifs[0].key == site and len(motifs[0].windows) >= 30
    assert all(len(w) == 24 and site in w for w in motifs[0].windows)
    assert enrichment[site][1] < 0.005
    with pytest.raises(DnabertError, match="positive and negative"):
        discover_motifs(positives, [], scores, MotifConfig())


def test_settings_are_typed_and_checked():
    config = MotifConfig().with_settings(["min_len=6", "pval_cutoff=0.01", "align_all_ties=false"])
    assert (config.min_len, config.pval_cutoff, config.align_all_ties, config.window_size) == (6, 0.01, False, 24)
    with pytest.raises(DnabertError, match="KEY one of"):
        MotifConfig().with_settings(["window=3"])
    with pytest.raises(DnabertError, match="not a int"):
        MotifConfig().with_settings(["min_len=five"])


def test_modisco_trimming_keeps_a_sites_weak_end_columns_by_their_information():
    from dnabert.interpret.modisco import ModiscoConfig, information, trimmed_span

    frequencies = np.array([[0, 0, 0, 0],  # padding: no information
                            [0.25, 0.25, 0.25, 0.25], [0.5, 0, 0, 0.5], [1, 0, 0, 0], [0, 0, 0, 1],
                            [0.4, 0.1, 0.1, 0.4], [0.25, 0.25, 0.25, 0.25]])
    contributions = np.zeros((7, 4))
    contributions[[2, 3, 4, 5], 0] = [-0.1, 1, 1, 0.05]  # the two strong columns dominate; signs do not matter
    uniform, at_rich = np.full(4, 0.25), np.array([0.4, 0.1, 0.1, 0.4])
    weak = 2 * 0.4 * np.log2(0.4 / 0.25) + 2 * 0.1 * np.log2(0.1 / 0.25)  # 0.278 bits
    assert np.allclose(information(frequencies, uniform), [0, 0, 1, 2, 2, weak, 0])
    assert information(frequencies, at_rich)[5] == pytest.approx(0)
    assert trimmed_span(contributions, frequencies, uniform, ModiscoConfig()) == (2, 6)  # >= 0.1 bits
    in_at_rich = frequencies.copy()
    in_at_rich[[1, 6]] = at_rich  # the same site in an AT-rich genome: its weak column is background there
    assert trimmed_span(contributions, in_at_rich, at_rich, ModiscoConfig()) == (2, 5)
    report = ModiscoConfig().with_settings(["trim_threshold=0.3", "trim_bits=0"])  # `modisco report`'s trimming
    assert trimmed_span(contributions, frequencies, uniform, report) == (3, 5)
    nothing = ModiscoConfig().with_settings(["trim_bits=3"])
    assert trimmed_span(contributions, frequencies, uniform, nothing) == (0, 7)


def test_bundled_jaspar_equals_the_meme_file_and_tomtom_finds_strands():
    bundled = jaspar_core_vertebrates()
    by_id = {m.identifier: m for m in bundled}
    meme = read_meme(data_file("jaspar2024_subset.meme"))  # 12 matrices of JASPAR 2024's MEME file
    assert len(bundled) == len(by_id) == 879 and len(meme) == 12
    for matrix in meme:
        assert by_id[matrix.identifier].name == matrix.name
        assert np.allclose(by_id[matrix.identifier].probabilities, matrix.probabilities, atol=1e-6)
    ctcf = by_id["MA0139.2"]
    reverse = Matrix("reverse", "reverse", ctcf.probabilities[::-1, ::-1].copy())  # rows A,C,G,T -> T,G,C,A
    matches = tomtom_matches([ctcf, reverse], bundled, top=2)
    assert [(m.query, m.target.identifier, m.orientation, m.rank) for m in matches[::2]] == [
        ("MA0139.2", "MA0139.2", "+", 1), ("reverse", "MA0139.2", "-", 1)]
    assert all(m.qvalue < 1e-20 for m in matches[::2])


def test_dnabert_motifs_attention_recovers_the_planted_ctcf_site(planted_model, tmp_path):
    out = tmp_path / "motifs"
    result = dnabert_cli(["motifs", str(planted_model["model"]), "--input", str(planted_model["data"]), "--out",
                          str(out), "--quiet", "--method", "attention", "--set", "min_n_motif=5"], ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    matches = list(csv.DictReader(open(out / "jaspar_matches.tsv"), delimiter="\t"))
    ctcf = [m for m in matches if m["jaspar_name"] == "CTCF" and m["rank"] == "1" and float(m["q_value"]) < 0.01]
    assert ctcf, matches
    discovered = {m.identifier: m for m in read_meme(out / "motifs.meme")}
    assert ctcf[0]["motif"] in discovered and discovered[ctcf[0]["motif"]].probabilities.shape == (4, 24)
    instances = list(csv.DictReader(open(out / "instances.tsv"), delimiter="\t"))
    assert all(len(row["window"]) == 24 and row["strand"] == "+" for row in instances)
    assert (out / "logos" / f"{ctcf[0]['motif']}.png").stat().st_size > 0
    assert (out / "logos" / f"{ctcf[0]['motif']}.svg").stat().st_size > 0


def test_dnabert_motifs_modisco_recovers_the_planted_ctcf_site(planted_model, tmp_path):
    out = tmp_path / "motifs"
    result = dnabert_cli(["motifs", str(planted_model["model"]), "--input", str(planted_model["data"]), "--out",
                          str(out), "--quiet", "--method", "modisco", "--set", "steps=16"], ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(modisco)" in result.stdout
    matches = list(csv.DictReader(open(out / "jaspar_matches.tsv"), delimiter="\t"))
    best = [m for m in matches if m["rank"] == "1" and float(m["q_value"]) < 0.01]
    assert best and best[0]["motif"] == "pos_pattern_0" and best[0]["jaspar_name"] == "CTCF", matches
    discovered = {m.identifier: m for m in read_meme(out / "motifs.meme")}
    width = discovered["pos_pattern_0"].probabilities.shape[1]
    assert 8 <= width <= 30
    site, rows = planted_model["site"], list(csv.DictReader(open(planted_model["data"]), delimiter="\t"))
    positives = [r for r in rows if r["label"] == "1"]
    instances = [r for r in csv.DictReader(open(out / "instances.tsv"), delimiter="\t")
                 if r["motif"] == "pos_pattern_0"]
    assert len(instances) >= 20  # ModiscoConfig.final_min_cluster_size
    forward = best[0]["orientation"] == "+"  # the pattern reads as CTCF's matrix, or as its reverse complement
    on_site = 0
    for row in instances:  # seqlets sit on the planted sites, on the strand the site was written (or the other
        truth = positives[int(row["sequence_index"])]  # one throughout, for a reverse-complement pattern)
        start, end = int(row["start"]), int(row["end"])
        assert row["window"] == truth["sequence"][start:end] and 0 < end - start <= width
        planted = int(truth["start"]), int(truth["start"]) + len(site)
        same_strand = row["strand"] == truth["strand"]
        on_site += min(end, planted[1]) - max(start, planted[0]) >= width // 2 and same_strand == forward
    assert on_site >= 0.85 * len(instances)  # 92 of 105: the rest are CTCF-like stretches elsewhere in the window
    one_hot, hypothetical = np.load(out / "one_hot.npy"), np.load(out / "hypothetical.npy")
    assert one_hot.shape == hypothetical.shape == (len(positives), 4, 80)
    assert (one_hot.sum(1) == 1).all() and np.allclose(hypothetical.sum(1), 0, atol=1e-5)
    import h5py

    with h5py.File(out / "modisco.h5") as results:
        assert "pattern_0" in results["pos_patterns"] and results.attrs["dnabert_padding"] == 10
    assert (out / "logos" / "pos_pattern_0.png").stat().st_size > 0


def test_dnabert_motifs_reports_bad_settings_and_labels(planted_model, tmp_path):
    common = ["motifs", str(planted_model["model"]), "--input", str(planted_model["data"]), "--out", str(tmp_path)]
    args = build_parser().parse_args([*common, "--set", "windowsize=3"])
    with pytest.raises(DnabertError, match="--set windowsize=3: write KEY=VALUE with KEY one of .*window_size"):
        args.run(args)
    assert_user_error(dnabert_cli([*common, "--positive", "yes"], ROOT), "--positive yes", "labels found: ['0', '1']")
    with pytest.raises(DnabertError, match="--set min_sd=1: write KEY=VALUE with KEY one of .*steps"):
        args = build_parser().parse_args([*common, "--method", "modisco", "--set", "min_sd=1"])  # attention's key
        args.run(args)


def test_motifs_modisco_bad_input_is_one_line_and_writes_nothing(planted_model, tmp_path, monkeypatch):
    import sys

    from dnabert.models.checkpoints import save_hf_directory
    from dnabert.models.long_sequence import BertForLongSequenceClassification, DNABertLongConfig
    from tests.test_interpret_attention import tiny_config

    out = tmp_path / "motifs"
    rows = planted_model["data"].read_text().splitlines()
    negatives = tmp_path / "negatives.tsv"
    negatives.write_text("\n".join([rows[0], *(r for r in rows[1:] if r.split("\t")[1] == "0")]) + "\n")
    modisco = ["--method", "modisco", "--quiet"]
    no_positives = dnabert_cli(["motifs", str(planted_model["model"]), "--input", str(negatives), "--out", str(out),
                                *modisco], ROOT)
    assert no_positives.returncode == 2
    assert_user_error(no_positives, "--positive 1 must split the rows into two groups", "labels found: ['0']")
    long_model, config = tmp_path / "long.hf", tiny_config(6, 64, DNABertLongConfig)
    config.id2label, config.label2id = {0: "0", 1: "1"}, {"0": 0, "1": 1}  # the planted set's labels
    save_hf_directory(BertForLongSequenceClassification(config), long_model)
    chunked = dnabert_cli(["motifs", str(long_model), "--input", str(planted_model["data"]), "--out", str(out),
                           *modisco], ROOT)
    assert chunked.returncode == 2
    assert_user_error(chunked, "long-sequence (chunked) models are not supported", "--method attention")
    monkeypatch.setitem(sys.modules, "modiscolite", None)  # as if modisco-lite were not installed
    missing = dnabert_cli(["motifs", str(planted_model["model"]), "--input", str(planted_model["data"]), "--out",
                           str(out), *modisco], ROOT)
    assert missing.returncode == 2
    assert_user_error(missing, "needs the package 'modiscolite'", "pip install 'dnabert[interp]'")
    assert not out.exists() and not list(tmp_path.glob(".motifs*"))
