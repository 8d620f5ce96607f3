"""Variant effects: DNABERT's scores, its mutation-file format, saturation, VCF records handled one by one, and a
tiny model trained on a planted CTCF site that reads destroying the site as a large loss."""

from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest
import torch

from dnabert.cli import build_parser
from dnabert.errors import DnabertError
from dnabert.interpret.variants import effect_sizes, read_mutations, saturation_variants
from tests.conftest import ROOT, assert_user_error, data_file, dnabert_cli, genome_text


def read_tsv(path) -> list[dict]:
    return list(csv.DictReader(open(path), delimiter="\t"))


def test_diff_and_log_odds_ratio_match_the_spec_vector():
    scores = effect_sizes(np.array([0.9, 0.5]), np.array([0.3, 0.5]))
    assert scores["diff"] == pytest.approx([-0.54, 0.0])
    assert scores["log_odds_ratio"] == pytest.approx([4.392317, 0.0], abs=1e-6)
    assert scores["change"] == pytest.approx([-0.6, 0.0])


def test_dnabert_mutation_file_substitution_insertion_deletion_and_nan(tmp_path):
    names, sequences = ["a", "b"], ["ACGTACGTAC", "GGGGCCCC"]
    mutations = tmp_path / "mut.txt"
    mutations.write_text("0\t2\t3\tT\n1\t4\t4\tAA\n1\t0\t2\t\n0\t5\t7\tnan\n1\t3\t5")
    variants = read_mutations(mutations, names, sequences)
    assert [v.alternative_window for v in variants] == ["ACTTACGTAC", "GGGGAACCCC", "GGCCCC", "ACGTATAC", "GGGCCC"]
    assert [v.name for v in variants] == ["a:2-3:G>T", "b:4-4:->AA", "b:0-2:GG>-", "a:5-7:CG>-", "b:3-5:GC>-"]
    assert all(v.reference_window == sequences[0 if v.locus == "a" else 1] for v in variants)
    # DNABERT's own example file parses (indices refer to its 6-mer dev.tsv, so use long enough stand-ins)
    example = data_file("snp_example_mutations.txt")
    parsed = read_mutations(example, [f"s{i}" for i in range(400)], ["ACGT" * 20] * 400)
    last = [(v.locus, v.start, v.end, v.alternative) for v in parsed][-2:]
    assert last == [("s240", 8, 8, "A"), ("s325", 10, 11, "")]
    for text, problem in [("2\t0\t1\tA", "line 1: sequence index 2 is not in 0..1"),
                          ("0\t8\t12\tA", "line 1: interval [8, 12) is outside sequence 0"),
                          ("0\t1\t2\tA\n0\tx\t2\tA", "line 2: index, start and end must be whole numbers"),
                          ("0\t1\t2\tZ", "replacement 'Z' is not A/C/G/T/N")]:
        mutations.write_text(text)
        with pytest.raises(DnabertError, match=problem.replace("[", r"\[").replace(")", r"\)")):
            read_mutations(mutations, names, sequences)


def test_saturation_substitutes_every_position_three_ways():
    variants = saturation_variants(["s"], ["ACGN"])
    assert len(variants) == 3 * 3 + 4
    assert {v.alternative_window for v in variants[:3]} == {"CCGN", "GCGN", "TCGN"}


def site_sequence(planted: dict) -> tuple[str, int]:
    """The first planted positive written on the + strand, and where its site starts."""
    rows = read_tsv(planted["data"])
    row = next(r for r in rows if r["label"] == "1" and r["strand"] == "+")
    return row["sequence"], int(row["start"])


