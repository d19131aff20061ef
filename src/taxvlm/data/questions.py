"""Leaf and hypernym yes/no questions with seeded negatives (docs/protocol.md §5).

- leaf: every leaf gets a positive (its own name) and one fixed negative leaf. The negatives are
  one-to-one: every leaf is some other leaf's negative exactly once, so no leaf name is always
  'Yes' and the text alone cannot answer a leaf question. **Decision (how it is drawn):** one seeded
  permutation of the leaves; the assignments that are allowed are kept, and every other leaf gets
  its negative along a shortest alternating path (breadth-first, candidates in a seeded order)
  that re-assigns leaves on the way. Such a path exists whenever a complete assignment does
  (Berge), so a failure proves none exists and is a `DataError`.
- hypernym: every positive (leaf, h) pair gets a positive question and is matched with one negative
  hypernym (its foil) the leaf does not belong to; a leaf never gets the same foil twice, and a leaf
  belonging to nearly every hypernym may get fewer foils. `questions.foil_balance` says how:
  - `uniform` (the paper's draw): each leaf's foils drawn uniformly without replacement. A big
    category is then a positive for its many leaves and rarely a foil, so its name alone predicts
    'Yes' and a no-image prior scores above chance under the paired rules.
  - `balanced`: **Decision:** the foils of all leaves are assigned jointly by a min-cost flow so that
    every hypernym is a foil as often as it is a positive (its number of leaves), as near as the
    taxonomy allows (the number of foil uses beyond a hypernym's positive count is minimal); seeded
    small random costs choose among the balanced assignments, so the draw varies with the seed.
- A negative is never a name that is true of the leaf: its own surface form, one of its hypernyms
  (by category name or question form), or another leaf with the same surface form (THINGS has
  leaves that share a name, and a leaf name can equal a hypernym name).
- Hypernyms are asked with their question form from `hypernyms.tsv` (e.g. `part of car` is asked
  as "Is there a car part in this image?"), while `asked` and `target` keep the category name, so
  every report groups by the taxonomy's own names.

Besides the columns of docs/architecture.md, `questions.tsv` has `target`: the positive target a
question is matched with (the leaf id for leaf questions, the positive hypernym for hypernym
questions), which pair-level deprivation needs to drop a pair's negative with its positive.
`question_id` is `<leaf>:<kind>:<target>:<answer>`, unique and stable.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from pathlib import Path

import networkx as nx
import pandas as pd

from taxvlm.data.errors import DataError, read_table
from taxvlm.data.lexicon import indefinite_article, question_text
from taxvlm.io import write_tsv
from taxvlm.seeding import rng
from taxvlm.settings.dataset import Questions

COLUMNS = ["question_id", "leaf", "kind", "asked", "answer", "text", "target"]
HYPERNYM_COLUMNS = ["hypernym", "question_form", "article"]
# Random costs 0..15 on the leaf → foil edges: enough ties broken for the seed to vary the draw.
_FOIL_COST_LEVELS = 16


def _row(leaf: str, kind: str, target: str, answer: str, asked: str, text: str) -> dict[str, str]:
    return {
        "question_id": f"{leaf}:{kind}:{target}:{answer}",
        "leaf": leaf, "kind": kind, "asked": asked, "answer": answer, "text": text, "target": target,
    }


def _hypernym_forms(hypernyms: pd.DataFrame | None, names: list[str]) -> dict[str, tuple[str, str]]:
    """hypernym → (question form, article); without a table every hypernym is asked by its own name."""
    if hypernyms is None:
        return {name: (name, indefinite_article(name)) for name in names}
    forms = {row.hypernym: (row.question_form, row.article) for row in hypernyms.itertuples()}
    missing = sorted(set(names) - set(forms))
    if missing:
        raise DataError(f"hypernyms table: no question form for hypernym(s) {missing[:10]}")
    return forms


class _Taxonomy:
    """Names, articles, hypernym sets and question forms, indexed for question generation."""

    def __init__(self, concepts: pd.DataFrame, pairs: pd.DataFrame, hypernyms: pd.DataFrame | None) -> None:
        self.names = dict(zip(concepts.concept, concepts.name))
        self.articles = dict(zip(concepts.concept, concepts.article))
        self.leaves = sorted(self.names)
        self.hypernyms = sorted(set(pairs.hypernym))
        self.forms = _hypernym_forms(hypernyms, self.hypernyms)
        self.of_leaf = {leaf: sorted(group) for leaf, group in pairs.groupby("concept").hypernym}
        self._true = {leaf: self._true_names(leaf) for leaf in self.leaves}

    def _true_names(self, leaf: str) -> frozenset[str]:
        of_leaf = self.of_leaf.get(leaf, [])
        return frozenset({self.names[leaf], *of_leaf, *(self.forms[h][0] for h in of_leaf)})

    def is_true(self, leaf: str, name: str) -> bool:
        """Whether a Yes answer to a question naming `name` is correct on an image of `leaf`."""
        return name in self._true[leaf]

    def may_negate(self, leaf: str, other: str) -> bool:
        """Whether leaf `other` can be `leaf`'s negative: another leaf whose name is not true of it."""
        return other != leaf and not self.is_true(leaf, self.names[other])

    def hypernym_text(self, template: str, hypernym: str) -> str:
        form, article = self.forms[hypernym]
        return question_text(template, article, form)


