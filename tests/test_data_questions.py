"""Questions: one-to-one leaf negatives and hypernym question forms (docs/protocol.md §5)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from taxvlm.data.datasets import hypernyms_frame
from taxvlm.data.errors import DataError
from taxvlm.data.questions import build_questions, make_questions
from taxvlm.evaluation.decision import decide, pair_id
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


# The foils the draw before `foil_balance` existed gave the fixture at seed 0 (`uniform` keeps it).
UNIFORM_FOILS_SEED0 = {
    "bat1:hypernym:animal:No": "bird", "bat2:hypernym:sports equipment:No": "animal",
    "bat3:hypernym:animal:No": "fish", "bat4:hypernym:sports equipment:No": "part of car",
    "car_door:hypernym:part of car:No": "fish", "fish:hypernym:animal:No": "sports equipment",
    "owl:hypernym:animal:No": "fish", "owl:hypernym:bird:No": "sports equipment",
    "salmon:hypernym:animal:No": "sports equipment", "salmon:hypernym:fish:No": "part of car",
}


def _foils(questions: pd.DataFrame) -> pd.DataFrame:
    return questions[(questions.kind == "hypernym") & (questions.answer == "No")]


def _foil_minus_positive(questions: pd.DataFrame) -> pd.Series:
    """Per hypernym: times it is a foil minus times it is a positive."""
    hypernym_rows = questions[questions.kind == "hypernym"]
    counts = hypernym_rows.groupby(["asked", "answer"]).size().unstack(fill_value=0)
    return counts.get("No", 0) - counts.get("Yes", 0)


def _skewed_taxonomy() -> tuple[pd.DataFrame, pd.DataFrame]:
    """60 leaves under hypernyms of very different sizes (h0: 24 leaves ... h5: 2), some leaves in two:
    uniform foils make the big ones mostly positives."""
    names = {f"leaf{i:02d}": f"thing{i:02d}" for i in range(60)}
    sizes = {"h0": 24, "h1": 14, "h2": 10, "h3": 6, "h4": 4, "h5": 2}
    pairs, start = [], 0
    for hypernym, size in sizes.items():
        pairs += [(f"leaf{(start + i) % 60:02d}", hypernym) for i in range(size)]
        start += size
    pairs += [(f"leaf{i:02d}", "h6") for i in range(50, 60)]  # leaves 50-59 are in h6 and one other
    return _taxonomy(names, pairs)


@pytest.mark.parametrize("seed", range(3))
def test_uniform_foils_are_the_draw_of_before(seed: int) -> None:
    concepts, pairs = _taxonomy()
    hypernyms = hypernyms_frame(sorted(set(pairs.hypernym)), FORMS)
    uniform = make_questions(concepts, pairs, section({"seed": seed, "foil_balance": "uniform"}, "questions"), hypernyms)
    if seed == 0:
        foils = _foils(uniform)
        assert dict(zip(foils.question_id, foils.asked)) == UNIFORM_FOILS_SEED0
    assert uniform.question_id.is_monotonic_increasing and uniform.question_id.is_unique


def test_balanced_foils_match_each_hypernyms_positive_count() -> None:
    concepts, pairs = _skewed_taxonomy()
    uniform = make_questions(concepts, pairs, section({"seed": 0, "foil_balance": "uniform"}, "questions"))
    assert _foil_minus_positive(uniform)["h0"] < -10  # the prior the balanced draw removes
    balanced = make_questions(concepts, pairs, section({"seed": 0}, "questions"))
    assert (_foil_minus_positive(balanced) == 0).all()
    assert set(balanced.question_id.str.rpartition(":")[0]) == set(uniform.question_id.str.rpartition(":")[0])


def test_balanced_foils_give_every_pair_a_foil_when_balance_is_impossible() -> None:
    """Three leaves under `animal` and one under `tool`: `animal` can be a foil only once, `tool` thrice."""
    names = {"cat": "cat", "dog": "dog", "owl": "owl", "saw": "saw"}
    pairs = [("cat", "animal"), ("dog", "animal"), ("owl", "animal"), ("saw", "tool")]
    questions = make_questions(*_taxonomy(names, pairs), section({"seed": 0}, "questions"))
    assert len(_foils(questions)) == 4
    assert _foil_minus_positive(questions).to_dict() == {"animal": -2, "tool": 2}


@pytest.mark.parametrize("balance", ["balanced", "uniform"])
@pytest.mark.parametrize("seed", range(4))
def test_foils_are_never_true_of_the_leaf_nor_repeated(balance: str, seed: int) -> None:
    concepts, pairs = _taxonomy()
    hypernyms = hypernyms_frame(sorted(set(pairs.hypernym)), FORMS)
    questions = make_questions(concepts, pairs, section({"seed": seed, "foil_balance": balance}, "questions"), hypernyms)
    of_leaf = pairs.groupby("concept").hypernym.apply(set)
    foils = _foils(questions)
    for leaf, asked in foils.groupby("leaf").asked:
        true = {LEAF_NAMES[leaf], *of_leaf[leaf], *(FORMS.get(h, h) for h in of_leaf[leaf])}
        assert asked.is_unique and true.isdisjoint(asked) and true.isdisjoint(asked.map(lambda h: FORMS.get(h, h)))
    assert len(foils) == len(pairs)  # every leaf of the fixture has a candidate for each positive


def test_balanced_foils_are_seeded() -> None:
    concepts, pairs = _skewed_taxonomy()
    draw = {s: _foils(make_questions(concepts, pairs, section({"seed": s}, "questions"))).asked.tolist() for s in range(3)}
    assert draw[0] == _foils(make_questions(concepts, pairs, section({"seed": 0}, "questions"))).asked.tolist()
    assert draw[0] != draw[1] and draw[1] != draw[2]


def _prior_only_paired_accuracy(questions: pd.DataFrame, pairs: pd.DataFrame) -> float:
    """Paired-rule accuracy of a model whose margin on every image is its no-image prior, here a
    hypernym's category size: the frame of predictions.tsv built by hand, one image per leaf."""
    rows = questions[questions.kind == "hypernym"]
    size = pairs.hypernym.value_counts()
    frame = pd.DataFrame({
        "test_set": "unseen", "image_id": rows.leaf, "pair": rows.question_id.map(pair_id),
        "margin": rows.asked.map(size).astype(float), "margin_noimage": rows.asked.map(size).astype(float),
    })
    return float((decide(frame).prediction_paired == rows.answer).mean())


