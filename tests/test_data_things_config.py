"""config/things.yaml pins the paper's data choices: its systematic lists and its question forms."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taxvlm.io import read_tsv

REPO = Path(__file__).resolve().parents[1]
THINGS = yaml.safe_load((REPO / "config/things.yaml").read_text())
THINGSPLUS = REPO.parent / "shared/data/thingsplus"
SYSTEMATIC_TSV = THINGSPLUS / "xu2026_systematic_categories.tsv"

pytestmark = pytest.mark.skipif(
    not SYSTEMATIC_TSV.is_file(), reason=f"paper tables not found at {THINGSPLUS} (../shared beside the repo)"
)


def test_systematic_lists_are_the_papers() -> None:
    table = read_tsv(SYSTEMATIC_TSV)
    expected = {str(n): list(group.category) for n, group in table.groupby("n_categories", sort=False)}
    pinned = THINGS["conditions"]["systematic_categories"]
    assert pinned == expected
    assert sorted(pinned) == ["10", "20", "30", "40"] and all(len(v) == int(n) for n, v in pinned.items())


def test_things_tables_share_the_category_names() -> None:
    """Every category named in things.yaml's lists and question forms is one of the pairs file."""
    section = THINGS["dataset"]["things"]
    hypernyms = set(read_tsv(REPO / section["pairs"]).hypernym)
    assert len(hypernyms) == 53
    for n, categories in THINGS["conditions"]["systematic_categories"].items():
        assert set(categories) <= hypernyms, n
    forms = read_tsv(REPO / section["hypernym_forms"])
    assert list(forms.columns) == ["hypernym", "question_form"] and set(forms.hypernym) <= hypernyms