def _augment(
    tax: _Taxonomy, start: str, order: list[str], assigned: dict[str, str], holder: dict[str, str]
) -> bool:
    """Give `start` a negative along a shortest alternating path; False when there is none."""
    reached_from: dict[str, str] = {}  # negative → the leaf that reached it
    queue, visited = deque([start]), {start}
    while queue:
        leaf = queue.popleft()
        for other in order:
            if other in reached_from or not tax.may_negate(leaf, other):
                continue
            reached_from[other] = leaf
            if other not in holder:
                _reassign_path(other, start, reached_from, assigned, holder)
                return True
            if holder[other] not in visited:
                visited.add(holder[other])
                queue.append(holder[other])
    return False


def _reassign_path(
    free: str, start: str, reached_from: dict[str, str], assigned: dict[str, str], holder: dict[str, str]
) -> None:
    """Shift every negative along the path that ends at the unassigned negative `free`."""
    negative = free
    while True:
        leaf = reached_from[negative]
        previous = assigned.get(leaf)
        assigned[leaf], holder[negative] = negative, leaf
        if leaf == start:
            return
        negative = previous


def negative_leaves(tax: _Taxonomy, seed: int) -> dict[str, str]:
    """leaf → its negative leaf: one-to-one, no leaf its own negative, never a name true of it."""
    generator = rng(seed, "negative_leaves")
    leaves = tax.leaves
    drawn = [leaves[i] for i in generator.permutation(len(leaves))]
    order = [leaves[i] for i in generator.permutation(len(leaves))]
    assigned = {leaf: other for leaf, other in zip(leaves, drawn) if tax.may_negate(leaf, other)}
    holder = {other: leaf for leaf, other in assigned.items()}
    for leaf in leaves:
        if leaf not in assigned and not _augment(tax, leaf, order, assigned, holder):
            raise DataError(
                f"leaf negatives: no one-to-one assignment of {len(leaves)} leaves gives {leaf!r} "
                f"(named {tax.names[leaf]!r}) a negative leaf whose name is not true of it"
            )
    return assigned


def leaf_questions(tax: _Taxonomy, leaf: str, negative: str, template: str) -> list[dict[str, str]]:
    """The positive leaf question and the one asking about its negative leaf."""
    text = question_text(template, tax.articles[leaf], tax.names[leaf])
    negative_text = question_text(template, tax.articles[negative], tax.names[negative])
    return [_row(leaf, "leaf", leaf, "Yes", leaf, text), _row(leaf, "leaf", leaf, "No", negative, negative_text)]


def foil_candidates(tax: _Taxonomy, leaf: str) -> list[str]:
    """The hypernyms that may be `leaf`'s foil: none true of it by category name or question form."""
    return [h for h in tax.hypernyms if not tax.is_true(leaf, h) and not tax.is_true(leaf, tax.forms[h][0])]


def _foil_count(tax: _Taxonomy, leaf: str, candidates: list[str]) -> int:
    """How many of `leaf`'s positives get a foil: all, unless it has fewer candidates than positives."""
    return min(len(tax.of_leaf.get(leaf, [])), len(candidates))


def uniform_foils(tax: _Taxonomy, seed: int) -> dict[str, list[str]]:
    """leaf → its foils in the order of its sorted positives: a seeded draw without replacement per
    leaf (the paper's; kept byte-identical to the draw before `foil_balance` existed)."""
    foils = {}
    for leaf in tax.leaves:
        candidates = foil_candidates(tax, leaf)
        order = rng(seed, "negative_hypernym", leaf).permutation(len(candidates))
        foils[leaf] = [candidates[i] for i in order[: _foil_count(tax, leaf, candidates)]]
    return foils


