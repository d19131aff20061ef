"""CITATION.cff: the keys Citation File Format 1.2.0 requires, and the papers the project implements.

(Checked once against CFF 1.2.0's JSON schema, the one bundled with cffconvert 2.0.0; cffconvert itself
needs jsonschema < 4, which the pinned environment does not have.)"""

from __future__ import annotations

from pathlib import Path

import yaml

CFF = Path(__file__).resolve().parents[1] / "CITATION.cff"
REQUIRED_WORK = ("type", "title", "authors")


def test_citation_has_the_required_keys_and_the_implemented_papers() -> None:
    cff = yaml.safe_load(CFF.read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff[key], key
    works = [cff["preferred-citation"], *cff["references"]]
    for work in works:
        assert all(work.get(key) for key in REQUIRED_WORK), work.get("title")
        assert all(a.get("family-names") or a.get("name") for a in work["authors"]), work["title"]
        assert isinstance(work["year"], int)
    arxiv = {i["value"] for work in works for i in work.get("identifiers", [])}
    assert arxiv == {"arXiv:2603.07474", "arXiv:2209.15162", "arXiv:2402.17304", "arXiv:2306.08832"}
    assert cff["preferred-citation"]["authors"][0]["family-names"] == "Xu"
