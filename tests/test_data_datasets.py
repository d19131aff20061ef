"""Dataset readers on tiny generated fixtures: folder, things, tuxpaint (with a fake WordNet)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from taxvlm.data.datasets import build_dataset, rule_targets
from taxvlm.data.errors import DataError, MissingDataError
from taxvlm.io import read_json, read_tsv
from taxvlm.settings.dataset import TargetRule

from spec_builders import FOLDER_DATASET, section, things_dataset

SPLIT = section({"seed": 0}, "split")


def _png(path: Path, colour: tuple[int, ...] = (200, 30, 30), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (8, 8), colour).save(path)


def _image_tree(root: Path, counts: dict[str, int]) -> None:
    for concept, n in counts.items():
        for index in range(n):
            _png(root / concept / f"{concept}_{index:02d}.png")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- folder


@pytest.fixture
def folder_inputs(tmp_path: Path) -> dict[str, Path]:
    _image_tree(tmp_path / "images", {"owl": 4, "hammer": 4, "bat1": 4, "lonely": 1, "stray": 4})
    tsv = _write(
        tmp_path / "hypernyms.tsv",
        "concept\thypernym\tarticle\nowl\tanimal\t\nowl\tbird\t\nhammer\ttool\t\n"
        "bat1\tanimal\t\nlonely\ttool\tnone\n",
    )
    return {"images": tmp_path / "images", "hypernyms": tsv}


def test_folder_dataset_tables(folder_inputs: dict[str, Path], tmp_path: Path, caplog) -> None:
    out = tmp_path / "data"
    with caplog.at_level(logging.WARNING):
        build_dataset(FOLDER_DATASET, SPLIT, folder_inputs, out)
    concepts = read_tsv(out / "concepts.tsv")
    assert list(concepts.columns) == ["concept", "name", "article"]
    assert dict(zip(concepts.concept, concepts.name)) == {"bat1": "bat", "hammer": "hammer", "owl": "owl"}
    assert dict(zip(concepts.concept, concepts.article))["owl"] == "an"
    images = read_tsv(out / "images.tsv")
    assert list(images.columns) == ["image_id", "concept", "path", "split"]
    assert images.groupby("concept").split.apply(sorted).to_dict()["owl"] == ["test", "train", "train", "val"]
    pairs = read_tsv(out / "pairs.tsv")
    assert list(pairs.columns) == ["concept", "hypernym", "lexical_overlap"]
    assert set(pairs.lexical_overlap) == {"False"}
    summary = read_json(out / "summary.json")
    assert summary["excluded"] == {"lonely": "too few images (1 < 2 or no train/test image)", "stray": "no hypernym"}
    assert summary["excluded_too_few_images"] == 1
    assert "lonely" in caplog.text


def test_folder_article_override(tmp_path: Path) -> None:
    _image_tree(tmp_path / "images", {"jeans": 2, "umbrella": 2})
    tsv = _write(tmp_path / "h.tsv", "concept\thypernym\tarticle\njeans\tclothing\tnone\numbrella\ttool\ta\n")
    build_dataset(FOLDER_DATASET, SPLIT, {"images": tmp_path / "images", "hypernyms": tsv}, tmp_path / "d")
    articles = read_tsv(tmp_path / "d" / "concepts.tsv").set_index("concept").article
    assert articles.to_dict() == {"jeans": "", "umbrella": "a"}


def test_folder_question_forms(tmp_path: Path) -> None:
    _image_tree(tmp_path / "images", {"shirt": 2, "sock": 2, "owl": 2})
    tsv = _write(
        tmp_path / "h.tsv",
        "concept\thypernym\tquestion_form\nshirt\tclothing\titem of clothing\nsock\tclothing\t\n"
        "owl\tanimal\t\n",
    )
    build_dataset(FOLDER_DATASET, SPLIT, {"images": tmp_path / "images", "hypernyms": tsv}, tmp_path / "d")
    hypernyms = read_tsv(tmp_path / "d" / "hypernyms.tsv")
    assert hypernyms.values.tolist() == [["animal", "animal", "an"], ["clothing", "item of clothing", "an"]]
    bad = _write(
        tmp_path / "bad.tsv", "concept\thypernym\tquestion_form\nshirt\tclothing\ttop\nsock\tclothing\tgarment\n"
    )
    with pytest.raises(DataError, match=r"bad.tsv: conflicting question_form values \{'clothing'"):
        build_dataset(FOLDER_DATASET, SPLIT, {"images": tmp_path / "images", "hypernyms": bad}, tmp_path / "e")


def test_missing_column_is_named(folder_inputs: dict[str, Path], tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.tsv", "concept\tcategory\nowl\tanimal\n")
    with pytest.raises(DataError, match=r"bad.tsv: missing column\(s\) \['hypernym'\]"):
        build_dataset(FOLDER_DATASET, SPLIT, {**folder_inputs, "hypernyms": bad}, tmp_path / "d")


def test_concept_folder_without_images_is_named(folder_inputs: dict[str, Path], tmp_path: Path) -> None:
    (folder_inputs["images"] / "empty").mkdir()
    (folder_inputs["images"] / "empty" / "notes.txt").write_text("not an image")
    tsv = _write(tmp_path / "h.tsv", "concept\thypernym\nowl\tanimal\nempty\ttool\n")
    with pytest.raises(MissingDataError, match="concept folder has no images: .*empty"):
        build_dataset(FOLDER_DATASET, SPLIT, {**folder_inputs, "hypernyms": tsv}, tmp_path / "d")


# --------------------------------------------------------------------------- things


def test_things_leaf_sets(tmp_path: Path) -> None:
    _image_tree(tmp_path / "images", {"bat1": 4, "bat2": 4, "owl": 4, "bandanna": 4})
    categories = _write(
        tmp_path / "cat.tsv",
        "category\tuniqueID\tWord\nanimal\tbat1\tbat\nsports equipment\tbat2\tbat\n"
        "animal\towl\towl\nbird\towl\towl\n",
    )
    pairs = _write(tmp_path / "pairs.tsv", "concept\thypernym\nowl\tbird\nbandanna\tclothing\n")
    inputs = {"images": tmp_path / "images", "categories": categories, "pairs": pairs}
    build_dataset(things_dataset("all"), SPLIT, inputs, tmp_path / "all")
    assert len(read_tsv(tmp_path / "all" / "pairs.tsv")) == 4
    assert set(read_tsv(tmp_path / "all" / "concepts.tsv").name) == {"bat", "owl"}
    build_dataset(things_dataset("xu2026"), SPLIT, inputs, tmp_path / "xu")
    concepts = read_tsv(tmp_path / "xu" / "concepts.tsv")
    assert dict(zip(concepts.concept, concepts.name)) == {"bandanna": "bandanna", "owl": "owl"}
    hypernyms = read_tsv(tmp_path / "xu" / "hypernyms.tsv")
    assert hypernyms.values.tolist() == [["bird", "bird", "a"], ["clothing", "clothing", ""]]


def test_things_hypernym_forms(tmp_path: Path) -> None:
    _image_tree(tmp_path / "images", {"bandanna": 4, "car_door": 4})
    categories = _write(
        tmp_path / "cat.tsv",
        "category\tuniqueID\tWord\nclothing\tbandanna\tbandanna\npart of car\tcar_door\tcar door\n",
    )
    forms = _write(
        tmp_path / "forms.tsv", "hypernym\tquestion_form\nclothing\titem of clothing\npart of car\tcar part\n"
    )
    inputs = {"images": tmp_path / "images", "categories": categories, "hypernym_forms": forms}
    build_dataset(things_dataset("all"), SPLIT, inputs, tmp_path / "d")
    hypernyms = read_tsv(tmp_path / "d" / "hypernyms.tsv")
    assert hypernyms.values.tolist() == [["clothing", "item of clothing", "an"], ["part of car", "car part", "a"]]
    assert set(read_tsv(tmp_path / "d" / "pairs.tsv").hypernym) == {"clothing", "part of car"}
    typo = _write(tmp_path / "typo.tsv", "hypernym\tquestion_form\npart of a car\tcar part\n")
    with pytest.raises(DataError, match=r"typo.tsv: question_form for hypernym\(s\) not in the taxonomy"):
        build_dataset(
            things_dataset("all"), SPLIT,
            {**inputs, "hypernym_forms": typo}, tmp_path / "e",
        )  # fmt: skip


# --------------------------------------------------------------------------- tuxpaint


class FakeSynset:
    def __init__(self, name: str, parent: FakeSynset | None = None, lemmas: list[str] | None = None) -> None:
        self._name, self._parent = name, parent
        self._lemmas = lemmas or [name.split(".")[0]]

    def name(self) -> str:
        return self._name

    def lemma_names(self) -> list[str]:
        return self._lemmas

    def hypernym_paths(self) -> list[list[FakeSynset]]:
        return [[*self._parent.hypernym_paths()[0], self]] if self._parent else [[self]]

    def min_depth(self) -> int:
        return len(self.hypernym_paths()[0]) - 1

    def lemmas(self) -> list[FakeLemma]:
        return [FakeLemma(self._count)]

    _count = 10  # SemCor tag count of the first lemma (a familiar word unless a test says otherwise)


class FakeLemma:
    def __init__(self, count: int) -> None:
        self._count = count

    def count(self) -> int:
        return self._count


class FakeWordNet:
    """`tiger` has a first sense that is a person, like the real WordNet."""

    def __init__(self) -> None:
        entity = FakeSynset("entity.n.01")
        animal = FakeSynset("animal.n.01", entity)
        person = FakeSynset("person.n.01", entity)
        bird = FakeSynset("bird.n.01", animal)
        tool = FakeSynset("tool.n.01", entity)
        instrument = FakeSynset("musical_instrument.n.01", entity)
        self.index = {
            "entity": [entity], "animal": [animal], "person": [person], "bird": [bird], "tool": [tool],
            "musical_instrument": [instrument],
            "owl": [FakeSynset("owl.n.01", bird)],
            "tiger": [FakeSynset("tiger.n.01", person), FakeSynset("tiger.n.02", animal)],
            "pliers": [FakeSynset("pliers.n.01", tool)],
            "violin": [FakeSynset("violin.n.01", instrument)],
            "rock": [FakeSynset("rock.n.01", entity)],
        }

    def synsets(self, lemma: str, pos: str) -> list[FakeSynset]:
        return (self.index.get(lemma) or self.index.get(self.morphy(lemma, pos), [])) if pos == "n" else []

    def morphy(self, form: str, pos: str) -> str:
        """A crude lemmatiser: known forms stay, a final `s` goes."""
        return form if form in self.index else form.removesuffix("s")


@pytest.fixture
def stamps(tmp_path: Path) -> Path:
    root = tmp_path / "stamps"
    for relative, caption in {
        "animals/birds/owl.png": "An owl.",
        "animals/mammals/cats/tiger_sumatran.png": "A Sumatran tiger.",
        "household/tools/plyers.png": "A pair of pliers.",
        "hobbies/music/violin.png": "A violin.",
        "naturalforces/stone.png": "A rock.",
        "cartoon/owl.png": "A cartoon owl.",
        "animals/birds/blorp.png": "",  # no .txt at all
        "animals/birds/glorp.png": "A glorp.",  # a caption without a WordNet noun
        "animals/birds/frowl.png": "fr.utf8=Un hibou.",  # only translated lines
    }.items():
        _png(root / relative, (10, 120, 10, 255), mode="RGBA")
        if caption:
            _write((root / relative).with_suffix(".txt"), f"{caption}\nfr.utf8=...\n")
    return root


TUX = {
    "asset": "tuxpaint_stamps",
    "wordnet_asset": "wordnet",
    "skip_folders": ["cartoon"],
    "hypernym_source": "wordnet",
    "target_synsets": ["animal.n.01", "bird.n.01", "tool.n.01", "musical_instrument.n.01"],
    "views_per_concept": 4,
    "image_size": 16,
    "seed": 0,
    "synset_overrides": {},
    "target_rule": None,
}


def _build_tux(stamps: Path, out: Path, **overrides) -> None:
    build_dataset(section({"kind": "tuxpaint", "tuxpaint": {**TUX, **overrides}}, "dataset"), SPLIT,
                  {"stamps": stamps, "nltk_data": Path("unused")}, out, wordnet=FakeWordNet())


def test_tuxpaint_concepts_hypernyms_and_views(stamps: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    _build_tux(stamps, out)
    pairs = read_tsv(out / "pairs.tsv")
    assert sorted(zip(pairs.concept, pairs.hypernym)) == [
        ("owl", "animal"), ("owl", "bird"), ("pliers", "tool"), ("tiger", "animal"),
        ("violin", "musical instrument"),
    ]
    concepts = read_tsv(out / "concepts.tsv").set_index("concept")
    assert concepts.article.to_dict() == {"owl": "an", "pliers": "", "tiger": "a", "violin": "a"}
    assert read_tsv(out / "hypernyms.tsv").values.tolist() == [
        ["animal", "animal", "an"], ["bird", "bird", "a"], ["musical instrument", "musical instrument", "a"],
        ["tool", "tool", "a"],
    ]
    images = read_tsv(out / "images.tsv")
    assert len(images) == 16 and images.image_id.str.fullmatch(r"\w+/\w+_\d\d").all()
    per_concept = images.groupby("concept").split.apply(lambda labels: tuple(sorted(labels)))
    assert set(per_concept) == {("test", "train", "train", "val")}  # 4 views: every concept gets a val image
    with Image.open(images.path.iloc[0]) as view:
        assert view.size == (16, 16) and view.mode == "RGB"
    summary = read_json(out / "summary.json")
    assert summary["excluded"] == {
        "animals/birds/blorp.png": "no English caption: no caption file blorp.txt",
        "animals/birds/frowl.png": "no English caption: the first line of its .txt is a translation",
        "animals/birds/glorp.png": "no WordNet noun in caption or file name",
        "rock": "no hypernym (rock.n.01)",
    }
    assert summary["excluded_no_english_caption"] == 2
    captions = read_tsv(out / "captions.tsv")
    assert list(captions.columns) == ["image_id", "caption", "source"] and set(captions.source) == {"stamp"}
    assert sorted(captions.image_id) == sorted(images.image_id)  # every view carries its stamp's caption
    by_concept = captions.assign(concept=captions.image_id.str.split("/").str[0]).groupby("concept").caption
    assert by_concept.unique().map(list).to_dict() == {
        "owl": ["an owl."], "pliers": ["a pair of pliers."], "tiger": ["a Sumatran tiger."], "violin": ["a violin."],
    }
    assert summary["captions"] == {"rows": 16, "by_source": {"stamp": 16}}


def test_tuxpaint_is_byte_identical_on_rerun(stamps: Path, tmp_path: Path) -> None:
    _build_tux(stamps, tmp_path / "a")
    _build_tux(stamps, tmp_path / "b")
    for name in ("concepts.tsv", "pairs.tsv", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    views_a = sorted((tmp_path / "a" / "images").rglob("*.png"))
    assert [p.read_bytes() for p in views_a] == [
        (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes() for p in views_a
    ]


def test_tuxpaint_folder_hypernyms(stamps: Path, tmp_path: Path) -> None:
    _build_tux(stamps, tmp_path / "d", hypernym_source="folders")
    pairs = read_tsv(tmp_path / "d" / "pairs.tsv")
    assert set(pairs.hypernym[pairs.concept == "tiger"]) == {"animal", "mammal", "cat"}


def test_tuxpaint_synset_override(stamps: Path, tmp_path: Path) -> None:
    _build_tux(stamps, tmp_path / "d", synset_overrides={"tiger": "tiger.n.01"})
    assert read_json(tmp_path / "d" / "summary.json")["excluded"]["tiger"] == "no hypernym (tiger.n.01)"


def test_unknown_synset_is_named(stamps: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="target_synsets: unknown WordNet synset 'gadget.n.07'"):
        _build_tux(stamps, tmp_path / "d", target_synsets=["animal.n.01", "gadget.n.07"])
    with pytest.raises(DataError, match="synset_overrides.owl: unknown WordNet synset 'owl.n.09'"):
        _build_tux(stamps, tmp_path / "d", synset_overrides={"owl": "owl.n.09"})


def test_concept_sample_is_seeded_and_bounded() -> None:
    from taxvlm.data.datasets import sample_concepts

    concepts = {f"c{i:02d}" for i in range(30)}
    first = sample_concepts(concepts, 10, seed=3)
    assert len(first) == 10 and first <= concepts
    assert sample_concepts(set(sorted(concepts, reverse=True)), 10, seed=3) == first
    assert sample_concepts(concepts, 10, seed=4) != first
    assert sample_concepts(concepts, None, seed=3) == concepts
    assert sample_concepts(concepts, 50, seed=3) == concepts


def test_the_target_rule_picks_familiar_specific_synsets_above_enough_stamps() -> None:
    entity = FakeSynset("entity.n.01")
    organism = FakeSynset("organism.n.01", entity)
    animal = FakeSynset("animal.n.01", organism)
    chordate = FakeSynset("chordate.n.01", animal)
    chordate._count = 0  # a word nobody says: never a question
    bird = FakeSynset("bird.n.01", chordate)
    fish = FakeSynset("fish.n.01", chordate)
    senses = {
        "owl": FakeSynset("owl.n.01", bird), "crow": FakeSynset("crow.n.01", bird),
        "wren": FakeSynset("wren.n.01", bird), "cod": FakeSynset("cod.n.01", fish),
    }  # fmt: skip
    rule = TargetRule(min_leaves=3, min_depth=2, min_count=5)
    # animal and organism cover the same 4 stamps: only the more specific (animal) is kept; organism is
    # too shallow anyway; chordate is unfamiliar; fish covers 1 stamp
    assert [s.name() for s in rule_targets(senses, rule)] == ["animal.n.01", "bird.n.01"]
    assert [s.name() for s in rule_targets(senses, rule.model_copy(update={"min_depth": 1}))] == ["animal.n.01", "bird.n.01"]
    assert [s.name() for s in rule_targets(senses, rule.model_copy(update={"min_leaves": 1}))] == [
        "animal.n.01", "bird.n.01", "fish.n.01",
    ]


def test_the_target_rule_adds_to_the_listed_targets(stamps: Path, tmp_path: Path) -> None:
    _build_tux(stamps, tmp_path / "d", target_synsets=[], target_rule={"min_leaves": 2, "min_depth": 1, "min_count": 1})
    pairs = read_tsv(tmp_path / "d" / "pairs.tsv")
    assert set(pairs.hypernym) == {"animal"}  # owl and tiger (its animal sense, chosen by its folders)
