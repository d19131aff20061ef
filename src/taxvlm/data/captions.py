"""Image captions for the LiMBeR caption objective: where they come from, how deprivation edits them.

Captions are stored as the text after LiMBeR's prompt `A picture of` (`CAPTION_PROMPT`): `a brown
bear.`; training feeds `[head] [image] A picture of` and learns ` a brown bear.` + end token
(`caption_target`), and decoding continues the same prompt, so stored captions are the references.
Sources (`source` column of `results/data/captions.tsv`):
- `stamp` (tuxpaint): the first line of the stamp's `.txt`, its English description (the lines after
  it are translations, `xx.utf8=...`). A stamp whose first line is empty or a translation, or that has
  no `.txt`, has no English caption and is excluded from the dataset (reason in `summary.json`);
- `file` (things, folder): the optional per-image captions TSV (`image_id`, `caption`; several rows
  per image allowed). An image id it names that the dataset does not have, or an empty caption, is an
  error;
- `template`: `{article} {name}.` (read after the prompt: `A picture of an owl.`) for every image the
  TSV does not caption.
`normalize`: a leading prompt is dropped (`A picture of a dog.` → `a dog.`), spaces are collapsed,
and the first letter is lowered unless the first word is an acronym (`A pineapple.` → `a pineapple.`;
`US coins.` stays).

Deprivation (**decision**), applied by `train_captions` per (condition, shuffle): a training caption
about leaf s must not name (1) a hypernym h whose pair (s, h) the condition removes, nor (2) a hypernym
every one of whose pairs it removes (systematic categories; under `full` that is every hypernym, so no
training caption names any hypernym). A hypernym is named when its category name or its question form
occurs as whole words, case-insensitive, also in a plural (`-s`, `-es`, `-y` → `-ies`). Words inside
the leaf's own name do not count (`apple tree` names no `tree`: its leaf question says it too). Such
a caption is **replaced by the template caption of s** (source `deprivation_template`) rather than
dropped, so every training image keeps its caption and the leaf stays named; the replacements are
counted per hypernym in the condition's `summary.json`.

Shuffles: a caption is about the leaf s of its image and travels to the images of σ(s), as the
questions about s do. Image i (in sorted order) of σ(s) gets the captions of s's training image
i mod n (n = s's training images); under `original` every image keeps its own captions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from taxvlm.data import lexicon
from taxvlm.data.conditions import Removal
from taxvlm.data.errors import DataError, read_table
from taxvlm.prompts import CAPTION_PROMPT

TEMPLATE = "{article} {name}."
CAPTION_COLUMNS = ["image_id", "caption", "source"]
CONDITION_CAPTION_COLUMNS = ["row_id", "image_id", "image_concept", "leaf", "caption", "source"]
REPLACED = "deprivation_template"
_TRANSLATION = re.compile(r"^\s*[A-Za-z@_-]+(\.[A-Za-z0-9@_-]+)?\s*=")
_SHOWN = 5


def normalize(caption: str) -> str:
    """The caption as stored: the text after the prompt, single spaces (module docstring)."""
    text = " ".join(caption.split())
    if text.lower().startswith(CAPTION_PROMPT.lower()):
        text = text[len(CAPTION_PROMPT) :].strip()
    if not text:
        raise DataError(f"caption {caption!r} is empty after the prompt {CAPTION_PROMPT!r}")
    first = text.split()[0]
    if not (len(first) > 1 and first.isupper()):
        text = text[0].lower() + text[1:]
    return text


def caption_target(caption: str) -> str:
    """What training learns after the prompt: the stored caption with its leading space."""
    if not caption.strip():
        raise DataError("empty caption: nothing to learn after the prompt")
    return " " + caption


def template_caption(name: str, article: str) -> str:
    """`an owl.`; an empty article leaves no double space (`food.`)."""
    return " ".join(TEMPLATE.format(article=article, name=name).split())


def english_caption(text_file: Path) -> tuple[str, str | None]:
    """(English caption, None) from a stamp's `.txt`, or ('', why there is none)."""
    if not text_file.is_file():
        return "", f"no English caption: no caption file {text_file.name}"
    lines = text_file.read_text(encoding="utf-8", errors="replace").splitlines()
    first = lines[0].strip() if lines else ""
    if not first:
        return "", "no English caption: the first line of its .txt is empty"
    if _TRANSLATION.match(first):
        return "", "no English caption: the first line of its .txt is a translation"
    return first, None


