"""Lexicon articles, split rounding and question generation (condition names: test_data_conditions.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from taxvlm.data import lexicon, splits
from taxvlm.data.errors import DataError
from taxvlm.grid import ConfigError
from taxvlm.data.questions import make_questions
from taxvlm.settings.dataset import Split
from taxvlm.settings.schema import fill_defaults

from spec_builders import section


FRACTIONS = fill_defaults({}, "split")["fractions"]  # 70/5/25


@pytest.mark.parametrize(
    ("name", "article"),
    [
        ("owl", "an"), ("bat", "a"), ("umbrella", "an"), ("unicorn", "a"), ("hourglass", "an"),
        ("food", ""), ("scissors", ""), ("french fries", ""), ("bus", "a"), ("walrus", "a"),
        ("glass", "a"), ("musical instrument", "a"), ("electronic device", "an"), ("home decor", ""),
        ("item of clothing", "an"), ("piece of women's clothing", "a"), ("pair of scissors", "a"),
        ("source of light", "a"), ("car part", "a"),
    ],
)
def test_indefinite_article(name: str, article: str) -> None:
    assert lexicon.indefinite_article(name) == article


@pytest.mark.parametrize(
    ("leaf", "hypernym", "form", "flagged"),
    [
        ("blackbird", "bird", "bird", True),
        ("lionfish", "sea animal", "sea animal", False),
        ("lionfish", "fish", "fish", True),
        ("Nut Tree", "tree", "tree", True),
        ("seafood", "food", "food", True),
        ("car door", "part of car", "car part", True),  # a word of the name (`car`)
        ("sandpaper", "arts and crafts supply", "arts and crafts supply", False),  # `and` is ignored
        ("ox", "farm animal", "farm animal", False),
        ("owl", "bird", "bird", False),
    ],
)
def test_lexical_overlap(leaf: str, hypernym: str, form: str, flagged: bool) -> None:
    assert lexicon.lexical_overlap(leaf, hypernym, form) is flagged


def test_question_text_has_no_double_space() -> None:
    template = "Is there {article} {name} in this image?"
    assert lexicon.question_text(template, "", "food") == "Is there food in this image?"
    assert lexicon.question_text(template, "an", "owl") == "Is there an owl in this image?"


@pytest.mark.parametrize(
    ("n", "expected"),
    [(12, (8, 1, 3)), (2, (1, 0, 1)), (3, (1, 1, 1)), (4, (2, 1, 1)), (8, (5, 1, 2)), (20, (14, 1, 5))],
)
def test_split_counts_largest_remainder_with_one_val_image(n: int, expected: tuple[int, int, int]) -> None:
    counts = splits.split_counts(n, FRACTIONS)
    assert (counts["train"], counts["val"], counts["test"]) == expected


def test_split_minimum_leaves_large_concepts_and_unused_splits_alone() -> None:
    """THINGS concepts (n ≥ 12) keep the plain apportionment; a split with fraction 0 stays empty."""
    for n in range(12, 200):
        counts = splits.split_counts(n, FRACTIONS)
        assert sum(counts.values()) == n and counts["val"] >= 1
        assert all(abs(counts[name] - n * f) < 1 for name, f in FRACTIONS.items()), n
    assert splits.split_counts(4, {"train": 0.75, "val": 0.0, "test": 0.25}) == {"train": 3, "val": 0, "test": 1}


def test_split_is_seeded_and_ignores_listing_order() -> None:
    names = [f"img_{i:02d}" for i in range(12)]
    first = splits.assign_splits("owl", names, FRACTIONS, seed=3)
    assert first == splits.assign_splits("owl", names[::-1], FRACTIONS, seed=3)
    assert sorted(first.values()).count("test") == 3


@pytest.mark.parametrize(
    "fractions, message",
    [
        ({"train": 1.2, "val": 0.0, "test": -0.2}, r"config\.split\.fractions\.train: Input should be less than or equal to 1"),
        ({"train": 0.5}, r"split\.fractions must sum to 1"),
    ],
)
def test_bad_fractions_are_named(fractions: dict, message: str) -> None:
    with pytest.raises((DataError, ConfigError), match=message):
        splits.fractions_from(Split.from_config({"fractions": fractions}, "config.split"))


def _toy_taxonomy() -> tuple[pd.DataFrame, pd.DataFrame]:
    concepts = pd.DataFrame(
        {"concept": ["fish", "owl", "salmon", "shovel"], "name": ["fish", "owl", "salmon", "shovel"],
         "article": ["a", "an", "a", "a"]}
    )
    pairs = pd.DataFrame(
        {"concept": ["fish", "owl", "owl", "salmon", "salmon", "shovel"],
         "hypernym": ["animal", "animal", "bird", "animal", "fish", "tool"]}
    )
    return concepts, pairs


def test_questions_are_balanced_and_negatives_are_never_true() -> None:
    concepts, pairs = _toy_taxonomy()
    questions = make_questions(concepts, pairs, section({"seed": 0}, "questions"))
    names = dict(zip(concepts.concept, concepts.name))
    hypernyms = pairs.groupby("concept").hypernym.apply(set)
    for row in questions[questions.answer == "No"].itertuples():
        asked_name = names.get(row.asked, row.asked) if row.kind == "leaf" else row.asked
        assert asked_name not in hypernyms[row.leaf] | {names[row.leaf]}
    hyp = questions[questions.kind == "hypernym"]
    assert (hyp.answer == "Yes").sum() == len(pairs)
    leaf = questions[questions.kind == "leaf"]
    assert sorted(leaf.groupby("leaf").size()) == [2] * len(concepts)
    assert questions.question_id.is_unique
    assert "Is there an animal in this image?" in set(hyp.text)
