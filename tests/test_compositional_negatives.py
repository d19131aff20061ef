"""Hard-negative generator: whole-word swaps, invalid types, taxonomic negatives, seeding."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from taxvlm.compositional import negatives as neg

POS = {
    "cat": "NOUN",
    "category": "NOUN",
    "dog": "NOUN",
    "owl": "NOUN",
    "eagle": "NOUN",
    "bus": "NOUN",
    "big": "ADJ",
    "small": "ADJ",
    "red": "ADJ",
    "sits": "VERB",
    "runs": "VERB",
    "apple": "NOUN",
}
LEXICON = neg.Lexicon(
    POS,
    pools={"NOUN": ["apple", "bus", "cat", "dog"], "ADJ": ["big", "red", "small"], "VERB": ["runs", "sits"]},
    antonyms={"big": ["small"]},
)
CONCEPTS = pd.DataFrame({"concept": ["owl", "eagle", "bus1"], "name": ["owl", "eagle", "bus"]})
PAIRS = pd.DataFrame({"concept": ["owl", "eagle", "bus1"], "hypernym": ["bird", "bird", "vehicle"]})
TAXONOMY = neg.taxonomy_from_tables(CONCEPTS, PAIRS)


def _rows(caption: str, seed: int = 0, name: str | None = None) -> dict[str, dict]:
    return {r["type"]: r for r in neg.negatives_for("im1", caption, LEXICON, [TAXONOMY], seed, name)}


def test_relation_swaps_whole_words_only() -> None:
    rows = _rows("the cat category sits on a dog.")
    assert rows["relation"]["negative"] == "the category cat sits on a dog."
    swapped = _rows("a cat near a category of dogs and a dog.")["relation"]["negative"]
    assert swapped == "a category near a cat of dogs and a dog."  # `cat` inside `category` untouched


def test_swap_fixes_articles() -> None:
    assert _rows("a dog near an owl.")["relation"]["negative"] == "an owl near a dog."


def test_caption_without_noun_adjective_or_verb_is_invalid_not_filled() -> None:
    rows = _rows("hello there!")
    assert all(not r["valid"] and r["negative"] == "" and r["reason"] for r in rows.values())
    assert "noun" in rows["relation"]["reason"] and "adjective" in rows["attribute"]["reason"]
    assert "verb" in rows["action"]["reason"] and "taxonomy" in rows["cohyponym"]["reason"]


def test_attribute_prefers_antonym_and_object_action_substitute() -> None:
    rows = _rows("a big dog runs.")
    assert rows["attribute"]["negative"] == "a small dog runs."
    assert rows["action"]["negative"] == "a big dog sits."
    assert rows["object"]["negative"] in {"a big apple runs.", "a big bus runs.", "a big cat runs."}
    assert neg.edit_spans("a dog", neg._with_article(LEXICON.tag("a dog"), 1, "apple")) == "an apple"


def test_taxonomic_types_same_vs_cross_category() -> None:
    rows = _rows("an owl sits.", name="owl")
    assert rows["cohyponym"]["negative"] == "an eagle sits."
    assert rows["cross_category"]["negative"] == "a bus sits."
    assert _rows("two owls.")["cohyponym"]["negative"] == "two eagles."


def test_table_is_seeded_sorted_and_tidy() -> None:
    captions = pd.DataFrame({"image_id": ["b", "a", "a"], "caption": ["a big dog runs.", "a cat sits.", "a cat sits."]})
    one = neg.generate_negatives(captions, LEXICON, [TAXONOMY], 3)
    assert list(one.columns) == neg.COLUMNS and len(one) == 2 * len(neg.TYPES)
    assert list(one["image_id"]) == ["a"] * 6 + ["b"] * 6 and list(one["type"][:6]) == list(neg.TYPES)
    pd.testing.assert_frame_equal(one, neg.generate_negatives(captions, LEXICON, [TAXONOMY], 3))


def _synset(pos: str, name: str, count: int) -> SimpleNamespace:
    lemma = SimpleNamespace(name=lambda: name, count=lambda: count)
    return SimpleNamespace(pos=lambda: pos, lemmas=lambda: [lemma])


def test_wordnet_pos_by_lemma_counts_and_participles() -> None:
    senses = {
        "run": [_synset("n", "run", 1), _synset("v", "run", 9)],
        "sleeping": [_synset("n", "sleeping", 5), _synset("v", "sleep", 0)],
        "red": [_synset("s", "red", 2), _synset("n", "red", 2)],
    }
    wn = SimpleNamespace(synsets=lambda word, pos=None: senses.get(word, []))
    assert neg.wordnet_pos(wn, "run") == "VERB"
    assert neg.wordnet_pos(wn, "sleeping") == "VERB"
    assert neg.wordnet_pos(wn, "red") == "NOUN"  # tie → noun
    assert neg.wordnet_pos(wn, "xyzzy") == "OTHER"
    senses["moped"] = [_synset("n", "moped", 1), _synset("v", "mope", 0), _synset("v", "mope", 0)]
    assert neg.wordnet_pos(wn, "moped") == "NOUN"  # `-ed` goes by the counts: noun 1 + 1, verb 1 + 1: a tie, so noun


def _node(name: str, hypernyms: list = (), hyponyms: list = ()) -> SimpleNamespace:
    return SimpleNamespace(
        name=lambda: name,
        hypernyms=lambda: list(hypernyms),
        hyponyms=lambda: list(hyponyms),
        lemma_names=lambda: [name.split(".")[0]],
    )


def test_wordnet_taxonomy_does_not_depend_on_nltk_hypernym_order() -> None:
    """nltk lists a synset's hypernyms in a per-process order (`cup`: crockery, container or the
    reverse); the taxonomy takes the first by name, so every run makes the same negatives."""
    container = _node("container.n.01", hyponyms=[_node("bag.n.01"), _node("cup.n.01")])
    crockery = _node("crockery.n.01", hyponyms=[_node("cup.n.01"), _node("plate.n.01")])
    taxonomies = []
    for parents in ([crockery, container], [container, crockery]):
        cup = _node("cup.n.01", hypernyms=parents)
        wn = SimpleNamespace(synsets=lambda word, pos=None, cup=cup: [cup] if word == "cup" else [])
        taxonomies.append(neg.taxonomy_from_wordnet(wn, ["cup"]).hypernyms)
    assert taxonomies[0] == taxonomies[1] == {"bag": {"container.n.01"}, "cup": {"container.n.01"}}


def test_taxonomic_plurals_are_inflect_plurals() -> None:
    """A plural object is matched in its irregular plural too, and the replacement takes its own plural
    (the caption's ending appended gave `buses` → `owles`, `owls` → `buss`)."""
    concepts = pd.DataFrame({"concept": ["mouse", "rat", "bus1", "owl"], "name": ["mouse", "rat", "bus", "owl"]})
    pairs = pd.DataFrame({"concept": ["mouse", "rat", "bus1", "owl"], "hypernym": ["rodent", "rodent", "vehicle", "bird"]})
    taxonomy = neg.taxonomy_from_tables(concepts, pairs)
    pos = {**POS, "mice": "NOUN", "rats": "NOUN", "buses": "NOUN", "owls": "NOUN"}
    lexicon = neg.Lexicon(pos, pools=LEXICON.pools, antonyms=LEXICON.antonyms)

    def negative(caption: str, kind: str) -> str:
        rows = {r["type"]: r for r in neg.negatives_for("im1", caption, lexicon, [taxonomy], 0, None)}
        return rows[kind]["negative"]

    assert negative("two mice.", "cohyponym") == "two rats."
    assert negative("two buses.", "cross_category") in {"two mice.", "two rats.", "two owls."}
    assert negative("two owls.", "cross_category") in {"two mice.", "two rats.", "two buses."}