def read_captions_file(path: Path, image_ids: Iterable[str]) -> pd.DataFrame:
    """The per-image captions TSV (`image_id`, `caption`), normalised; unknown image ids and empty
    captions are errors that name the first few offenders."""
    table = read_table(path, ["image_id", "caption"])
    unknown = sorted(set(table.image_id) - set(image_ids))
    if unknown:
        raise DataError(
            f"{path}: {len(unknown)} image id(s) not in the dataset, e.g. {unknown[:_SHOWN]} "
            "(ids are <concept>/<file stem>)"
        )
    empty = table.image_id[table.caption.str.strip() == ""].tolist()
    if empty:
        raise DataError(f"{path}: empty caption for image id(s) {empty[:_SHOWN]}")
    return table.assign(caption=table.caption.map(normalize), source="file")[CAPTION_COLUMNS]


def dataset_captions(images: pd.DataFrame, concepts: pd.DataFrame, given: pd.DataFrame | None) -> pd.DataFrame:
    """captions.tsv of `images`: the given captions where present, the template elsewhere."""
    given = given if given is not None else pd.DataFrame(columns=CAPTION_COLUMNS)
    given = given[given.image_id.isin(set(images.image_id))]
    names = concepts.set_index("concept")
    rest = images[~images.image_id.isin(set(given.image_id))]
    templated = pd.DataFrame(
        {
            "image_id": rest.image_id,
            "caption": [template_caption(names.at[c, "name"], names.at[c, "article"]) for c in rest.concept],
            "source": "template",
        },
        columns=CAPTION_COLUMNS,
    )
    frame = pd.concat([given, templated], ignore_index=True)
    return frame.sort_values(["image_id", "caption"], kind="stable", ignore_index=True)


def _forms_pattern(forms: Iterable[str]) -> re.Pattern[str] | None:
    """Whole-word, case-insensitive matcher of the forms, their simple plurals and their inflect plural
    (`lexicon.plural`: `person` → `people`, `mouse` → `mice`)."""
    alternatives = set()
    for form in {f.strip().lower() for f in forms} - {""}:
        words = r"\s+".join(re.escape(w) for w in form.split())
        alternatives.add(words + r"(?:s|es)?")
        if form.endswith("y"):
            alternatives.add(words[:-1] + "ies")
        alternatives.add(r"\s+".join(re.escape(w) for w in lexicon.plural(form).split()))
    if not alternatives:
        return None
    return re.compile(r"\b(?:" + "|".join(sorted(alternatives, key=len, reverse=True)) + r")\b", re.IGNORECASE)


class HypernymMentions:
    """Which of a set of hypernyms a caption about a leaf names (module docstring)."""

    def __init__(self, hypernyms: pd.DataFrame) -> None:
        self._patterns = {
            row.hypernym: _forms_pattern([row.hypernym, row.question_form]) for row in hypernyms.itertuples()
        }

    def named(self, caption: str, leaf_name: str, hypernyms: Iterable[str]) -> list[str]:
        """The hypernyms among `hypernyms` that `caption` names outside the leaf's own name."""
        own = _forms_pattern([leaf_name])
        text = own.sub(" ", caption) if own else caption
        return sorted(h for h in hypernyms if (p := self._patterns.get(h)) is not None and p.search(text))


