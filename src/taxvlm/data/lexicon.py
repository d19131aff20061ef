"""Surface forms, indefinite articles and plurals for the question template `Is there {article} {name} ...`
and the text probe's phrasings.

English morphology comes from `inflect` (`a`/`an` by sound: `an hour`, `a unicorn`, `a one-way sign`;
plurals with irregulars: `mouse` → `mice`, `potato` → `potatoes`, `item of clothing` → `items of
clothing`). A dataset that needs something else states it explicitly (the `folder` TSV's `article`
column, a `plural` column in concepts.tsv).

Kept by hand (**decision**), because inflect cannot decide it: whether a name takes an article at all.
inflect has no notion of mass nouns (`a food`, `a honey`) and reads plural-only forms as singular
(`a jeans`, `a scissors`, plural `jeanss`); its `singular_noun` is no test of plurality either (it
singularises `bus` to `bu`, `lens` to `len`). So: no article for mass nouns and plural-only / plural
surface forms (`Is there food ...`, `Is there scissors ...`): the head of the name is looked up in
`NO_ARTICLE_HEADS`; a head ending in `s` counts as plural unless it ends in `ss`/`us`/`is`/`os` or is
listed in `SINGULAR_S_HEADS` (`bus`, `walrus`, `canvas`, ...). The head is the last word, or in an
`X of Y` form the last word before `of` (`an item of clothing`, `a pair of scissors`). Such a name is
its own plural. Also kept: the plural of an `X of Y` form is that of X (inflect leaves `piece of
jewelry` unchanged), and `PLURAL_OVERRIDES`, seven words whose inflect plural is wrong.

Lexical overlap (`lexical_overlap`): a leaf whose name spells its hypernym (blackbird → bird) can be
answered from the words alone; pairs.tsv flags such pairs so that reports can set them apart
(docs/protocol.md §3).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

ARTICLES = ("a", "an", "")

NO_ARTICLE_HEADS = frozenset(
    """
    food seafood clothing furniture jewelry jewellery hardware lighting decor equipment footwear
    headwear outerwear candy bread rice butter cheese meat corn popcorn lettuce garlic broccoli
    spinach celery asparagus cauliflower bacon ham jam jelly honey milk coffee tea juice water soup
    sugar salt flour cereal pasta spaghetti lasagna yogurt cream chocolate granola oatmeal hummus
    fudge toast tofu grass moss hay sand soil mud ivy seaweed floss gloss glitter clay paint yarn
    string wire tape foil pajamas
    """.split()
)
SINGULAR_S_HEADS = frozenset("bus canvas gas lens atlas iris thermos".split())
# Where inflect's plural is wrong for a THINGSplus or Tux Paint name: it gives `-oes` to every
# consonant + `o` word missing from its own `-os` list (`burritoes`), and `thermoss`.
PLURAL_OVERRIDES = {
    w: w + "es" if w.endswith("s") else w + "s"
    for w in "burrito jalapeno lego nacho pesto velcro thermos".split()
}
_SINGULAR_S_ENDINGS = ("ss", "us", "is", "os")


@functools.cache
def _engine() -> Any:
    """inflect's engine, imported on first use: the import takes seconds (it builds its word lists),
    which every importer of this module would otherwise pay."""
    import inflect

    return inflect.engine()


def surface_form(concept_id: str) -> str:
    """A readable name from a concept id: `air_conditioner` → `air conditioner`, `bat1` → `bat`.

    Used only where a dataset gives no surface form (THINGS ids missing from THINGSplus).
    """
    return concept_id.rstrip("0123456789").replace("_", " ").strip()


def head_word(name: str) -> str:
    """The word that decides the article: the last one, or the last before `of` (`item of clothing`)."""
    words = name.lower().split()
    if "of" in words[1:]:
        words = words[: words.index("of", 1)]
    return words[-1].split("-")[-1]


def takes_no_article(name: str) -> bool:
    """True for mass nouns and plural surface forms, judged by the head of the name."""
    head = head_word(name)
    if head in NO_ARTICLE_HEADS:
        return True
    if head in SINGULAR_S_HEADS or head.endswith(_SINGULAR_S_ENDINGS):
        return False
    return head.endswith("s")


def is_plural(name: str) -> bool:
    """True for a plural surface form (`scissors`, `united states`): a name without an article that
    is no mass noun (the head rule of `takes_no_article`)."""
    return head_word(name) not in NO_ARTICLE_HEADS and takes_no_article(name)


def indefinite_article(name: str) -> str:
    """`a`, `an` or `` (none) for a surface form, by the rules in the module docstring."""
    if takes_no_article(name):
        return ""
    if not name.strip():
        raise ValueError("indefinite_article: empty name")
    return _engine().a(_unaccented(name.strip())).split(" ", 1)[0]


@functools.cache
def plural(name: str) -> str:
    """The plural of a countable singular surface form: of its head (the part before ` of `) by
    inflect (`mouse` → `mice`, `item of clothing` → `items of clothing`), unless the head's last word
    is in `PLURAL_OVERRIDES`. A name without an article (`takes_no_article`: a mass noun or a plural)
    is its own plural; callers keep it as it is."""
    head, sep, rest = name.partition(" of ")
    words = head.split(" ")
    override = PLURAL_OVERRIDES.get(words[-1].lower())
    head = " ".join([*words[:-1], override]) if override else _engine().plural_noun(head)
    return head + sep + rest


def _unaccented(word: str) -> str:
    """`éclair` → `eclair`: an accented vowel is still a written vowel (`an éclair`); inflect reads
    only unaccented letters."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))


def question_text(template: str, article: str, name: str) -> str:
    """Fill the template; an empty article leaves no double space (`Is there food in ...`)."""
    return " ".join(template.format(article=article, name=name).split())


# A hypernym word shorter than this, or a function word, says nothing about the leaf (`of`, `and`).
OVERLAP_MIN_WORD = 3
OVERLAP_IGNORED_WORDS = frozenset({"and", "the", "for", "with"})


def overlap_terms(hypernym: str, question_form: str) -> frozenset[str]:
    """The lower-cased strings that flag a leaf name: the hypernym's name and question form, and each
    of their words of at least `OVERLAP_MIN_WORD` letters (`part of car` → `part`, `car`)."""
    names = {hypernym.lower(), question_form.lower()}
    words = {w for name in names for w in re.split(r"\W+", name) if len(w) >= OVERLAP_MIN_WORD}
    return frozenset(names | (words - OVERLAP_IGNORED_WORDS))


def lexical_overlap(leaf_name: str, hypernym: str, question_form: str) -> bool:
    """Whether the leaf's name contains its hypernym by spelling, case-insensitively: blackbird → bird,
    lionfish → fish, nut tree → tree, seafood → food."""
    name = leaf_name.lower()
    return any(term in name for term in overlap_terms(hypernym, question_form))
