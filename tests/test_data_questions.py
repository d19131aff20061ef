"""Questions: one-to-one leaf negatives and hypernym question forms (docs/protocol.md §5)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from taxvlm.data.datasets import hypernyms_frame
from taxvlm.data.errors import DataError
from taxvlm.data.questions import build_questions, make_questions
from taxvlm.io import read_tsv, write_tsv

from spec_builders import section

LEAF_NAMES = {
    "bat1": "bat", "bat2": "bat", "bat3": "bat", "bat4": "bat",
    "fish": "fish", "salmon": "salmon", "owl": "owl", "car_door": "door",
}
PAIRS = [
    ("bat1", "animal"), ("bat2", "sports equipment"), ("bat3", "animal"), ("bat4", "sports equipment"),
    ("fish", "animal"), ("salmon", "animal"), ("salmon", "fish"), ("owl", "animal"), ("owl", "bird"),
    ("car_door", "part of car"),
]
FORMS = {"part of car": "car part", "sports equipment": "piece of sports equipment"}


def _taxonomy(names: dict[str, str] = LEAF_NAMES, pairs: list[tuple[str, str]] = PAIRS):
    concepts = pd.DataFrame({"concept": list(names), "name": list(names.values()), "article": "a"})
    return concepts, pd.DataFrame(pairs, columns=["concept", "hypernym"])


def _negatives(questions: pd.DataFrame) -> dict[str, str]:
    rows = questions[(questions.kind == "leaf") & (questions.answer == "No")]
    return dict(zip(rows.leaf, rows.asked))


@pytest.mark.parametrize("seed", range(8))
def test_leaf_negatives_are_one_to_one_and_never_true(seed: int) -> None:
    """Four leaves share the name `bat`, so a random permutation is almost never allowed: the
    repair must send the bats to the other four leaves and those back to the bats."""
    concepts, pairs = _taxonomy()
    questions = make_questions(concepts, pairs, section({"seed": seed}, "questions"))
    negatives = _negatives(questions)
    assert sorted(negatives) == sorted(LEAF_NAMES)
    assert Counter(negatives.values()) == Counter(list(LEAF_NAMES))  # every leaf a negative exactly once
    hypernyms = pairs.groupby("concept").hypernym.apply(set)
    for leaf, other in negatives.items():
        true = {LEAF_NAMES[leaf], *hypernyms[leaf], *(FORMS.get(h, h) for h in hypernyms[leaf])}
        assert other != leaf and LEAF_NAMES[other] not in true, (leaf, other)
    assert negatives["salmon"] != "fish"  # `fish` is a hypernym of salmon
    assert {LEAF_NAMES[negatives[b]] for b in ("bat1", "bat2", "bat3", "bat4")}.isdisjoint({"bat"})


def test_leaf_negatives_are_seeded() -> None:
    concepts, pairs = _taxonomy()
    first = _negatives(make_questions(concepts, pairs, section({"seed": 3}, "questions")))
    assert first == _negatives(make_questions(concepts, pairs, section({"seed": 3}, "questions")))
    many = {tuple(sorted(_negatives(make_questions(concepts, pairs, section({"seed": s}, "questions"))).items())) for s in range(10)}
    assert len(many) > 1


def test_every_leaf_name_is_asked_with_both_answers_on_a_larger_taxonomy() -> None:
    """The old per-leaf draw left leaves that were nobody's negative (their question always Yes)."""
    names = {f"leaf{i:02d}": f"thing{i:02d}" for i in range(60)}
    pairs = [(leaf, f"h{i % 7}") for i, leaf in enumerate(names)]
    questions = make_questions(*_taxonomy(names, pairs), section({"seed": 0}, "questions"))
    leaf_rows = questions[questions.kind == "leaf"]
    answers = leaf_rows.groupby("text").answer.apply(lambda a: sorted(a))
    assert (answers.map(len) == 2).all() and answers.map(set).eq({"Yes", "No"}).all()


@pytest.mark.parametrize(
    "names",
    [{"bat1": "bat", "bat2": "bat", "bat3": "bat"}, {"owl": "owl"}],
)
def test_impossible_leaf_negatives_are_an_error(names: dict[str, str]) -> None:
    pairs = [(leaf, "animal") for leaf in names]
    with pytest.raises(DataError, match="leaf negatives: no one-to-one assignment"):
        make_questions(*_taxonomy(names, pairs), section({"seed": 0}, "questions"))


def test_hypernyms_are_asked_by_question_form_and_reported_by_name() -> None:
    concepts, pairs = _taxonomy()
    hypernyms = hypernyms_frame(sorted(set(pairs.hypernym)), FORMS)
    questions = make_questions(concepts, pairs, section({"seed": 0}, "questions"), hypernyms)
    door = questions[(questions.leaf == "car_door") & (questions.answer == "Yes") & (questions.kind == "hypernym")]
    assert door.text.tolist() == ["Is there a car part in this image?"]
    assert door.asked.tolist() == ["part of car"] and door.target.tolist() == ["part of car"]
    assert door.question_id.tolist() == ["car_door:hypernym:part of car:Yes"]
    hyp = questions[questions.kind == "hypernym"]
    assert set(hyp.asked) <= set(pairs.hypernym)
    assert not hyp.text.str.contains("part of car").any()
    asked_as_sports = hyp.text[hyp.asked == "sports equipment"]
    assert set(asked_as_sports) == {"Is there a piece of sports equipment in this image?"}


def test_negative_hypernym_is_never_true_by_its_question_form() -> None:
    """A leaf named like another hypernym's question form is never asked about that hypernym."""
    names = {"door": "car part", "owl": "owl", "bat": "bat"}
    pairs = [("door", "vehicle"), ("owl", "animal"), ("bat", "animal"), ("bat", "part of car")]
    questions = make_questions(*_taxonomy(names, pairs), section({"seed": 0}, "questions"), hypernyms_frame(
        ["animal", "part of car", "vehicle"], {"part of car": "car part"}
    ))
    door_negatives = questions.asked[(questions.leaf == "door") & (questions.answer == "No")]
    assert "part of car" not in set(door_negatives)


def test_build_questions_reads_the_hypernyms_table(tmp_path: Path) -> None:
    concepts, pairs = _taxonomy()
    write_tsv(concepts, tmp_path / "concepts.tsv")
    write_tsv(pairs, tmp_path / "pairs.tsv")
    write_tsv(hypernyms_frame(sorted(set(pairs.hypernym)), {"part of car": "car part"}), tmp_path / "h.tsv")
    build_questions(tmp_path / "concepts.tsv", tmp_path / "pairs.tsv", tmp_path / "h.tsv", section({}, "questions"), tmp_path / "q.tsv")
    assert "Is there a car part in this image?" in set(read_tsv(tmp_path / "q.tsv").text)
    write_tsv(hypernyms_frame(["animal"], {}), tmp_path / "short.tsv")
    with pytest.raises(DataError, match="no question form for hypernym"):
        build_questions(tmp_path / "concepts.tsv", tmp_path / "pairs.tsv", tmp_path / "short.tsv", section({}, "questions"), tmp_path / "q")
