"""test_null: held-out pairs on images of a leaf in neither hypernym (taxvlm.data.materialize)."""

from __future__ import annotations

import pandas as pd

from taxvlm.data.conditions import Removal
from taxvlm.data.materialize import COLUMNS, NO_NULL_LEAF, condition_summary, condition_tables, null_table
from taxvlm.data.questions import make_questions
from taxvlm.evaluation.decision import pair_id

from spec_builders import section

NAMES = {"cat": "cat", "dog": "dog", "owl": "owl", "crow": "crow", "saw": "saw", "drill": "drill", "yoyo": "yoyo"}
PAIRS = [
    ("cat", "animal"), ("dog", "animal"), ("owl", "animal"), ("owl", "bird"), ("crow", "animal"), ("crow", "bird"),
    ("saw", "tool"), ("drill", "tool"), ("yoyo", "toy"),
]


def _data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    concepts = pd.DataFrame({"concept": list(NAMES), "name": list(NAMES.values()), "article": "a"})
    pairs = pd.DataFrame(PAIRS, columns=["concept", "hypernym"])
    questions = make_questions(concepts, pairs, section({"seed": 0}, "questions"))
    images = pd.DataFrame(
        [(f"{c}/{split}{i}", c, f"{c}/{split}{i}.jpg", split) for c in NAMES for split in ("train", "test") for i in (0, 1)],
        columns=["image_id", "concept", "path", "split"],
    )
    return pairs, questions, images


def _members(pairs: pd.DataFrame) -> dict[str, set[str]]:
    return {h: set(group) for h, group in pairs.groupby("hypernym").concept}


def test_null_rows_are_the_unseen_questions_on_images_outside_both_hypernyms() -> None:
    pairs, questions, images = _data()
    removed = Removal(frozenset(p for p in PAIRS if p[1] != "toy"))
    sigma = {leaf: leaf for leaf in NAMES}
    null, unformed = null_table(questions, images, sigma, removed, pairs, seed=0)
    unseen = condition_tables(questions, images, sigma, removed)["test_unseen"]
    assert list(null.columns) == COLUMNS and null.row_id.is_unique and not unformed
    assert set(null.question_id) == set(unseen.question_id)
    members = _members(pairs)
    null = null.assign(pair=null.question_id.map(pair_id))
    for pair, rows in null.groupby("pair"):
        named = set(rows.asked) | {pair.rsplit(":", 1)[1]}
        assert not set(rows.image_concept) & set().union(*(members[h] for h in named)), pair
        assert rows.image_id.nunique() == 2 and (rows.groupby("image_id").size() == 2).all()  # the pair intact
    assert set(null.image_id) <= set(images.image_id[images.split == "test"])


def test_null_images_follow_the_shuffle() -> None:
    pairs, questions, images = _data()
    removed = Removal(frozenset({("cat", "animal")}))
    identity = {leaf: leaf for leaf in NAMES}
    plain, _ = null_table(questions, images, identity, removed, pairs, seed=0)
    sigma = dict(zip(sorted(NAMES), sorted(NAMES)[1:] + sorted(NAMES)[:1]))
    moved, _ = null_table(questions, images, sigma, removed, pairs, seed=0)
    assert set(moved.image_concept) == {sigma[c] for c in plain.image_concept}


def test_null_leaves_are_seeded() -> None:
    pairs, questions, images = _data()
    removed = Removal(frozenset(PAIRS))
    sigma = {leaf: leaf for leaf in NAMES}
    draws = [null_table(questions, images, sigma, removed, pairs, seed=s)[0] for s in (0, 0, 1, 2, 3)]
    assert draws[0].equals(draws[1])
    assert any(not draws[0].equals(other) for other in draws[2:])


def test_a_pair_without_a_null_leaf_is_listed_not_dropped_silently() -> None:
    """Every leaf is an animal or a tool: the pair (cat, animal) matched with the foil `tool` has no null leaf."""
    names = {"cat": "cat", "dog": "dog", "saw": "saw"}
    concepts = pd.DataFrame({"concept": list(names), "name": list(names.values()), "article": "a"})
    pairs = pd.DataFrame([("cat", "animal"), ("dog", "animal"), ("saw", "tool")], columns=["concept", "hypernym"])
    questions = make_questions(concepts, pairs, section({"seed": 0}, "questions"))
    images = pd.DataFrame([(f"{c}/t", c, f"{c}.jpg", "test") for c in names], columns=["image_id", "concept", "path", "split"])
    removed = Removal(frozenset({("cat", "animal")}))
    null, unformed = null_table(questions, images, {c: c for c in names}, removed, pairs, seed=0)
    assert null.empty
    assert unformed == [{"pair": "cat:hypernym:animal", "reason": NO_NULL_LEAF}]
    tables = {**condition_tables(questions, images, {c: c for c in names}, removed), "test_null": null}
    summary = condition_summary("random50", "original", removed, tables, None, unformed)
    assert summary["null_unformed"] == unformed and summary["counts"]["test_null"]["rows"] == 0
