"""Every number in a study README's tables outside its generated blocks comes from that study's committed results
(the generated blocks are rewritten from their records and compared byte for byte by tests/test_figures.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

RESULT_FILES = ("results.json", "table.md", "record/*.json", "record/*.md")
NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d{2,}(?![\w.])")


def committed_results(study: Path) -> list[Path]:
    """The result files a study folder commits (its run directories under results/ are not)."""
    return sorted({path for pattern in RESULT_FILES for path in study.glob(pattern)})


def values(payload: object) -> list[float]:
    """Every number in a JSON document."""
    if isinstance(payload, dict):
        return [v for item in payload.values() for v in values(item)]
    if isinstance(payload, list):
        return [v for item in payload for v in values(item)]
    return [float(payload)] if isinstance(payload, (int, float)) and not isinstance(payload, bool) else []


def table_numbers(markdown: str) -> list[str]:
    """Decimal numbers (two or more places) in the Markdown table rows of a text."""
    return [number for line in markdown.splitlines() if line.startswith("|") for number in NUMBER.findall(line)]


STUDIES = [readme.parent for readme in sorted((ROOT / "experiments").glob("*/README.md"))
           if committed_results(readme.parent)]


def test_studies_with_committed_results_are_found():
    assert "pretrain_transfer" in {study.name for study in STUDIES}


@pytest.mark.parametrize("study", STUDIES, ids=lambda study: study.name)
def test_every_table_number_in_a_study_readme_is_in_its_results(study):
    files = committed_results(study)
    recorded = [v for f in files if f.suffix == ".json" for v in values(json.loads(f.read_text()))]
    tables = {number for f in files if f.suffix == ".md" for number in table_numbers(f.read_text())}
    missing = []
    from dnabert.figures import BLOCK

    for number in table_numbers(BLOCK.sub("", (study / "README.md").read_text())):
        places = len(number.split(".")[1])
        if number not in tables and not any(abs(v - float(number)) <= 0.5 * 10 ** -places + 1e-12 for v in recorded):
            missing.append(number)
    assert not missing, f"{study.name}/README.md table numbers not in its committed results: {missing[:10]}"
