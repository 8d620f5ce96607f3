"""Every generated figure block of the READMEs (and every study's table.md) is what its committed record gives, byte
for byte; a figure edited by hand fails; the study READMEs quote no figure outside a generated block."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_user_error, dnabert_cli

STUDIES = ("splice_primate", "tfbs_oct4_mafk", "tfbs_dnabert_sample", "promoter_dm3")
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d{2,}(?![\w.])")


def test_every_generated_figure_matches_its_committed_record():
    from dnabert.figures import BLOCK, generated, stale

    assert stale(ROOT) == []
    documents = [path for path in generated(ROOT) if path.name == "README.md"]
    blocks = [match.group("spec") for path in documents for match in BLOCK.finditer(path.read_text())]
    assert {f"study-table experiments/{name}" for name in STUDIES} <= set(blocks)
    assert any(spec.startswith("studies ") for spec in blocks) and any(spec.startswith("ensembles ") for spec in blocks)


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the READMEs and the study records, as a checkout root."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    for readme in (ROOT / "experiments").glob("*/README.md"):
        shutil.copytree(readme.parent, tmp_path / "experiments" / readme.parent.name,
                        ignore=shutil.ignore_patterns("results"))
    return tmp_path


def change_a_digit(path: Path, inside: str) -> None:
    """Change the last digit of the first figure after `inside` in a file."""
    text = path.read_text()
    start = text.index(inside) + len(inside)
    match = DECIMAL.search(text, start)
    digit = text[match.end() - 1]
    path.write_text(text[:match.end() - 1] + str((int(digit) + 1) % 10) + text[match.end():])


@pytest.mark.parametrize("document,inside", [
    ("README.md", "<!-- figures: studies"),
    ("README.md", "<!-- figures: ensembles"),
    ("experiments/splice_primate/README.md", "<!-- figures: study-summary"),
    ("experiments/tfbs_oct4_mafk/README.md", "<!-- figures: study-table"),
    ("experiments/promoter_dm3/table.md", "| model"),
])
def test_a_figure_edited_by_hand_fails_the_check(checkout, document, inside):
    assert dnabert_cli(["figures", "--check"], checkout).returncode == 0
    change_a_digit(checkout / document, inside)
    assert_user_error(dnabert_cli(["figures", "--check"], checkout), "figures differ from their records", document)
    rewritten = dnabert_cli(["figures"], checkout)
    assert rewritten.returncode == 0 and f"rewrote {document}" in rewritten.stdout
    assert (checkout / document).read_text() == (ROOT / document).read_text()


def test_a_changed_record_changes_its_figures(checkout):
    results = checkout / "experiments" / "splice_primate" / "results.json"
    results.write_text(results.read_text().replace('"test/accuracy": 0.9', '"test/accuracy": 0.8', 1))
    assert dnabert_cli(["figures"], checkout).returncode == 0
    assert (checkout / "README.md").read_text() != (ROOT / "README.md").read_text()


@pytest.mark.parametrize("study", STUDIES)
def test_a_study_readme_quotes_no_figure_outside_a_generated_block(study):
    from dnabert.figures import BLOCK

    text = BLOCK.sub("", (ROOT / "experiments" / study / "README.md").read_text())
    assert DECIMAL.findall(text) == []


def test_a_block_naming_no_record_is_one_line(checkout):
    readme = checkout / "README.md"
    readme.write_text(readme.read_text() + "\n<!-- figures: study-table experiments/nowhere -->\n<!-- /figures -->\n")
    assert_user_error(dnabert_cli(["figures", "--check"], checkout), "experiments/nowhere/results.json",
                      "no committed record")
    readme.write_text(readme.read_text().replace("study-table experiments/nowhere", "chart experiments/nowhere"))
    assert_user_error(dnabert_cli(["figures"], checkout), "README.md line", "give a view")
