"""config/things.yaml pins the paper's data choices: its systematic lists and its question forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxvlm.io import read_tsv

from spec_builders import preset

REPO = Path(__file__).resolve().parents[1]
THINGS = preset("config/things.yaml")
THINGSPLUS = REPO / "data/thingsplus"
SYSTEMATIC_TSV = THINGSPLUS / "xu2026_systematic_categories.tsv"
# the project's reference copies (only on the development machines; the product never reads them)
REFERENCE = REPO.parent / "shared/data/thingsplus"


def test_things_tables_ship_in_the_repository() -> None:
    section = THINGS["dataset"]["things"]
    for key in ("categories", "pairs", "hypernym_forms"):
        path = Path(section[key])
        assert not path.is_absolute() and path.parts[:2] == ("data", "thingsplus"), (key, path)
        assert (REPO / path).is_file(), path
    assert "BY 4.0" in (THINGSPLUS / "README.md").read_text()


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference copies not found at {REFERENCE}")
def test_shipped_tables_equal_the_reference_copies() -> None:
    tsvs = sorted(p.name for p in REFERENCE.glob("*.tsv"))
    assert tsvs == sorted(p.name for p in THINGSPLUS.glob("*.tsv"))
    for name in tsvs:
        assert (THINGSPLUS / name).read_bytes() == (REFERENCE / name).read_bytes(), name


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
