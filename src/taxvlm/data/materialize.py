"""One (condition, shuffle) → the training table, the four test tables and a summary.

Questions are about leaves; a question about leaf s is attached to every image of σ(s) in the split.
Removal is about the question leaf s (a hypernym question goes when its (s, hypernym) pair is
removed), so under a shuffle the removed questions travel to σ(s)'s images with the rest.
- train: train-split images × (all leaf questions + hypernym questions that survive);
- test_seen / test_unseen: test-split images × surviving / removed hypernym questions;
- test_leaf: test-split images × leaf questions;
- val_leaf: validation-split images × leaf questions, the only table that model choices (training
  length, learning rate) may be made on: it holds trained questions on unseen images, never a
  held-out hypernym.
- test_null: every removed hypernym question (test_unseen's questions) on the test-split images of
  σ(n) instead, where n is the pair's null leaf: a leaf in neither the pair's positive hypernym nor its
  foil, so neither name is true of the image. Under the paired rules the share of pairs whose positive
  wins there is the run's chance level for held-out pairs (docs/protocol.md §8).
Rows are sorted by (image_id, question_id); `row_id` = `<image_id>|<question_id>`, so the same
row has the same id in every condition (test_null's too: a question goes to one null leaf).

`train_captions.tsv` (the caption objective's training table): the training images' captions, moved
with σ and edited by the condition's deprivation as `taxvlm.data.captions.train_captions` documents;
`summary.json` counts them under `captions`. `test_captions.tsv`: the test images' captions moved with
σ, unedited (the captioning references).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from taxvlm.data.captions import reference_captions, train_captions
from taxvlm.data.conditions import Removal, removal
from taxvlm.data.errors import read_table
from taxvlm.data.shuffles import shuffle_map
from taxvlm.io import write_json, write_tsv
from taxvlm.seeding import rng
from taxvlm.settings.dataset import Conditions, Shuffles

COLUMNS = ["row_id", "image_id", "image_concept", "question_id", "leaf", "kind", "asked", "answer", "text"]
TABLES = ("train", "test_seen", "test_unseen", "test_leaf", "val_leaf", "test_null")
NO_NULL_LEAF = "every leaf belongs to the positive hypernym or to the foil"


def _attach(questions: pd.DataFrame, images: pd.DataFrame, split: str) -> pd.DataFrame:
    """Every question on every `split` image of its leaf's image concept, in the contract's columns."""
    chosen = images.loc[images.split == split, ["image_id", "concept"]]
    rows = questions.merge(chosen.rename(columns={"concept": "image_concept"}), on="image_concept")
    rows["row_id"] = rows.image_id + "|" + rows.question_id
    return rows.sort_values(["image_id", "question_id"], ignore_index=True)[COLUMNS]


def _removed(questions: pd.DataFrame, removed: Removal) -> pd.Series:
    """The hypernym questions of the removed (leaf, hypernym) pairs (a foil goes with its positive)."""
    return pd.Series(
        [(leaf, target) in removed.pairs for leaf, target in zip(questions.leaf, questions.target)],
        index=questions.index, dtype=bool,
    ) & (questions.kind != "leaf")


def condition_tables(
    questions: pd.DataFrame, images: pd.DataFrame, sigma: Mapping[str, str], removed: Removal
) -> dict[str, pd.DataFrame]:
    """The five tables of one (condition, shuffle) apart from test_null (`null_table`)."""
    questions = questions.assign(image_concept=questions.leaf.map(sigma))
    is_leaf = questions.kind == "leaf"
    gone = _removed(questions, removed)
    return {
        "train": _attach(questions[~gone], images, "train"),
        "test_seen": _attach(questions[~is_leaf & ~gone], images, "test"),
        "test_unseen": _attach(questions[gone], images, "test"),
        "test_leaf": _attach(questions[is_leaf], images, "test"),
        "val_leaf": _attach(questions[is_leaf], images, "val"),
    }


def _pair_hypernyms(gone: pd.DataFrame) -> dict[tuple[str, str], set[str]]:
    """(leaf, target) of each removed pair → the hypernyms it names: its positive and its foil (if any)."""
    named: dict[tuple[str, str], set[str]] = {}
    for leaf, target, asked in zip(gone.leaf, gone.target, gone.asked):
        named.setdefault((leaf, target), {target}).add(asked)
    return named


def null_leaves(
    gone: pd.DataFrame, pairs: pd.DataFrame, seed: int
) -> tuple[dict[tuple[str, str], str], list[dict[str, str]]]:
    """(leaf, target) → its null leaf, drawn uniformly (keyed by `seed`, the leaf and the target, so
    a pair keeps its null leaf in every condition) from the leaves in neither hypernym the pair names;
    the pairs without one, with the reason, for summary.json's `null_unformed`."""
    members = {str(h): set(group) for h, group in pairs.groupby("hypernym").concept}
    leaves = sorted(set(pairs.concept))
    chosen, unformed = {}, []
    for (leaf, target), named in sorted(_pair_hypernyms(gone).items()):
        inside = set().union(*(members.get(h, set()) for h in named))
        candidates = [other for other in leaves if other not in inside]
        if not candidates:
            unformed.append({"pair": f"{leaf}:hypernym:{target}", "reason": NO_NULL_LEAF})
            continue
        chosen[(leaf, target)] = candidates[int(rng(seed, "null_leaf", leaf, target).integers(len(candidates)))]
    return chosen, unformed


