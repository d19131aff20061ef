"""Leaf and hypernym yes/no questions with seeded negatives (protocol §2).

- leaf: every leaf gets a positive (its own name) and one fixed negative leaf.
- hypernym: every positive (leaf, h) pair gets a positive question and is matched with one negative
  hypernym the leaf does not belong to (drawn without replacement per leaf, so a leaf never gets the
  same negative twice; a leaf belonging to nearly every hypernym may get fewer negatives).
- A negative is never a name that is true of the leaf: its own surface form or one of its
  hypernyms (THINGS has leaves that share a name, and a leaf name can equal a hypernym name).

Besides the columns of docs/architecture.md, `questions.tsv` has `target`: the positive target a
question is matched with (the leaf id for leaf questions, the positive hypernym for hypernym
questions), which pair-level deprivation needs to drop a pair's negative with its positive.
`question_id` is `<leaf>:<kind>:<target>:<answer>`, unique and stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from taxvlm.data.errors import read_table
from taxvlm.data.lexicon import indefinite_article, question_text
from taxvlm.io import write_tsv
from taxvlm.seeding import rng

DEFAULT_TEMPLATE = "Is there {article} {name} in this image?"
COLUMNS = ["question_id", "leaf", "kind", "asked", "answer", "text", "target"]


def _row(leaf: str, kind: str, target: str, answer: str, asked: str, text: str) -> dict[str, str]:
    return {
        "question_id": f"{leaf}:{kind}:{target}:{answer}",
        "leaf": leaf, "kind": kind, "asked": asked, "answer": answer, "text": text, "target": target,
    }


class _Taxonomy:
    """Names, articles and hypernym sets, indexed for question generation."""

    def __init__(self, concepts: pd.DataFrame, pairs: pd.DataFrame) -> None:
        self.names = dict(zip(concepts.concept, concepts.name))
        self.articles = dict(zip(concepts.concept, concepts.article))
        self.leaves = sorted(self.names)
        self.hypernyms = sorted(set(pairs.hypernym))
        self.of_leaf = {leaf: sorted(group) for leaf, group in pairs.groupby("concept").hypernym}

    def true_names(self, leaf: str) -> set[str]:
        """Every name a Yes answer is correct for on an image of `leaf`."""
        return {self.names[leaf], *self.of_leaf.get(leaf, [])}


def leaf_questions(tax: _Taxonomy, leaf: str, template: str, seed: int) -> list[dict[str, str]]:
    """The positive leaf question and its one fixed negative leaf."""
    text = question_text(template, tax.articles[leaf], tax.names[leaf])
    rows = [_row(leaf, "leaf", leaf, "Yes", leaf, text)]
    candidates = [other for other in tax.leaves if tax.names[other] not in tax.true_names(leaf)]
    if candidates:
        other = candidates[int(rng(seed, "negative_leaf", leaf).integers(len(candidates)))]
        text = question_text(template, tax.articles[other], tax.names[other])
        rows.append(_row(leaf, "leaf", leaf, "No", other, text))
    return rows


def hypernym_questions(tax: _Taxonomy, leaf: str, template: str, seed: int) -> list[dict[str, str]]:
    """A positive question per hypernym of the leaf, each matched with a distinct negative hypernym."""
    positives = tax.of_leaf.get(leaf, [])
    candidates = [h for h in tax.hypernyms if h not in tax.true_names(leaf)]
    order = rng(seed, "negative_hypernym", leaf).permutation(len(candidates))
    rows = []
    for index, hypernym in enumerate(positives):
        text = question_text(template, indefinite_article(hypernym), hypernym)
        rows.append(_row(leaf, "hypernym", hypernym, "Yes", hypernym, text))
        if index < len(candidates):
            negative = candidates[order[index]]
            text = question_text(template, indefinite_article(negative), negative)
            rows.append(_row(leaf, "hypernym", hypernym, "No", negative, text))
    return rows


def make_questions(
    concepts: pd.DataFrame, pairs: pd.DataFrame, questions_cfg: Mapping[str, Any]
) -> pd.DataFrame:
    """All questions of all leaves, sorted by question id."""
    tax = _Taxonomy(concepts, pairs)
    template = questions_cfg.get("template", DEFAULT_TEMPLATE)
    seed = int(questions_cfg.get("seed", 0))
    rows = [
        row
        for leaf in tax.leaves
        for row in leaf_questions(tax, leaf, template, seed) + hypernym_questions(tax, leaf, template, seed)
    ]
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("question_id", ignore_index=True)


def build_questions(
    concepts_tsv: Path, pairs_tsv: Path, questions_cfg: Mapping[str, Any], out_path: Path
) -> None:
    """Write questions.tsv from concepts.tsv and pairs.tsv."""
    concepts = read_table(concepts_tsv, ["concept", "name", "article"])
    pairs = read_table(pairs_tsv, ["concept", "hypernym"])
    write_tsv(make_questions(concepts, pairs, questions_cfg), out_path)