def test_balanced_foils_leave_a_prior_only_scorer_at_chance() -> None:
    """Two 2-leaf categories and a 1-leaf one. At seed 38 the uniform draw gives all four big-category
    leaves the small foil `toy`, which a size prior always beats (4 of 5 pairs right); balanced foils make
    `animal` and `tool` foils twice each, so the prior wins 1 pair, loses 1 (yoyo's) and ties 3 (half right
    each: a tie gives No to both)."""
    names = {"cat": "cat", "dog": "dog", "hammer": "hammer", "saw": "saw", "yoyo": "yoyo"}
    pairs = [("cat", "animal"), ("dog", "animal"), ("hammer", "tool"), ("saw", "tool"), ("yoyo", "toy")]
    concepts, pair_frame = _taxonomy(names, pairs)
    uniform = make_questions(concepts, pair_frame, section({"seed": 38, "foil_balance": "uniform"}, "questions"))
    assert set(_foils(uniform).asked[_foils(uniform).leaf != "yoyo"]) == {"toy"}
    assert _prior_only_paired_accuracy(uniform, pair_frame) == pytest.approx(0.8)
    for seed in range(5):
        balanced = make_questions(concepts, pair_frame, section({"seed": seed}, "questions"))
        assert _prior_only_paired_accuracy(balanced, pair_frame) == pytest.approx(0.5)
