"""Deprivation conditions and shuffles on the paper's 1,222-leaf / 2,040-pair set (THINGS ids with
generated tiny identical JPEGs: image content is never used here)."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from taxvlm.analysis.metrics import condition_axis
from taxvlm.data import conditions
from taxvlm.data.captions import HypernymMentions
from taxvlm.data.datasets import build_dataset
from taxvlm.data.errors import DataError
from taxvlm.data.materialize import materialize_condition
from taxvlm.data.questions import build_questions
from taxvlm.data.shuffles import shuffle_map
from taxvlm.io import read_json, read_tsv
from taxvlm.settings.dataset import Conditions, Shuffles

from spec_builders import section, things_dataset

THINGSPLUS = Path(__file__).parents[1] / "data/thingsplus"
PAIRS_TSV = THINGSPLUS / "xu2026_leaf_hypernym_pairs.tsv"
FORMS_TSV = THINGSPLUS / "xu2026_hypernym_surface_forms.tsv"
IMAGES_PER_LEAF = 4  # uniform: 3 train / 1 test per leaf
SYSTEMATIC10 = [
    "container", "personal hygiene item", "dessert", "clothing", "furniture", "breakfast food",
    "scientific equipment", "garden tool", "part of car", "sea animal",
]
CONDITIONS_CFG = Conditions.from_config({"seed": 0, "systematic_categories": {10: SYSTEMATIC10}})
SHUFFLES_CFG = Shuffles(seed=0)
CONDITIONS = ["none", "full", "random50", "random50pair", "systematic10"]
SHUFFLES = ["original", "across", "within"]
PAPER_UNSEEN_SHARE = {10: 0.17, 30: 0.48, 50: 0.70, 70: 0.85, 90: 0.96}

pytestmark = pytest.mark.skipif(
    not PAIRS_TSV.is_file(), reason=f"paper pair set not found at {PAIRS_TSV}"
)


def _build_paper_data(root: Path) -> Path:
    """THINGS-kind build of the paper's leaf set with tiny identical JPEGs (decodable: the build checks), plus
    questions."""
    pairs = read_tsv(PAIRS_TSV)
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="JPEG")
    for concept in sorted(set(pairs.concept)):
        folder = root / "images" / concept
        folder.mkdir(parents=True)
        for index in range(IMAGES_PER_LEAF):
            (folder / f"{concept}_{index:02d}.jpg").write_bytes(buffer.getvalue())
    data = root / "data"
    inputs = {
        "images": root / "images", "categories": THINGSPLUS / "category53_longFormat.tsv", "pairs": PAIRS_TSV,
        "hypernym_forms": FORMS_TSV,
    }
    dataset = things_dataset("xu2026")
    build_dataset(dataset, section({"seed": 0}, "split"), inputs, data)
    build_questions(
        data / "concepts.tsv", data / "pairs.tsv", data / "hypernyms.tsv", section({}, "questions"),
        data / "questions.tsv",
    )  # fmt: skip
    return data


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_paper_data(tmp_path_factory.mktemp("paper"))


@pytest.fixture(scope="module")
def materialized(paper: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("conditions")
    for condition in CONDITIONS:
        for shuffle in SHUFFLES:
            materialize_condition(condition, shuffle, paper, CONDITIONS_CFG, SHUFFLES_CFG, out / condition / shuffle)
    return out


def _tables(directory: Path) -> dict[str, pd.DataFrame]:
    return {name: read_tsv(directory / f"{name}.tsv") for name in ("train", "test_seen", "test_unseen", "test_leaf", "val_leaf")}


def test_paper_set_loaded(paper: Path) -> None:
    summary = read_json(paper / "summary.json")
    assert (summary["concepts"], summary["pairs"], summary["hypernyms"]) == (1222, 2040, 53)


def test_paper_leaf_negatives_are_one_to_one(paper_tables) -> None:
    questions, _ = paper_tables
    negatives = questions[(questions.kind == "leaf") & (questions.answer == "No")]
    assert len(negatives) == 1222 and negatives.leaf.is_unique and negatives.asked.is_unique
    assert set(negatives.asked) == set(negatives.leaf) and not (negatives.asked == negatives.leaf).any()


def test_paper_questions_use_the_paper_surface_forms(paper_tables) -> None:
    questions, _ = paper_tables
    hyp = questions[questions.kind == "hypernym"]
    assert set(hyp.asked) == set(read_tsv(PAIRS_TSV).hypernym)
    by_name = hyp.groupby("asked").text.agg(set)
    assert by_name["part of car"] == {"Is there a car part in this image?"}
    assert by_name["clothing"] == {"Is there an item of clothing in this image?"}
    assert by_name["lighting"] == {"Is there a source of light in this image?"}
    assert by_name["women's clothing"] == {"Is there a piece of women's clothing in this image?"}
    assert by_name["animal"] == {"Is there an animal in this image?"}


def test_systematic10_removes_what_the_leaf_rule_implies(paper: Path, materialized: Path) -> None:
    pairs = read_tsv(PAIRS_TSV)
    expected = sorted(set(pairs.concept[pairs.hypernym.isin(SYSTEMATIC10)]))
    summary = read_json(materialized / "systematic10" / "original" / "summary.json")
    assert summary["removed_leaves"] == expected
    assert summary["removed_categories"] == sorted(SYSTEMATIC10)


@pytest.mark.parametrize("pct", [10, 30, 50, 70, 90])
def test_random_draws_max1_floor_per_hypernym(pct: int) -> None:
    pairs = read_tsv(PAIRS_TSV)
    members = pairs.groupby("hypernym").concept.apply(set)
    draws = conditions.random_draws(pairs, pct, seed=0)
    assert set(draws) == set(members.index)
    for hypernym, drawn in draws.items():
        n_h = len(members[hypernym])
        assert len(drawn) == max(1, math.floor(Fraction(pct, 100) * n_h))
        assert set(drawn) <= members[hypernym] and len(set(drawn)) == len(drawn)
    removed = conditions.removal(f"random{pct}", pairs, section({}, "conditions"))
    assert removed.leaves == sorted(set().union(*map(set, draws.values())))


@pytest.mark.parametrize("pct", sorted(PAPER_UNSEEN_SHARE))
def test_unseen_share_matches_the_paper(paper: Path, tmp_path: Path, pct: int) -> None:
    materialize_condition(f"random{pct}", "original", paper, CONDITIONS_CFG, SHUFFLES_CFG, tmp_path)
    share = read_json(tmp_path / "summary.json")["unseen_share"]
    print(f"random{pct}: unseen share {share:.3f} (paper ≈ {PAPER_UNSEEN_SHARE[pct]})")
    assert share == pytest.approx(PAPER_UNSEEN_SHARE[pct], abs=0.03)


@pytest.fixture(scope="module")
def paper_tables(paper: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_tsv(paper / "questions.tsv"), read_tsv(paper / "images.tsv")


@pytest.mark.parametrize("shuffle", SHUFFLES)
@pytest.mark.parametrize("condition", CONDITIONS)
def test_invariants(paper: Path, paper_tables, materialized: Path, condition: str, shuffle: str) -> None:
    tables = _tables(materialized / condition / shuffle)
    questions, images = paper_tables
    sigma = dict(read_tsv(materialized / condition / shuffle / "shuffle_map.tsv").values)
    removed = conditions.removal(condition, read_tsv(paper / "pairs.tsv"), CONDITIONS_CFG)
    per_split = images.groupby(["concept", "split"]).size()

    def expected_rows(selected: pd.DataFrame, split: str) -> int:
        return int(sum(per_split.get((sigma[leaf], split), 0) for leaf in selected.leaf))

    train, hyp = tables["train"], questions[questions.kind == "hypernym"]
    train_hyp = train[train.kind == "hypernym"].merge(questions[["question_id", "target"]], on="question_id")
    assert not any((leaf, target) in removed.pairs for leaf, target in zip(train_hyp.leaf, train_hyp.target))
    if not conditions.parse_condition(condition).pair_level:
        assert not set(train_hyp.leaf) & set(removed.leaves)
    leaf_questions = questions[questions.kind == "leaf"]
    assert (train.kind == "leaf").sum() == expected_rows(leaf_questions, "train")
    assert set(train.question_id[train.kind == "leaf"]) == set(leaf_questions.question_id)
    assert len(tables["test_leaf"]) == expected_rows(leaf_questions, "test")
    assert len(tables["val_leaf"]) == expected_rows(leaf_questions, "val") > 0
    assert (tables["val_leaf"].kind == "leaf").all()
    assert len(tables["test_seen"]) + len(tables["test_unseen"]) == expected_rows(hyp, "test")
    assert (tables["test_unseen"].kind == "hypernym").all() and (tables["test_seen"].kind == "hypernym").all()
    assert (train.image_concept == train.leaf.map(sigma)).all()
    for table in tables.values():
        assert table.row_id.is_unique
    captions = read_tsv(materialized / condition / shuffle / "train_captions.tsv")
    assert sorted(captions.image_id) == sorted(images.image_id[images.split == "train"])  # one template each
    assert (captions.image_concept == captions.leaf.map(sigma)).all() and captions.row_id.is_unique
    if condition == "full":  # no training caption names any hypernym
        names = read_tsv(paper / "concepts.tsv").set_index("concept").name
        hypernyms = read_tsv(paper / "hypernyms.tsv")
        mentions = HypernymMentions(hypernyms)
        assert not any(mentions.named(c, names[s], hypernyms.hypernym) for c, s in zip(captions.caption, captions.leaf))


@pytest.mark.parametrize("shuffle", ["across", "within"])
def test_shuffle_maps_are_derangements(materialized: Path, shuffle: str) -> None:
    frame = read_tsv(materialized / "none" / shuffle / "shuffle_map.tsv")
    assert sorted(frame.leaf) == sorted(frame.image_concept)
    assert not (frame.leaf == frame.image_concept).any()


def test_within_keeps_the_hypernym_set_except_for_folded_singletons(materialized: Path) -> None:
    sets = read_tsv(PAIRS_TSV).groupby("concept").hypernym.apply(frozenset)
    group_size = sets.map(sets.value_counts())
    sigma = read_tsv(materialized / "none" / "within" / "shuffle_map.tsv")
    changed = sigma[[sets[a] != sets[b] for a, b in zip(sigma.leaf, sigma.image_concept)]]
    assert all(group_size[a] == 1 or group_size[b] == 1 for a, b in zip(changed.leaf, changed.image_concept))
    assert len(changed) < 0.25 * len(sigma)


def test_rerun_is_byte_identical(paper: Path, materialized: Path, tmp_path: Path) -> None:
    for condition, shuffle in [("random50", "within"), ("systematic10", "across")]:
        materialize_condition(condition, shuffle, paper, CONDITIONS_CFG, SHUFFLES_CFG, tmp_path / condition)
        for path in sorted((materialized / condition / shuffle).iterdir()):
            assert path.read_bytes() == (tmp_path / condition / path.name).read_bytes(), path.name


def test_rerun_with_another_hash_seed_is_byte_identical(paper: Path, materialized: Path, tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import test_data_conditions as t\n"
        "from taxvlm.data.materialize import materialize_condition\n"
        "data = t._build_paper_data(Path(sys.argv[2]))\n"
        "materialize_condition('random30pair', 'within', data, t.CONDITIONS_CFG, t.SHUFFLES_CFG, Path(sys.argv[2]) / 'c')\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent), str(tmp_path)], env=env, check=True)
    for name in ("concepts.tsv", "pairs.tsv", "images.tsv", "questions.tsv", "summary.json"):
        assert (paper / name).read_bytes() == (tmp_path / "data" / name).read_bytes().replace(
            str(tmp_path).encode(), str(paper.parent).encode()
        ), name
    materialize_condition("random30pair", "within", paper, CONDITIONS_CFG, SHUFFLES_CFG, tmp_path / "here")
    for path in sorted((tmp_path / "c").iterdir()):
        assert path.read_bytes() == (tmp_path / "here" / path.name).read_bytes(), path.name


@pytest.mark.parametrize(
    ("name", "parsed", "axis"),
    [
        ("none", conditions.Condition("none"), ("none", 0.0)),
        ("full", conditions.Condition("full"), ("full", 100.0)),
        ("random30", conditions.Condition("random", 30), ("random", 30.0)),
        ("random70pair", conditions.Condition("random", 70, True), ("randompair", 70.0)),
        ("systematic10", conditions.Condition("systematic", 10), ("systematic", 100 * 10 / 53)),
    ],
)
def test_condition_names_parse_and_place_on_the_deprivation_axis(
    name: str, parsed: conditions.Condition, axis: tuple[str, float]
) -> None:
    """The one parser behind the removal sets and the figures' x-axis (100·N/53 for systematic N)."""
    assert conditions.parse_condition(name) == parsed
    family, pct = condition_axis(name, 53)
    assert family == axis[0] and pct == pytest.approx(axis[1])


def test_ratio_outside_unit_interval_is_an_error() -> None:
    with pytest.raises(DataError, match=r"ratio 1.5 is outside \[0, 1\]"):
        conditions.parse_condition("random150")


@pytest.mark.parametrize("name", ["random", "sometimes", "systematic", "random50leaf", "randomish"])
def test_unknown_condition_is_an_error(name: str) -> None:
    with pytest.raises(DataError, match="unknown"):
        conditions.parse_condition(name)
    with pytest.raises(DataError, match="unknown"):
        condition_axis(name, 53)


def test_bad_condition_and_shuffle_names(paper: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="shuffle 'sideways'"):
        shuffle_map("sideways", read_tsv(paper / "pairs.tsv"), SHUFFLES_CFG)
    with pytest.raises(DataError, match="unknown hypernym"):
        materialize_condition("systematic2", "original", paper, Conditions.from_config({"seed": 0, "systematic_categories": {"2": ["dessert", "robot"]}}),
                              SHUFFLES_CFG, tmp_path)
    with pytest.raises(DataError, match="outside"):
        materialize_condition("random101", "original", paper, CONDITIONS_CFG, SHUFFLES_CFG, tmp_path)