def null_table(
    questions: pd.DataFrame, images: pd.DataFrame, sigma: Mapping[str, str], removed: Removal,
    pairs: pd.DataFrame, seed: int,
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """test_null: the removed hypernym questions, each pair on the test images of σ(its null leaf),
    and the pairs left out (`null_leaves`)."""
    gone = questions[_removed(questions, removed)]
    chosen, unformed = null_leaves(gone, pairs, seed)
    null_leaf = pd.Series([chosen.get(key) for key in zip(gone.leaf, gone.target)], index=gone.index, dtype=object)
    formed = gone[null_leaf.notna()]
    return _attach(formed.assign(image_concept=null_leaf[formed.index].map(sigma)), images, "test"), unformed


def _answer_counts(table: pd.DataFrame) -> dict[str, int]:
    return {"rows": len(table), "Yes": int((table.answer == "Yes").sum()), "No": int((table.answer == "No").sum())}


def _per_category(table: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Yes/No counts per hypernym asked about (leaf questions are summarised only in totals)."""
    hypernym_rows = table[table.kind == "hypernym"]
    return {str(asked): _answer_counts(group) for asked, group in hypernym_rows.groupby("asked")}


def condition_summary(
    condition: str,
    shuffle: str,
    removed: Removal,
    tables: Mapping[str, pd.DataFrame],
    captions: Mapping[str, Any] | None = None,
    null_unformed: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    seen, unseen = len(tables["test_seen"]), len(tables["test_unseen"])
    return {
        "condition": condition,
        "shuffle": shuffle,
        "removed_leaves": removed.leaves,
        "removed_pairs": len(removed.pairs),
        "removed_categories": list(removed.categories),
        "counts": {name: _answer_counts(tables[name]) for name in TABLES},
        "per_category": {name: _per_category(tables[name]) for name in TABLES},
        "unseen_share": unseen / (seen + unseen) if seen + unseen else 0.0,
        "captions": dict(captions or {}),
        "null_unformed": list(null_unformed or []),
    }


def materialize_condition(
    condition: str,
    shuffle: str,
    data_dir: Path,
    conditions: Conditions,
    shuffles: Shuffles,
    out_dir: Path,
) -> None:
    """Read `data_dir/{concepts,pairs,hypernyms,images,captions,questions}.tsv`; write the condition's
    tables, `train_captions.tsv`, shuffle map and summary.json into `out_dir`."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    concepts = read_table(data_dir / "concepts.tsv", ["concept", "name", "article"])
    pairs = read_table(data_dir / "pairs.tsv", ["concept", "hypernym"])
    hypernyms = read_table(data_dir / "hypernyms.tsv", ["hypernym", "question_form", "article"])
    captions = read_table(data_dir / "captions.tsv", ["image_id", "caption", "source"])
    images = read_table(data_dir / "images.tsv", ["image_id", "concept", "path", "split"])
    questions = read_table(
        data_dir / "questions.tsv", ["question_id", "leaf", "kind", "asked", "answer", "text", "target"]
    )
    removed = removal(condition, pairs, conditions)
    sigma = shuffle_map(shuffle, pairs, shuffles)
    tables = condition_tables(questions, images, sigma, removed)
    tables["test_null"], null_unformed = null_table(
        questions, images, sigma, removed, pairs, conditions.seed
    )
    for name, table in tables.items():
        write_tsv(table, out_dir / f"{name}.tsv")
    caption_rows, caption_summary = train_captions(captions, images, concepts, pairs, hypernyms, sigma, removed)
    write_tsv(caption_rows, out_dir / "train_captions.tsv")
    write_tsv(reference_captions(captions, images, sigma), out_dir / "test_captions.tsv")
    shuffle_frame = pd.DataFrame(sorted(sigma.items()), columns=["leaf", "image_concept"])
    write_tsv(shuffle_frame, out_dir / "shuffle_map.tsv")
    summary = condition_summary(condition, shuffle, removed, tables, caption_summary, null_unformed)
    write_json(summary, out_dir / "summary.json")