def forbidden_hypernyms(pairs: pd.DataFrame, removed: Removal) -> dict[str, set[str]]:
    """leaf → the hypernyms its training captions must not name: those of its removed pairs, and the
    hypernyms that lose every pair."""
    members = pairs.groupby("hypernym").concept.apply(set).to_dict()
    gone = {h for h, leaves in members.items() if all((leaf, h) in removed.pairs for leaf in leaves)}
    forbidden = {leaf: set(gone) for leaf in pairs.concept}
    for leaf, hypernym in removed.pairs:
        forbidden.setdefault(leaf, set(gone)).add(hypernym)
    return forbidden


def _travel(captions: pd.DataFrame, images: pd.DataFrame, sigma: Mapping[str, str], split: str) -> pd.DataFrame:
    """The `split` images' captions moved with σ: (image_id, image_concept, leaf, caption, source) rows."""
    missing = sorted(set(images.image_id[images.split == split]) - set(captions.image_id))
    if missing:
        raise DataError(f"captions table: no caption for {split} image(s) {missing[:_SHOWN]}")
    by_concept = images[images.split == split].groupby("concept").image_id.apply(sorted).to_dict()
    own = {image: list(zip(group.caption, group.source)) for image, group in captions.groupby("image_id")}
    rows = []
    for leaf, image_concept in sorted(sigma.items()):
        sources, targets = by_concept.get(leaf, []), by_concept.get(image_concept, [])
        for i, image in enumerate(targets if sources else []):
            described = own[sources[i % len(sources)]]
            rows += [(image, image_concept, leaf, caption, source) for caption, source in described]
    return pd.DataFrame(rows, columns=["image_id", "image_concept", "leaf", "caption", "source"])


def train_captions(
    captions: pd.DataFrame,
    images: pd.DataFrame,
    concepts: pd.DataFrame,
    pairs: pd.DataFrame,
    hypernyms: pd.DataFrame,
    sigma: Mapping[str, str],
    removed: Removal,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """train_captions.tsv of one (condition, shuffle) and its summary (module docstring)."""
    rows = _travel(captions, images, sigma, "train")
    names = concepts.set_index("concept")
    forbidden = forbidden_hypernyms(pairs, removed)
    mentions = HypernymMentions(hypernyms)
    replaced: dict[str, int] = {}
    for index, row in rows.iterrows():
        named = mentions.named(row.caption, names.at[row.leaf, "name"], forbidden.get(row.leaf, ()))
        if named:
            rows.at[index, "caption"] = template_caption(names.at[row.leaf, "name"], names.at[row.leaf, "article"])
            rows.at[index, "source"] = REPLACED
            for hypernym in named:
                replaced[hypernym] = replaced.get(hypernym, 0) + 1
    rows = _with_row_ids(rows)
    summary = {
        "rows": len(rows),
        "images": int(rows.image_id.nunique()),
        "by_source": {k: int(v) for k, v in sorted(rows.source.value_counts().items())},
        "replaced_naming_deprived_hypernym": int((rows.source == REPLACED).sum()),
        "replaced_by_hypernym": dict(sorted(replaced.items())),
    }
    return rows[CONDITION_CAPTION_COLUMNS], summary


def reference_captions(captions: pd.DataFrame, images: pd.DataFrame, sigma: Mapping[str, str]) -> pd.DataFrame:
    """test_captions.tsv: the test images' reference captions, moved with σ like the test questions
    (the image of σ(s) is described as s) and never edited by deprivation (they are only scored)."""
    return _with_row_ids(_travel(captions, images, sigma, "test"))[CONDITION_CAPTION_COLUMNS]


def _with_row_ids(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by (image_id, caption) with `row_id` = `<image_id>|<n>`."""
    rows = rows.sort_values(["image_id", "caption"], kind="stable", ignore_index=True)
    return rows.assign(row_id=rows.image_id + "|" + rows.groupby("image_id").cumcount().astype(str))