def _foil_flow_graph(tax: _Taxonomy, seed: int, candidates: Mapping[str, list[str]]) -> nx.DiGraph:
    """source → leaf (capacity: its foil count) → foil hypernym (capacity 1: no foil twice per leaf,
    seeded cost 0..15) → sink (capacity: the hypernym's positive count, cost 0) or → overflow → sink
    (unbounded, at a cost above any sum of the random costs, so balance comes first)."""
    generator = rng(seed, "balanced_foils")
    graph = nx.DiGraph()
    total = 0
    for leaf in tax.leaves:
        count = _foil_count(tax, leaf, candidates[leaf])
        total += count
        graph.add_edge("source", ("leaf", leaf), capacity=count, weight=0)
        costs = generator.integers(0, _FOIL_COST_LEVELS, len(candidates[leaf]))
        for hypernym, cost in zip(candidates[leaf], costs):
            graph.add_edge(("leaf", leaf), ("foil", hypernym), capacity=1, weight=int(cost))
    positives = Counter(h for hypernyms in tax.of_leaf.values() for h in hypernyms)
    for hypernym in tax.hypernyms:
        graph.add_edge(("foil", hypernym), "sink", capacity=positives[hypernym], weight=0)
        graph.add_edge(("foil", hypernym), "overflow", weight=_FOIL_COST_LEVELS * total + 1)
    graph.add_edge("overflow", "sink", weight=0)
    graph.nodes["source"]["demand"], graph.nodes["sink"]["demand"] = -total, total
    return graph


def balanced_foils(tax: _Taxonomy, seed: int) -> dict[str, list[str]]:
    """leaf → its foils in the order of its sorted positives, assigned jointly so that each hypernym
    is a foil about as often as a positive (docs/protocol.md §5); which positive of a leaf gets which
    of its foils is a seeded permutation (it changes no count)."""
    candidates = {leaf: foil_candidates(tax, leaf) for leaf in tax.leaves}
    _, flow = nx.network_simplex(_foil_flow_graph(tax, seed, candidates))
    foils = {}
    for leaf in tax.leaves:
        chosen = [h for h in candidates[leaf] if flow[("leaf", leaf)][("foil", h)] == 1]
        order = rng(seed, "balanced_foil_order", leaf).permutation(len(chosen))
        foils[leaf] = [chosen[i] for i in order]
    return foils


def hypernym_questions(tax: _Taxonomy, leaf: str, template: str, foils: list[str]) -> list[dict[str, str]]:
    """A positive question per hypernym of the leaf, the i-th matched with the i-th of its `foils`."""
    rows = []
    for index, hypernym in enumerate(tax.of_leaf.get(leaf, [])):
        rows.append(_row(leaf, "hypernym", hypernym, "Yes", hypernym, tax.hypernym_text(template, hypernym)))
        if index < len(foils):
            negative = foils[index]
            rows.append(_row(leaf, "hypernym", hypernym, "No", negative, tax.hypernym_text(template, negative)))
    return rows


FOIL_DRAWS = {"balanced": balanced_foils, "uniform": uniform_foils}


def make_questions(
    concepts: pd.DataFrame,
    pairs: pd.DataFrame,
    questions: Questions,
    hypernyms: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """All questions of all leaves, sorted by question id. `hypernyms` (the columns of
    `hypernyms.tsv`) gives each hypernym's question form; None asks every hypernym by its name."""
    tax = _Taxonomy(concepts, pairs, hypernyms)
    template, seed = questions.template, questions.seed
    negatives = negative_leaves(tax, seed)
    foils = FOIL_DRAWS[questions.foil_balance](tax, seed)
    rows = [
        row
        for leaf in tax.leaves
        for row in leaf_questions(tax, leaf, negatives[leaf], template)
        + hypernym_questions(tax, leaf, template, foils[leaf])
    ]
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("question_id", ignore_index=True)


def build_questions(
    concepts_tsv: Path,
    pairs_tsv: Path,
    hypernyms_tsv: Path,
    questions: Questions,
    out_path: Path,
) -> None:
    """Write questions.tsv from concepts.tsv, pairs.tsv and hypernyms.tsv."""
    concepts = read_table(concepts_tsv, ["concept", "name", "article"])
    pairs = read_table(pairs_tsv, ["concept", "hypernym"])
    hypernyms = read_table(hypernyms_tsv, HYPERNYM_COLUMNS)
    write_tsv(make_questions(concepts, pairs, questions, hypernyms), out_path)
