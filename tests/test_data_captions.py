"""Captions for the caption objective: sources, bad input, deprivation filter, shuffles."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from taxvlm.data.captions import (
    HypernymMentions,
    caption_target,
    english_caption,
    normalize,
    read_captions_file,
    reference_captions,
    train_captions,
)
from taxvlm.data.conditions import Removal, removal
from taxvlm.data.datasets import build_dataset
from taxvlm.data.errors import DataError
from taxvlm.io import read_tsv

from spec_builders import FOLDER_DATASET, section

CONCEPTS = pd.DataFrame(
    [("cat", "cat", "a"), ("owl", "owl", "an"), ("apple_tree", "apple tree", "an"), ("hammer", "hammer", "a")],
    columns=["concept", "name", "article"],
)
PAIRS = pd.DataFrame(
    [("cat", "animal"), ("cat", "mammal"), ("owl", "animal"), ("owl", "bird"), ("apple_tree", "tree"),
     ("hammer", "tool")],
    columns=["concept", "hypernym"],
)
HYPERNYMS = pd.DataFrame(
    [("animal", "animal", "an"), ("bird", "bird", "a"), ("mammal", "mammal", "a"), ("tree", "tree", "a"),
     ("tool", "hand tool", "a")],
    columns=["hypernym", "question_form", "article"],
)
IMAGES = pd.DataFrame(
    [
        (f"{c}/{c}_{i}", c, f"{c}_{i}.png", split)
        for c in CONCEPTS.concept
        for i, split in enumerate(["train", "train", "test"])
    ],
    columns=["image_id", "concept", "path", "split"],
)
OWN = {
    "cat": "a cat, the small mammal.",
    "owl": "an owl, a bird of prey.",
    "apple_tree": "an apple tree in bloom.",  # names `tree` only inside the leaf's own name
    "hammer": "two hammers, hand tools.",  # the question form, plural
}
CAPTIONS = pd.DataFrame(
    [(image, OWN[concept] if image.endswith("_0") else f"{concept} picture.", "file")
     for image, concept in zip(IMAGES.image_id, IMAGES.concept)],
    columns=["image_id", "caption", "source"],
)
IDENTITY = {c: c for c in CONCEPTS.concept}


def _train(removed: Removal, sigma: dict[str, str] = IDENTITY) -> tuple[pd.DataFrame, dict]:
    return train_captions(CAPTIONS, IMAGES, CONCEPTS, PAIRS, HYPERNYMS, sigma, removed)


def test_normalize_strips_the_prompt_and_lowers_the_first_letter() -> None:
    assert normalize("A pineapple.") == "a pineapple."
    assert normalize("  A picture of   A brown  bear. ") == "a brown bear."
    assert normalize("US coins.") == "US coins."  # an acronym keeps its case
    assert caption_target("a pineapple.") == " a pineapple."
    with pytest.raises(DataError, match="empty after the prompt"):
        normalize("A picture of ")


def test_english_caption_is_the_first_line_unless_translated(tmp_path: Path) -> None:
    (tmp_path / "owl.txt").write_text("An owl.\nfr.utf8=Un hibou.\n")
    (tmp_path / "fr.txt").write_text("fr.utf8=Un hibou.\n")
    (tmp_path / "empty.txt").write_text("\nAn owl.\n")
    assert english_caption(tmp_path / "owl.txt") == ("An owl.", None)
    assert english_caption(tmp_path / "fr.txt")[1] == "no English caption: the first line of its .txt is a translation"
    assert english_caption(tmp_path / "empty.txt")[1] == "no English caption: the first line of its .txt is empty"
    assert english_caption(tmp_path / "none.txt")[1] == "no English caption: no caption file none.txt"


def test_captions_file_errors_name_the_offenders(tmp_path: Path) -> None:
    ids = ["cat/cat_0", "cat/cat_1"]
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text("image_id\tcaption\ncat/cat_0\tA cat.\ndog/d1\tA dog.\ndog/d2\tA dog.\n")
    with pytest.raises(DataError, match=r"unknown.tsv: 2 image id\(s\) not in the dataset, e.g. \['dog/d1', 'dog/d2'"):
        read_captions_file(unknown, ids)
    empty = tmp_path / "empty.tsv"
    empty.write_text("image_id\tcaption\ncat/cat_0\tA cat.\ncat/cat_1\t  \n")
    with pytest.raises(DataError, match=r"empty.tsv: empty caption for image id\(s\) \['cat/cat_1'\]"):
        read_captions_file(empty, ids)
    good = tmp_path / "good.tsv"
    good.write_text("image_id\tcaption\ncat/cat_0\tA cat.\ncat/cat_0\tA picture of a sleeping cat.\n")
    assert read_captions_file(good, ids).values.tolist() == [
        ["cat/cat_0", "a cat.", "file"], ["cat/cat_0", "a sleeping cat.", "file"]
    ]


def test_folder_dataset_writes_given_and_template_captions(tmp_path: Path) -> None:
    for concept in ("cat", "owl"):
        (tmp_path / "images" / concept).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (4, 4)).save(tmp_path / "images" / concept / f"{concept}_{i}.png")  # decodable: checked
    (tmp_path / "hyp.tsv").write_text("concept\thypernym\ncat\tanimal\nowl\tanimal\n")
    (tmp_path / "captions.tsv").write_text("image_id\tcaption\nowl/owl_1\tA snowy owl.\n")
    inputs = {"images": tmp_path / "images", "hypernyms": tmp_path / "hyp.tsv", "captions": tmp_path / "captions.tsv"}
    build_dataset(FOLDER_DATASET, section({"seed": 0}, "split"), inputs, tmp_path / "d")
    captions = read_tsv(tmp_path / "d" / "captions.tsv").set_index("image_id")
    assert captions.loc["owl/owl_1"].tolist() == ["a snowy owl.", "file"]
    assert captions.loc["cat/cat_0"].tolist() == ["a cat.", "template"]
    assert len(captions) == 6
    (tmp_path / "bad.tsv").write_text("image_id\tcaption\nowl/owl_9\tA snowy owl.\n")
    with pytest.raises(DataError, match=r"bad.tsv: 1 image id\(s\) not in the dataset, e.g. \['owl/owl_9'\]"):
        bad = {**inputs, "captions": tmp_path / "bad.tsv"}
        build_dataset(FOLDER_DATASET, section({"seed": 0}, "split"), bad, tmp_path / "e")


def test_hypernym_mentions_are_whole_words_plurals_and_forms_outside_the_leaf_name() -> None:
    mentions = HypernymMentions(HYPERNYMS)
    assert mentions.named("two hammers, hand tools.", "hammer", ["tool"]) == ["tool"]  # question form, plural
    assert mentions.named("an apple tree in bloom.", "apple tree", ["tree"]) == []  # inside the leaf's name
    assert mentions.named("an apple tree by a tree.", "apple tree", ["tree"]) == ["tree"]
    assert mentions.named("a toolbox.", "toolbox", ["tool"]) == []  # not a whole word
    assert mentions.named("Animals!", "cat", ["animal", "bird"]) == ["animal"]


def test_no_deprivation_keeps_every_caption() -> None:
    rows, summary = _train(Removal(frozenset()))
    assert sorted(rows.caption[rows.image_id.str.endswith("_0")]) == sorted(OWN.values())
    assert summary["replaced_naming_deprived_hypernym"] == 0 and summary["rows"] == 8
    assert list(rows.columns) == ["row_id", "image_id", "image_concept", "leaf", "caption", "source"]


def test_full_deprivation_leaves_no_hypernym_in_any_caption() -> None:
    rows, summary = _train(removal("full", PAIRS, section({}, "conditions")))
    own = rows.set_index("image_id").caption
    assert own["cat/cat_0"] == "a cat." and own["owl/owl_0"] == "an owl." and own["hammer/hammer_0"] == "a hammer."
    assert own["apple_tree/apple_tree_0"] == "an apple tree in bloom."  # its `tree` is the leaf's own name
    assert summary["replaced_by_hypernym"] == {"bird": 1, "mammal": 1, "tool": 1}
    assert set(rows.source[rows.caption.isin(["a cat.", "an owl.", "a hammer."])]) == {"deprivation_template"}
    mentions = HypernymMentions(HYPERNYMS)
    names = CONCEPTS.set_index("concept").name
    assert not any(mentions.named(c, names[leaf], HYPERNYMS.hypernym) for c, leaf in zip(rows.caption, rows.leaf))


def test_pair_removal_edits_only_that_leafs_captions_for_that_hypernym() -> None:
    removed = Removal(frozenset({("cat", "mammal"), ("owl", "animal")}))
    rows, summary = _train(removed)
    own = rows.set_index("image_id").caption
    assert own["cat/cat_0"] == "a cat."  # names mammal, whose (cat, mammal) pair is gone
    assert own["owl/owl_0"] == "an owl, a bird of prey."  # names bird; only (owl, animal) is gone
    assert summary["replaced_by_hypernym"] == {"mammal": 1}


def test_a_hypernym_losing_every_pair_is_never_named_by_any_leaf() -> None:
    """systematic-style: `bird` loses all its pairs, so even a caption about another leaf may not name it."""
    bird = CAPTIONS.caption.where(CAPTIONS.image_id != "hammer/hammer_0", "a hammer and a bird.")
    captions = CAPTIONS.assign(caption=bird)
    rows, summary = train_captions(
        captions, IMAGES, CONCEPTS, PAIRS, HYPERNYMS, IDENTITY, Removal(frozenset({("owl", "animal"), ("owl", "bird")}))
    )
    assert rows.set_index("image_id").caption["hammer/hammer_0"] == "a hammer."
    assert summary["replaced_by_hypernym"] == {"bird": 2}


def test_captions_travel_with_the_shuffle() -> None:
    sigma = {"cat": "owl", "owl": "cat", "apple_tree": "hammer", "hammer": "apple_tree"}
    rows, _ = _train(Removal(frozenset()), sigma)
    on_owl_images = rows[rows.image_concept == "owl"]
    assert set(on_owl_images.leaf) == {"cat"}
    expected = {"owl/owl_0": OWN["cat"], "owl/owl_1": "cat picture."}
    assert on_owl_images.set_index("image_id").caption.to_dict() == expected
    references = reference_captions(CAPTIONS, IMAGES, sigma).set_index("image_id")
    assert references.loc["owl/owl_2", ["leaf", "caption"]].tolist() == ["cat", "cat picture."]
    assert set(references.index) == set(IMAGES.image_id[IMAGES.split == "test"])
