"""Dataset readers (`things`, `folder`, `tuxpaint`) → one set of tables, split and written.

Every reader returns a `DatasetTables` (concepts, taxonomy pairs, images, hypernym question
forms, exclusions); the builder then drops concepts without a hypernym or without enough images
for the split, assigns the per-concept split (`splits.py`) and writes `concepts.tsv`, `pairs.tsv`,
`hypernyms.tsv`, `images.tsv` and `summary.json` as specified in docs/architecture.md.

Hypernym question forms (how a question names a hypernym; the category name stays the key):
- `things`: the optional `hypernym_forms` TSV (`hypernym`, `question_form`; the paper's
  `part of car` → `car part`); categories it does not list are asked by their own name;
- `folder`: an optional `question_form` column of the hypernyms TSV (one value per hypernym);
- `tuxpaint`: the synset's first lemma with spaces (`musical_instrument.n.01` → `musical
  instrument`), which is already the hypernym's name.
The article of a hypernym question comes from its question form (`an item of clothing`).

Captions (`captions.tsv`: `image_id`, `caption`, `source`; the caption objective's training text and
the captioning references, see `taxvlm.data.captions`): tuxpaint views carry the English caption of
the stamp they were drawn from (a stamp without one is excluded, with the reason); things and folder
images the optional `captions` TSV, else the template `A picture of {article} {name}.`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from PIL import Image

from taxvlm.data import lexicon, splits
from taxvlm.data.augment import make_view
from taxvlm.data.captions import CAPTION_COLUMNS, dataset_captions, english_caption, normalize, read_captions_file
from taxvlm.data.errors import DataError, MissingDataError, nfc, read_table, require_cells
from taxvlm.io import atomic_path, write_json, write_tsv
from taxvlm.seeding import rng
from taxvlm.settings.dataset import Dataset, Folder, Split, TargetRule, Things, Tuxpaint

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
ARTICLE_OVERRIDES = {"a": "a", "an": "an", "none": ""}
NO_HYPERNYM = "no hypernym"


class Synset(Protocol):
    """The part of an nltk WordNet synset the tuxpaint reader uses."""

    def name(self) -> str: ...
    def lemma_names(self) -> list[str]: ...
    def hypernym_paths(self) -> list[list[Synset]]: ...
    def min_depth(self) -> int: ...
    def lemmas(self) -> list[Any]: ...


class WordNet(Protocol):
    """The part of nltk's WordNet reader the tuxpaint reader uses (tests pass a small fake)."""

    def synsets(self, lemma: str, pos: str) -> list[Synset]: ...
    def morphy(self, form: str, pos: str) -> str | None: ...


@dataclass
class DatasetTables:
    """concepts (`concept`, `name`, `article`), pairs (`concept`, `hypernym`),
    images (`image_id`, `concept`, `path`), excluded concepts or stamps → reason, the
    hypernyms whose question form differs from their name → that form, and the captions the dataset
    gives (`image_id`, `caption`, `source`; images without one get the template)."""

    concepts: pd.DataFrame
    pairs: pd.DataFrame
    images: pd.DataFrame
    excluded: dict[str, str] = field(default_factory=dict)
    question_forms: dict[str, str] = field(default_factory=dict)
    captions: pd.DataFrame | None = None


# --------------------------------------------------------------------------- shared helpers


def image_files(folder: Path) -> list[Path]:
    """The image files of one concept folder, sorted by name; an absent or empty folder is an error."""
    if not folder.is_dir():
        raise MissingDataError(f"concept folder not found: {folder}")
    files = sorted(
        path for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )
    if not files:
        raise MissingDataError(f"concept folder has no images: {folder}")
    return files


def concept_folders(images_root: Path) -> dict[str, Path]:
    """Sub-folders by their NFC name: macOS and some archives store names in NFD, tables in NFC."""
    root = Path(images_root)
    return {nfc(p.name): p for p in sorted(root.iterdir()) if p.is_dir()} if root.is_dir() else {}


def images_table(images_root: Path, concepts: Iterable[str]) -> pd.DataFrame:
    """One row per file of `images_root/<concept>/`; image ids are `<concept>/<file stem>` (NFC)."""
    folders = concept_folders(images_root)
    rows = [
        {"image_id": f"{concept}/{nfc(path.stem)}", "concept": concept, "path": str(path)}
        for concept in sorted(concepts)
        for path in image_files(folders.get(concept, Path(images_root) / concept))
    ]
    frame = pd.DataFrame(rows, columns=["image_id", "concept", "path"])
    duplicated = sorted(set(frame.image_id[frame.image_id.duplicated()]))
    if duplicated:
        raise DataError(f"{images_root}: files differing only in extension: {duplicated}")
    return frame