def test_destroying_the_planted_site_is_a_large_positive_log_odds_ratio(planted_model, tmp_path):
    sequence, start = site_sequence(planted_model)
    site = planted_model["site"]
    assert sequence[start : start + len(site)] == site
    far = 0 if start > 40 else len(sequence) - 1
    (tmp_path / "seqs.tsv").write_text(f"sequence\tlabel\n{sequence}\t1\n")
    scrambled = "".join(np.random.default_rng(0).permutation(list(site)))
    (tmp_path / "mut.txt").write_text(f"0\t{start}\t{start + len(site)}\t{scrambled}\n"
                                      f"0\t{far}\t{far + 1}\t{'A' if sequence[far] != 'A' else 'C'}\n")
    out = tmp_path / "report.tsv"
    result = dnabert_cli(["variants", str(planted_model["model"]), "--sequences", str(tmp_path / "seqs.tsv"),
                          "--mutations", str(tmp_path / "mut.txt"), "--out", str(out), "--quiet"], ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_tsv(out)
    destroyed = next(r for r in rows if r["start"] == str(start))
    elsewhere = next(r for r in rows if r["start"] == str(far))
    assert float(destroyed["p_ref"]) > 0.8 and float(destroyed["log_odds_ratio"]) > 2, rows
    assert abs(float(elsewhere["log_odds_ratio"])) < 0.2 * float(destroyed["log_odds_ratio"]), rows
    assert destroyed["rank"] == "1" and float(destroyed["diff"]) < 0
    assert (tmp_path / "report_top.png").stat().st_size > 0 and (tmp_path / "report_top.svg").stat().st_size > 0
    saturation = tmp_path / "saturation.tsv"
    result = dnabert_cli(["variants", str(planted_model["model"]), "--sequences", str(tmp_path / "seqs.tsv"),
                          "--saturation", "--out", str(saturation), "--quiet"], ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_tsv(saturation)
    assert len(rows) == 3 * len(sequence)
    top = [int(r["start"]) for r in rows[:10]]
    assert all(start <= position < start + len(site) for position in top[:5]), rows[:10]


def test_vcf_records_are_split_checked_and_reported_one_by_one(planted_model, tmp_path):
    sequence, start = site_sequence(planted_model)
    genome = tmp_path / "genome.fa"
    genome.write_text(f">chrT\n{sequence}\n")
    pos = start + 1 + 7  # 1-based position inside the site
    ref, far = sequence[start + 7], 2
    other = "A" if ref != "A" else "C"
    records = [
        f"chrT\t{pos}\tsite\t{ref}\t{other},{'G' if ref != 'G' else 'T'}",      # multi-allelic, inside the site
        f"chrT\t{far}\t.\t{sequence[far - 1]}\t{'A' if sequence[far - 1] != 'A' else 'C'}",
        f"chrT\t{pos}\tmismatch\t{other}\t{ref}",                               # REF disagrees with the genome
        f"chrT\t{pos}\tins\t{ref}\t{ref}TTT",                                   # insertion
        f"chrT\t{pos}\tdel\t{sequence[start + 7 : start + 11]}\t{ref}",          # deletion
        f"chrT\t{len(sequence) + 5}\tbeyond\tA\tC",                             # out of range
        "chrU\t10\tnochrom\tA\tC",                                             # unknown chromosome
        f"chrT\t{pos}\tsv\t{ref}\t<DEL>",                                       # symbolic
        "chrT\t12",                                                             # truncated line
    ]
    vcf = tmp_path / "calls.vcf.gz"
    with gzip.open(vcf, "wt") as handle:
        handle.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        handle.write("\n".join(f"{r}\t.\tPASS\t." if r.count("\t") >= 4 else r for r in records) + "\n")
    out = tmp_path / "vcf_report.tsv"
    result = dnabert_cli(["variants", str(planted_model["model"]), "--vcf", str(vcf), "--genome", str(genome),
                          "--window", "60", "--out", str(out), "--quiet", "--cache-dir", str(tmp_path / "cache")], ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "10 variants, 5 scored, 5 skipped" in result.stdout
    rows = {r["variant"]: r for r in read_tsv(out)}
    assert len(rows) == 10
    status = {name: r["status"] for name, r in rows.items()}
    assert [status[f"site:{ref}>{other}"], status["ins:" + ref + ">" + ref + "TTT"]] == ["scored", "scored"]
    assert rows["ins:" + ref + ">" + ref + "TTT"]["note"] == "indel"
    assert status[f"mismatch:{other}>{ref}"] == "ref_mismatch"
    assert f"REF {other} but the genome has {ref}" in rows[f"mismatch:{other}>{ref}"]["note"]
    assert status["beyond:A>C"] == "out_of_range" and "past the contig end" in rows["beyond:A>C"]["note"]
    assert status["nochrom:A>C"] == "unknown_chrom" and "'chrU' is not in the genome" in rows["nochrom:A>C"]["note"]
    assert status[f"sv:{ref}><DEL>"] == "symbolic" and "line 10" in rows[f"sv:{ref}><DEL>"]["note"]
    assert "malformed" in status.values()
    inside = float(rows[f"site:{ref}>{other}"]["log_odds_ratio"])
    outside = float(next(r for n, r in rows.items() if n.startswith(f"chrT:{far}:"))["log_odds_ratio"])
    assert abs(outside) < abs(inside) or abs(outside) < 0.1


def test_variants_refuses_unclear_inputs(planted_model, tmp_path):
    def run(*options: str) -> None:
        args = build_parser().parse_args(["variants", str(planted_model["model"]), "--out", str(tmp_path / "r.tsv"),
                                          "--cache-dir", str(tmp_path / "cache"), *options])
        args.run(args)

    with pytest.raises(DnabertError, match="give --vcf with --genome, or --sequences"):
        run()
    with pytest.raises(DnabertError, match="give --vcf with --genome, or --sequences"):
        run("--sequences", "s.tsv")
    with pytest.raises(DnabertError, match="--genome"):
        run("--vcf", str(tmp_path / "x.vcf"))
    (tmp_path / "g.fa").write_text(">chrT\nACGTACGTAC\n")
    with pytest.raises(DnabertError, match="x.vcf: VCF file not found"):
        run("--vcf", str(tmp_path / "x.vcf"), "--genome", str(tmp_path / "g.fa"))


def test_a_variant_past_what_the_model_reads_is_refused_not_scored_as_zero(planted_model, tmp_path):
    """A 6-mer model of 512 positions reads 515 nt of a window: a variant at nt 600 would have effect 0 without a
    word, so it is refused, naming where it is and the model's reach; a variant inside a longer window is scored and
    the truncation said in one line."""
    genome = genome_text(data_file("ecoli_k12_300kb.fa.gz"))[:1200]
    (tmp_path / "seqs.tsv").write_text(f"sequence\tlabel\n{genome[:700]}\t1\n")
    (tmp_path / "past.txt").write_text(f"0\t599\t600\t{'A' if genome[599] != 'A' else 'C'}\n")
    out = tmp_path / "past.tsv"
    result = dnabert_cli(["variants", str(planted_model["model"]), "--sequences", str(tmp_path / "seqs.tsv"),
                          "--mutations", str(tmp_path / "past.txt"), "--out", str(out), "--quiet"], ROOT)
    assert_user_error(result, "s", "the variant at nt 600 of its 700 nt window lies past the 515 nt the model reads",
                      "at most 515 nt")
    assert not out.exists()
    (tmp_path / "inside.txt").write_text(f"0\t99\t100\t{'A' if genome[99] != 'A' else 'C'}\n")
    result = dnabert_cli(["variants", str(planted_model["model"]), "--sequences", str(tmp_path / "seqs.tsv"),
                          "--mutations", str(tmp_path / "inside.txt"), "--out", str(out), "--quiet"], ROOT)
    assert result.returncode == 0, result.stderr
    assert "dnabert: warning: variants: 1 of 1 sequences are longer than the 515 nt the model reads" in result.stderr
    assert [row["status"] for row in read_tsv(out)] == ["scored"]
    (tmp_path / "genome.fa").write_text(f">chrT\n{genome}\n")
    vcf = tmp_path / "calls.vcf"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchrT\t600\tv600\t{genome[599]}\t{'A' if genome[599] != 'A' else 'C'}\n")
    common = ["variants", str(planted_model["model"]), "--vcf", str(vcf), "--genome", str(tmp_path / "genome.fa"),
              "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--quiet"]
    assert_user_error(dnabert_cli([*common, "--window", "1100"], ROOT),
                      "v600", "the variant at nt 550 of its 1,100 nt window lies past the 515 nt", "--window 515")
    assert dnabert_cli([*common, "--window", "515"], ROOT).returncode == 0


@pytest.mark.parametrize("aggregation", ["mean", "concat"])
def test_a_long_sequence_model_scores_a_variant_in_every_chunk_it_reads(aggregation, tmp_path):
    """A long-sequence model splits the 700-nt window into chunks: with mean aggregation the variant at nt 600 is
    scored (an effect, not 0); concatenating only its first 4 chunks of 62 3-mers, the model reads 250 nt, so the
    same variant is refused with that reach."""
    from dnabert.models.long_sequence import BertForLongSequenceClassification, DNABertLongConfig

    config = DNABertLongConfig(chunk_aggregation=aggregation, max_chunks=4, vocab_size=4**3 + 5, hidden_size=32,
                               num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                               max_position_embeddings=64, num_labels=2, problem_type="single_label_classification")
    config.k = 3
    torch.manual_seed(0)
    BertForLongSequenceClassification(config).save_pretrained(tmp_path / "model")
    genome = genome_text(data_file("ecoli_k12_300kb.fa.gz"))[:700]
    (tmp_path / "seqs.tsv").write_text(f"sequence\tlabel\n{genome}\t1\n")
    (tmp_path / "past.txt").write_text(f"0\t599\t600\t{'A' if genome[599] != 'A' else 'C'}\n")
    out = tmp_path / "effects.tsv"
    result = dnabert_cli(["variants", str(tmp_path / "model"), "--sequences", str(tmp_path / "seqs.tsv"),
                          "--mutations", str(tmp_path / "past.txt"), "--out", str(out), "--quiet"], ROOT)
    if aggregation == "concat":
        assert_user_error(result, "the variant at nt 600 of its 700 nt window lies past the 250 nt the model reads")
        assert not out.exists()
        return
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    (row,) = read_tsv(out)
    assert row["status"] == "scored" and float(row["diff"]) != 0.0, row
