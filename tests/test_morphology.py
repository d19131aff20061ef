"""English morphology from inflect (`lexicon.indefinite_article`, `lexicon.plural`): what it changed.

The real THINGSplus names pin the change: every article stays what the earlier hand-written prefix
rules gave, and the plurals that differ from the earlier regular `-s`/`-es`/`-ies` rule are exactly
`THINGSPLUS_PLURAL_CHANGES`. On the default (Tux Paint stamps, whose .deb is not in the repository)
the same comparison, run on the real stamps, changed only the text probe's `plural` phrasings, for
the names in `TUXPAINT_PLURAL_CHANGES`; no question or caption changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from taxvlm.analysis.textprobe import surface_forms
from taxvlm.data import lexicon
from taxvlm.io import read_tsv

THINGSPLUS = Path(__file__).resolve().parents[2] / "shared/data/thingsplus"
CATEGORIES_TSV = THINGSPLUS / "category53_longFormat.tsv"
FORMS_TSV = THINGSPLUS / "xu2026_hypernym_surface_forms.tsv"

TUXPAINT_PLURAL_CHANGES = {
    "aircraft": "aircraft", "butterflyfish": "butterflyfish", "deer": "deer", "dingo": "dingoes",
    "dolphinfish": "dolphinfish", "fireman": "firemen", "fish": "fish", "flamingo": "flamingoes",
    "lionfish": "lionfish", "mango": "mangoes", "mouse": "mice", "potato": "potatoes", "scarf": "scarves",
    "sheep": "sheep", "tomato": "tomatoes", "trout": "trout", "woodlouse": "woodlice",
}  # fmt: skip
THINGSPLUS_PLURAL_CHANGES = {
    "banjo": "banjoes", "blowfish": "blowfish", "bookshelf": "bookshelves", "calf": "calves",
    "catfish": "catfish", "crayfish": "crayfish", "deer": "deer", "domino": "dominoes", "fish": "fish",
    "flamingo": "flamingoes", "foot": "feet", "gingerbread man": "gingerbread men", "goldfish": "goldfish",
    "goose": "geese", "headscarf": "headscarves", "hovercraft": "hovercraft", "jellyfish": "jellyfish",
    "knife": "knives", "luggage": "luggage", "mango": "mangoes", "mashed potato": "mashed potatoes",
    "moose": "moose", "mosquito": "mosquitoes", "mouse": "mice", "pocketknife": "pocketknives",
    "potato": "potatoes", "reindeer": "reindeer", "sarcophagus": "sarcophagi", "scarf": "scarves",
    "sheep": "sheep", "shelf": "shelves", "starfish": "starfish", "stiletto": "stilettoes",
    "stomach": "stomachs", "sweet potato": "sweet potatoes", "swordfish": "swordfish", "tomato": "tomatoes",
    "tooth": "teeth", "torpedo": "torpedoes", "tuxedo": "tuxedoes", "watercraft": "watercraft",
    "wolf": "wolves",
}  # fmt: skip


def _regular_plural(name: str) -> str:
    """The earlier hand-written rule (textprobe `_plural`), kept here only to show what changed."""
    head, sep, rest = name.partition(" of ")
    if head.endswith(("s", "x", "z", "ch", "sh")):
        head += "es"
    elif len(head) > 1 and head.endswith("y") and head[-2] not in "aeiou":
        head = head[:-1] + "ies"
    else:
        head += "s"
    return head + sep + rest


def _prefix_article(name: str) -> str:
    """The earlier hand-written a/an rule (after the no-article check), kept only for the comparison."""
    first = lexicon._unaccented(name.lower().split()[0])
    if first.startswith(("uni", "use", "usu", "uten", "uri", "ukulele", "eu", "ewe", "one", "once", "ouija")):
        return "a"
    return "an" if first.startswith(("hour", "honest", "honor", "honour", "heir")) or first[0] in "aeiou" else "a"


def _thingsplus_names() -> list[str]:
    if not CATEGORIES_TSV.is_file():
        pytest.skip(f"THINGSplus tables not found at {THINGSPLUS} (../shared beside the repo)")
    table = read_tsv(CATEGORIES_TSV)
    forms = dict(zip(*read_tsv(FORMS_TSV)[["hypernym", "question_form"]].T.values))
    return sorted(set(table.Word) | {forms.get(c, c) for c in table.category})


def test_thingsplus_articles_are_unchanged_and_plural_changes_are_listed() -> None:
    names = _thingsplus_names()
    counted = [n for n in names if lexicon.indefinite_article(n)]
    assert [n for n in counted if lexicon.indefinite_article(n) != _prefix_article(n)] == []
    changed = {n: lexicon.plural(n) for n in counted if lexicon.plural(n) != _regular_plural(n)}
    assert changed == THINGSPLUS_PLURAL_CHANGES


@pytest.mark.parametrize(("name", "expected"), sorted(TUXPAINT_PLURAL_CHANGES.items()))
def test_tuxpaint_plural_changes(name: str, expected: str) -> None:
    assert lexicon.plural(name) == expected != _regular_plural(name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("item of clothing", "items of clothing"), ("piece of jewelry", "pieces of jewelry"),
        ("car part", "car parts"), ("bus", "buses"), ("butterfly", "butterflies"), ("burrito", "burritos"),
        ("thermos", "thermoses"), ("Nut Tree", "Nut Trees"),
    ],
)  # fmt: skip
def test_plural_keeps_the_of_form_and_overrides(name: str, expected: str) -> None:
    assert lexicon.plural(name) == expected


@pytest.mark.parametrize(("name", "article"), [("x-ray", "an"), ("one-way sign", "a"), ("éclair", "an"), ("heir", "an")])
def test_inflect_articles_by_sound(name: str, article: str) -> None:
    assert lexicon.indefinite_article(name) == article


def test_textprobe_plural_phrasing_uses_inflect() -> None:
    import pandas as pd

    concepts = pd.DataFrame({"concept": ["mouse", "jeans"], "name": ["mouse", "jeans"], "article": ["a", ""]})
    hypernyms = pd.DataFrame({"hypernym": ["fish"], "question_form": ["fish"], "article": ["a"]})
    leaves, forms = surface_forms(concepts, hypernyms)
    assert (leaves["mouse"]["leaves"], leaves["jeans"]["leaves"], forms["fish"]["hyps"]) == ("mice", "jeans", "fish")


def test_hypernym_mentions_catch_irregular_plurals() -> None:
    """A training caption that names a removed hypernym in an irregular plural is caught too (on the
    default's real Tux Paint captions this changed no mention)."""
    import pandas as pd

    from taxvlm.data.captions import HypernymMentions

    hypernyms = pd.DataFrame({"hypernym": ["person", "fish"], "question_form": ["person", "fish"]})
    mentions = HypernymMentions(hypernyms)
    assert mentions.named("Two people waving.", "firefighter", ["person", "fish"]) == ["person"]
    assert mentions.named("Fishes and fish.", "trout", ["person", "fish"]) == ["fish"]


@pytest.mark.parametrize(
    ("name", "plural_form"), [("scissors", True), ("united states", True), ("garlic", False), ("bus", False), ("owl", False)]
)
def test_is_plural_tells_plural_forms_from_mass_nouns(name: str, plural_form: bool) -> None:
    assert lexicon.is_plural(name) is plural_form