def readable_names(concepts: list[dict[str, str]], table: pd.DataFrame, id_column: str, source: Path) -> None:
    """A concept whose id gives no name (digits only, no name column) is an error naming its line."""
    for row in concepts:
        if not row["name"]:
            line = int(table.index[table[id_column] == row["concept"]][0]) + 2
            raise DataError(f"{source}: line {line}: concept {row['concept']!r} has no readable name; give it one")


def concept_row(concept: str, name: str, article: str | None = None) -> dict[str, str]:
    """A concepts.tsv row; the article comes from the lexicon unless given."""
    if article is None:
        article = lexicon.indefinite_article(name) if name else ""
    return {"concept": concept, "name": name, "article": article}


def pairs_frame(pairs: Iterable[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(sorted(set(pairs)), columns=["concept", "hypernym"])


def question_forms(
    hypernyms: Iterable[str], forms: Iterable[str], hypernym_set: set[str], source: Path
) -> dict[str, str]:
    """hypernym → question form from parallel columns; empty forms are skipped. A hypernym with
    two forms, or one outside the taxonomy (a typo would otherwise go unnoticed), is an error."""
    given: dict[str, set[str]] = {}
    for hypernym, form in zip(hypernyms, forms):
        if form.strip():
            given.setdefault(hypernym, set()).add(form.strip())
    conflicting = {h: sorted(f) for h, f in sorted(given.items()) if len(f) > 1}
    if conflicting:
        raise DataError(f"{source}: conflicting question_form values {conflicting}")
    unknown = sorted(set(given) - hypernym_set)
    if unknown:
        raise DataError(f"{source}: question_form for hypernym(s) not in the taxonomy: {unknown[:10]}")
    return {hypernym: min(values) for hypernym, values in given.items()}


# --------------------------------------------------------------------------- things


def read_things(cfg: Things, inputs: Mapping[str, Path]) -> DatasetTables:
    """THINGS images + THINGSplus categories; `leaf_set: xu2026` takes the leaves and pairs of
    `inputs["pairs"]` (the paper's 2,040 pairs) instead of every categorised concept. The optional
    `inputs["hypernym_forms"]` gives question forms (module docstring)."""
    categories = read_table(inputs["categories"], ["category", "uniqueID", "Word"])
    require_cells(categories, ["category", "uniqueID"], inputs["categories"])
    leaf_set = cfg.leaf_set
    if leaf_set == "all":
        pairs = pairs_frame(zip(categories.uniqueID, categories.category))
        named_by, id_column = categories, "uniqueID"
    elif leaf_set == "xu2026":
        table = read_table(inputs["pairs"], ["concept", "hypernym"])
        require_cells(table, ["concept", "hypernym"], inputs["pairs"])
        pairs = pairs_frame(zip(table.concept, table.hypernym))
        named_by, id_column = table, "concept"
    else:
        raise DataError(f"dataset.things.leaf_set: unknown value {leaf_set!r}; use 'all' or 'xu2026'")
    words = dict(zip(categories.uniqueID, categories.Word))
    leaves = sorted(set(pairs.concept))
    concepts = [concept_row(c, words.get(c) or lexicon.surface_form(c)) for c in leaves]
    readable_names(concepts, named_by, id_column, inputs["pairs" if leaf_set == "xu2026" else "categories"])
    forms = {}
    if "hypernym_forms" in inputs:
        table = read_table(inputs["hypernym_forms"], ["hypernym", "question_form"])
        forms = question_forms(table.hypernym, table.question_form, set(pairs.hypernym), inputs["hypernym_forms"])
    images = images_table(inputs["images"], leaves)
    captions = _given_captions(inputs, images)
    return DatasetTables(pd.DataFrame(concepts), pairs, images, question_forms=forms, captions=captions)


def _given_captions(inputs: Mapping[str, Path], images: pd.DataFrame) -> pd.DataFrame | None:
    """The optional per-image captions TSV (`inputs["captions"]`), checked against the images."""
    return read_captions_file(inputs["captions"], images.image_id) if "captions" in inputs else None


# --------------------------------------------------------------------------- folder


def _folder_article(concept: str, values: Iterable[str]) -> str | None:
    """The one article override given for a concept (`a`, `an`, `none`), None when left empty."""
    given = sorted({value.strip().lower() for value in values} - {""})
    if len(given) > 1:
        raise DataError(f"hypernyms TSV: conflicting article values {given} for concept {concept!r}")
    if given and given[0] not in ARTICLE_OVERRIDES:
        raise DataError(f"hypernyms TSV: article {given[0]!r} for {concept!r}; use a, an or none")
    return ARTICLE_OVERRIDES[given[0]] if given else None


def _folder_concept(concept: str, rows: pd.DataFrame) -> dict[str, str]:
    names = sorted(set(rows.get("name", pd.Series(dtype=str))) - {""})
    name = names[0] if names else lexicon.surface_form(concept)
    return concept_row(concept, name, _folder_article(concept, rows.get("article", [])))


def read_folder(cfg: Folder, inputs: Mapping[str, Path]) -> DatasetTables:
    """`images/<concept>/<files>` plus a `concept<TAB>hypernym` TSV (optional `name`, `article`
    columns; `article` is `a`, `an`, `none` or empty = lexicon; optional `question_form` of the
    row's hypernym, empty = its name). Folders absent from the TSV are excluded (no hypernym);
    TSV concepts without a folder are an error."""
    table = read_table(inputs["hypernyms"], ["concept", "hypernym"])
    require_cells(table, ["concept", "hypernym"], inputs["hypernyms"])
    pairs = pairs_frame(zip(table.concept, table.hypernym))
    leaves = sorted(set(pairs.concept))
    concepts = [_folder_concept(c, table[table.concept == c]) for c in leaves]
    readable_names(concepts, table, "concept", inputs["hypernyms"])
    root = Path(inputs["images"])
    if not root.is_dir():
        raise MissingDataError(f"images folder not found: {root}")
    unlisted = sorted(set(concept_folders(root)) - set(leaves))
    forms = question_forms(
        table.hypernym, table.get("question_form", [""] * len(table)), set(pairs.hypernym), inputs["hypernyms"]
    )
    images = images_table(root, leaves)
    return DatasetTables(
        pd.DataFrame(concepts),
        pairs,
        images,
        dict.fromkeys(unlisted, NO_HYPERNYM),
        forms,
        _given_captions(inputs, images),
    )


# --------------------------------------------------------------------------- tuxpaint

_DETERMINERS = frozenset({"a", "an", "the", "some", "two", "three", "several", "many"})
MAX_PHRASE_WORDS = 3


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:['-][a-z]+)*", text.lower())


def mirrored_of(stem: str) -> str:
    """Tux Paint ships mirrored copies as `<stem>_mirror.png` without their own description."""
    return stem.removesuffix("_mirror")


def noun_phrases(caption: str, stem: str) -> list[list[str]]:
    """Word sequences that end in the noun, best first: the caption after its last `of`
    ("A pair of pliers"), the caption, then the file name (`sea_lion`, `seaLion2`)."""
    words = [word for word in _words(caption) if word not in _DETERMINERS]
    phrases = [words[len(words) - words[::-1].index("of"):]] if "of" in words else []
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", stem)
    phrases += [words, _words(re.sub(r"[\d_]+", " ", spaced))]
    return [phrase for phrase in phrases if phrase]


def find_noun(wordnet: WordNet, phrases: list[list[str]]) -> tuple[str, list[Synset]] | None:
    """The longest final n-gram (≤ 3 words) of the first phrase that WordNet knows as a noun,
    as (surface form in base form, its noun senses in WordNet order)."""
    for phrase in phrases:
        for length in range(min(MAX_PHRASE_WORDS, len(phrase)), 0, -1):
            tail = phrase[-length:]
            for lemma in ("_".join(tail), "-".join(tail)):
                senses = wordnet.synsets(lemma, "n")
                if senses:
                    base = wordnet.morphy(lemma, "n") or lemma
                    return base.replace("_", " "), senses
    return None


def _ancestors(synset: Synset) -> list[Synset]:
    """Every synset on a hypernym path of `synset`, itself excluded."""
    return [node for path in synset.hypernym_paths() for node in path[:-1]]


def choose_sense(senses: list[Synset], folder_words: set[str], targets: list[Synset]) -> Synset:
    """**Decision:** WordNet's first sense is often wrong for a picture collection (`tiger` → a
    fierce person, `yak` → talk), so take the sense with the most ancestors named like the
    stamp's folders (`animals/mammals` → animal, mammal); without any, the first sense under a
    target synset; else the first sense. Ties keep WordNet order. `synset_overrides` settles the rest."""
    def folder_matches(sense: Synset) -> int:
        return len(folder_words & {lemma for node in _ancestors(sense) for lemma in node.lemma_names()})

    best = max(senses, key=folder_matches)  # max keeps the first of equal scores
    if folder_matches(best):
        return best
    target_names = {target.name() for target in targets}
    under_target = [s for s in senses if any(n.name() in target_names for n in _ancestors(s))]
    return (under_target or senses)[0]


def synset_by_name(wordnet: WordNet, name: str, field_name: str) -> Synset:
    """Resolve `musical_instrument.n.01`; an unknown name is an error naming the config field."""
    lemma, _, rest = name.partition(".")
    pos = rest.split(".")[0]
    for synset in wordnet.synsets(lemma, pos) if pos else []:
        if synset.name() == name:
            return synset
    raise DataError(f"{field_name}: unknown WordNet synset {name!r}")


def rule_targets(senses: Mapping[str, Synset], rule: TargetRule) -> list[Synset]:
    """The target synsets a written rule picks from the stamps' own senses, before any result is seen.

    **Decision** (`dataset.tuxpaint.target_rule`): every WordNet noun above at least `min_leaves` of
    the matched concepts (all of them, before `max_concepts` samples), at least `min_depth` below
    `entity` (so `object` or `whole` never become a question), whose first lemma is a familiar word
    (tagged at least `min_count` times in SemCor: WordNet's own frequency counts, so `chordate` or
    `instrumentality` do not become questions); of several synsets above exactly the same concepts,
    only the most specific is kept (a category asked twice under two names would count twice).
    """
    covered: dict[str, set[str]] = {}
    nodes: dict[str, Synset] = {}
    for concept, synset in senses.items():
        for node in _ancestors(synset):
            covered.setdefault(node.name(), set()).add(concept)
            nodes[node.name()] = node
    chosen = [
        nodes[name]
        for name, concepts in covered.items()
        if len(concepts) >= rule.min_leaves
        and nodes[name].min_depth() >= rule.min_depth
        and nodes[name].lemmas()[0].count() >= rule.min_count
    ]
    kept: dict[frozenset[str], Synset] = {}
    for node in sorted(chosen, key=lambda n: (-n.min_depth(), n.name())):
        kept.setdefault(frozenset(covered[node.name()]), node)
    return sorted(kept.values(), key=lambda n: n.name())


def hypernym_name(synset: Synset) -> str:
    """`musical_instrument.n.01` → `musical instrument` (the synset's first lemma)."""
    return synset.name().split(".")[0].replace("_", " ")


def wordnet_hypernyms(synset: Synset, targets: Iterable[Synset]) -> set[str]:
    """Names of the target synsets on any hypernym path of `synset` (not counting itself).
    Targets sharing a first lemma (food.n.01, food.n.02) give one hypernym."""
    above = {node.name() for node in _ancestors(synset)}
    return {hypernym_name(target) for target in targets if target.name() in above}


def folder_words(wordnet: WordNet, relative: Path) -> set[str]:
    """The stamp's folder names in WordNet base form (`animals/birds/owl.png` → animal, bird)."""
    return {wordnet.morphy(part, "n") or part for part in (p.lower() for p in relative.parent.parts)}


@dataclass
class _Stamp:
    path: Path  # relative to the stamps root
    name: str
    synset: Synset
    caption: str  # its English caption, normalised (`taxvlm.data.captions`)


def _stamp_files(root: Path, skip: set[str]) -> list[Path]:
    """All PNG stamps under root (relative paths, sorted), except those inside a skipped folder."""
    if not root.is_dir():
        raise MissingDataError(f"tuxpaint stamps folder not found: {root}")
    relative = sorted(path.relative_to(root) for path in root.rglob("*.png"))
    return [path for path in relative if not skip.intersection(path.parent.parts)]


def _match_stamps(
    wordnet: WordNet, root: Path, cfg: Tuxpaint, targets: list[Synset]
) -> tuple[dict[str, list[_Stamp]], dict[str, str]]:
    """Group stamps by concept id (several stamps may name the same noun); a stamp without an English
    caption or without a WordNet noun → excluded, with the reason."""
    overrides = cfg.synset_overrides
    by_concept: dict[str, list[_Stamp]] = {}
    excluded: dict[str, str] = {}
    for path in _stamp_files(root, set(cfg.skip_folders)):
        caption, no_caption = english_caption((root / path).with_name(f"{mirrored_of(path.stem)}.txt"))
        if no_caption:
            excluded[str(path)] = no_caption
            continue
        match = find_noun(wordnet, noun_phrases(caption, mirrored_of(path.stem)))
        if match is None:
            excluded[str(path)] = "no WordNet noun in caption or file name"
            continue
        name, senses = match
        concept = name.replace(" ", "_")
        if concept in overrides:
            synset = synset_by_name(wordnet, overrides[concept], f"synset_overrides.{concept}")
        else:
            synset = choose_sense(senses, folder_words(wordnet, path), targets)
        by_concept.setdefault(concept, []).append(_Stamp(path, name, synset, normalize(caption)))
    return by_concept, excluded


def _stamp_hypernyms(
    wordnet: WordNet, stamps: list[_Stamp], targets: list[Synset], source: str
) -> set[str]:
    """Hypernyms of a concept: target synsets above its (first stamp's) sense and/or the folder
    names of all its stamps; never the concept's own name."""
    if source not in ("wordnet", "folders", "both"):
        raise DataError(f"dataset.tuxpaint.hypernym_source: {source!r}; use wordnet, folders or both")
    found: set[str] = set()
    if source in ("wordnet", "both"):
        found |= wordnet_hypernyms(stamps[0].synset, targets)
    if source in ("folders", "both"):
        for stamp in stamps:
            found |= {word.replace("_", " ") for word in folder_words(wordnet, stamp.path)}
    return found - {stamps[0].name}


def write_views(
    concept: str, sources: list[Path], out_dir: Path, cfg: Tuxpaint, captions: list[str] | None = None
) -> pd.DataFrame:
    """`views_per_concept` seeded views, cycling over the concept's stamps, as PNGs in out_dir; with
    `captions` (one per source), each view carries the caption of its stamp (`caption` column)."""
    size, seed = cfg.image_size, cfg.seed
    pictures = [Image.open(path) for path in sources]
    rows = []
    for index in range(cfg.views_per_concept):
        view = make_view(pictures[index % len(pictures)], size, rng(seed, "view", concept, index))
        stem = f"{concept}_{index:02d}"
        path = out_dir / concept / f"{stem}.png"
        with atomic_path(path) as tmp:
            view.save(tmp, format="PNG")
        row = {"image_id": f"{concept}/{stem}", "concept": concept, "path": str(path)}
        rows.append(row | ({"caption": captions[index % len(captions)]} if captions else {}))
    return pd.DataFrame(rows)


def read_tuxpaint(
    cfg: Tuxpaint, inputs: Mapping[str, Path], out_dir: Path, wordnet: WordNet
) -> DatasetTables:
    """Tux Paint stamps named by WordNet nouns; hypernyms per `hypernym_source`; views written
    under `out_dir/images/`. Concepts without any hypernym are excluded (reason recorded)."""
    root = Path(inputs["stamps"])
    targets = [
        synset_by_name(wordnet, name, "dataset.tuxpaint.target_synsets")
        for name in cfg.target_synsets or []
    ]
    by_concept, excluded = _match_stamps(wordnet, root, cfg, targets)
    if cfg.target_rule is not None:
        listed = {target.name() for target in targets}
        picked = rule_targets({c: stamps[0].synset for c, stamps in by_concept.items()}, cfg.target_rule)
        targets += [node for node in picked if node.name() not in listed]
        log.info("target synsets: %d listed + %d by the rule", len(listed), len(targets) - len(listed))
    concepts, pairs, images = [], [], []
    for concept, stamps in sorted(by_concept.items()):
        hypernyms = _stamp_hypernyms(wordnet, stamps, targets, cfg.hypernym_source)
        if not hypernyms:
            excluded[concept] = f"{NO_HYPERNYM} ({stamps[0].synset.name()})"
            continue
        concepts.append(concept_row(concept, stamps[0].name))
        pairs += [(concept, hypernym) for hypernym in hypernyms]
        sources, captions = [root / s.path for s in stamps], [s.caption for s in stamps]
        images.append(write_views(concept, sources, out_dir / "images", cfg, captions))
    columns = ["image_id", "concept", "path", "caption"]
    image_frame = pd.concat(images) if images else pd.DataFrame(columns=columns)
    captions = image_frame[["image_id", "caption"]].assign(source="stamp")[CAPTION_COLUMNS]
    return DatasetTables(
        pd.DataFrame(concepts), pairs_frame(pairs), image_frame.drop(columns="caption"), excluded, captions=captions
    )


# --------------------------------------------------------------------------- build


def unreadable_images(images: pd.DataFrame) -> dict[str, str]:
    """image path → why it cannot be decoded. A suffix says nothing about the bytes, and a truncated
    JPEG would otherwise fail deep inside feature extraction without its path; `verify()` alone does
    not decode JPEG data, so each image is fully loaded once here."""
    bad = {}
    for path in images.path:
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, SyntaxError, ValueError) as err:
            bad[str(path)] = f"unreadable image: {err}"
    if bad:
        log.warning("excluded %d unreadable image(s) (see summary.json): %s", len(bad), sorted(bad)[:5])
    return bad


def one_leaf_hypernyms(pairs: pd.DataFrame) -> list[str]:
    """Hypernyms with a single leaf: every `random<pct>` draws at least one leaf per hypernym, so these
    lose all their training questions under any percentage."""
    counts = pairs.hypernym.value_counts()
    found = sorted(str(h) for h in counts[counts == 1].index)
    if found:
        log.warning("%d hypernym(s) have one leaf and are fully removed under every random<pct>: %s",
                    len(found), found[:10])
    return found


def _split_images(
    tables: DatasetTables, split: Split
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Add the `split` column; concepts with too few images are dropped (with a warning)."""
    fractions = splits.fractions_from(split)
    min_images, seed = split.min_images, split.seed
    counts = tables.images.groupby("concept").size()
    too_few = {
        concept: f"too few images ({n} < {min_images} or no train/test image)"
        for concept, n in counts.items() if not splits.is_splittable(int(n), fractions, min_images)
    }
    if too_few:
        log.warning("excluded %d concept(s) with too few images: %s", len(too_few), sorted(too_few))
    kept = tables.images[~tables.images.concept.isin(too_few)]
    labels: dict[str, str] = {}
    for concept, group in kept.groupby("concept"):
        by_file = splits.assign_splits(str(concept), list(group.image_id), fractions, seed)
        labels.update(by_file)
    return kept.assign(split=kept.image_id.map(labels)), too_few


def _summary(concepts: pd.DataFrame, pairs: pd.DataFrame, images: pd.DataFrame, captions: pd.DataFrame,
             excluded: Mapping[str, str], too_few: Mapping[str, str]) -> dict[str, Any]:
    return {
        "concepts": len(concepts),
        "hypernyms": int(pairs.hypernym.nunique()),
        "pairs": len(pairs),
        "images": len(images),
        "images_per_split": {k: int(v) for k, v in sorted(images.split.value_counts().items())},
        "leaves_per_hypernym": {k: int(v) for k, v in sorted(pairs.hypernym.value_counts().items())},
        "excluded": dict(sorted(excluded.items())),
        "excluded_count": len(excluded),
        "excluded_too_few_images": len(too_few),
        "excluded_no_english_caption": sum(reason.startswith("no English caption") for reason in excluded.values()),
        "captions": {
            "rows": len(captions),
            "by_source": {k: int(v) for k, v in sorted(captions.source.value_counts().items())},
        },
    }


def sample_concepts(concepts: set[str], max_concepts: int | None, seed: int) -> set[str]:
    """A seeded uniform sample of at most `max_concepts` usable concepts (all when None).

    Lets a small budget (the CPU default, a quick look at THINGS) keep many views per concept
    instead of thinning every concept's training data.
    """
    if max_concepts is None or len(concepts) <= max_concepts:
        return concepts
    ordered = sorted(concepts)
    chosen = rng(seed, "max_concepts").choice(len(ordered), size=max_concepts, replace=False)
    return {ordered[i] for i in chosen}


def _write_tables(
    tables: DatasetTables, split: Split, out_dir: Path, max_concepts: int | None, seed: int
) -> None:
    unreadable = unreadable_images(tables.images)
    tables.images = tables.images[~tables.images.path.astype(str).isin(unreadable)]
    images, too_few = _split_images(tables, split)
    excluded = {**tables.excluded, **unreadable, **too_few}
    with_images = set(images.concept)
    with_pairs = set(tables.pairs.concept)
    excluded.update({c: NO_HYPERNYM for c in sorted(with_images - with_pairs)})
    keep = sample_concepts(with_images & with_pairs, max_concepts, seed)
    concepts = tables.concepts[tables.concepts.concept.isin(keep)].sort_values("concept")
    pairs = tables.pairs[tables.pairs.concept.isin(keep)].sort_values(["concept", "hypernym"])
    images = images[images.concept.isin(keep)].sort_values("image_id")
    captions = dataset_captions(images, concepts, tables.captions)
    hypernyms = hypernyms_frame(sorted(set(pairs.hypernym)), tables.question_forms)
    write_tsv(concepts[["concept", "name", "article"]], out_dir / "concepts.tsv")
    write_tsv(with_lexical_overlap(pairs[["concept", "hypernym"]], concepts, hypernyms), out_dir / "pairs.tsv")
    write_tsv(hypernyms, out_dir / "hypernyms.tsv")
    write_tsv(images[["image_id", "concept", "path", "split"]], out_dir / "images.tsv")
    write_tsv(captions, out_dir / "captions.tsv")
    summary = _summary(concepts, pairs, images, captions, excluded, too_few)
    summary["excluded_unreadable_images"] = len(unreadable)
    summary["one_leaf_hypernyms"] = one_leaf_hypernyms(pairs)
    write_json(summary, out_dir / "summary.json")


def hypernyms_frame(hypernyms: list[str], forms: Mapping[str, str]) -> pd.DataFrame:
    """hypernyms.tsv: each hypernym's question form (its own name unless given) and the article
    of that form."""
    rows = [(h, forms.get(h, h), lexicon.indefinite_article(forms.get(h, h))) for h in hypernyms]
    return pd.DataFrame(rows, columns=["hypernym", "question_form", "article"])


def with_lexical_overlap(pairs: pd.DataFrame, concepts: pd.DataFrame, hypernyms: pd.DataFrame) -> pd.DataFrame:
    """pairs.tsv's `lexical_overlap`: True where the leaf's surface name spells the hypernym's name,
    question form or one of their words (`lexicon.lexical_overlap`), which a text-only model can read
    off the name."""
    names = dict(zip(concepts.concept, concepts.name))
    forms = dict(zip(hypernyms.hypernym, hypernyms.question_form))
    flags = [lexicon.lexical_overlap(names[c], h, forms[h]) for c, h in zip(pairs.concept, pairs.hypernym)]
    return pairs.assign(lexical_overlap=pd.Series(flags, index=pairs.index, dtype=bool))


def _load_wordnet(inputs: Mapping[str, Path]) -> WordNet:
    from taxvlm.assets.wordnet import load_wordnet

    return load_wordnet(Path(inputs["nltk_data"]))


def build_dataset(
    dataset: Dataset,
    split: Split,
    inputs: Mapping[str, Path],
    out_dir: Path,
    wordnet: WordNet | None = None,
) -> None:
    """Read the configured dataset kind and write concepts/pairs/hypernyms/images/captions tables +
    summary.json.

    `inputs` (resolved paths) per `dataset.kind`:
    - `things`: `images` (`<concept>/*.jpg` tree), `categories` (THINGSplus
      category53_longFormat.tsv), `pairs` (leaf–hypernym TSV, used when `leaf_set: xu2026`),
      optionally `hypernym_forms` (`hypernym`, `question_form` TSV) and `captions` (`image_id`,
      `caption` TSV);
    - `folder`: `images` (`<concept>/<image files>` tree), `hypernyms` (`concept<TAB>hypernym` TSV),
      optionally `captions`;
    - `tuxpaint`: `stamps` (the extracted stamps folder, category folders at its top),
      `nltk_data` (nltk data dir with corpora/wordnet; unused when `wordnet` is passed).
    `wordnet` injects a WordNet reader (tests use a small fake). `dataset.max_concepts` keeps a
    seeded sample (`sample_seed`) of the usable concepts.
    """
    kind = dataset.kind
    section = dataset.reader()
    out_dir = Path(out_dir)
    readers: dict[str, Callable[[], DatasetTables]] = {
        "things": lambda: read_things(section, inputs),
        "folder": lambda: read_folder(section, inputs),
        "tuxpaint": lambda: read_tuxpaint(section, inputs, out_dir, wordnet or _load_wordnet(inputs)),
    }
    _write_tables(
        readers[kind](), split, out_dir, dataset.max_concepts, dataset.sample_seed
    )
