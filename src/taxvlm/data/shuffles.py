"""Counterfactual shuffles (protocol §4): a map σ over leaves; the questions of leaf s are shown on
the images of σ(s).

- `original`: σ = identity.
- `across`: a seeded uniform random derangement of all leaves (rejection sampling).
- `within`: leaves are grouped by their exact hypernym set and deranged inside each group.
  A group of one leaf cannot be deranged, so singleton groups are folded, one at a time in sorted
  order, into the best other group: **decision** — prefer a group whose hypernym set is a superset
  (the smallest such set: the most specific one), then a subset (the largest), then the largest
  overlap; ties go to the smaller set, then the alphabetically first set. The merged group keeps
  the target's hypernym set as its label, so the folding repeats until no singleton is left.
Every map is checked to be one-to-one and, except `original`, to have no fixed point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from taxvlm.data.errors import DataError
from taxvlm.seeding import rng

SHUFFLES = ("original", "across", "within")
Group = tuple[frozenset[str], list[str]]  # (hypernym set label, member leaves)


def derangement(items: Sequence[str], generator: np.random.Generator) -> dict[str, str]:
    """A uniform random permutation without fixed points (needs at least two distinct items)."""
    if len(items) < 2:
        raise DataError(f"cannot derange fewer than two leaves: {list(items)}")
    while True:
        order = generator.permutation(len(items))
        if not np.any(order == np.arange(len(items))):
            return {items[i]: items[j] for i, j in enumerate(order)}


def _fold_key(label: frozenset[str], other: frozenset[str]) -> tuple:
    """Sort key for where a singleton with hypernym set `label` goes (smallest key wins)."""
    if other > label:
        preference = (0, len(other))
    elif other < label:
        preference = (1, -len(other))
    else:
        preference = (2, -len(label & other), len(other))
    return (*preference, sorted(other))


def within_groups(pairs: pd.DataFrame) -> list[Group]:
    """Groups of leaves sharing a hypernym set, with singletons folded (module docstring)."""
    sets = pairs.groupby("concept").hypernym.apply(frozenset)
    members: dict[frozenset[str], list[str]] = {}
    for leaf, label in sorted(sets.items()):
        members.setdefault(label, []).append(str(leaf))
    groups = sorted(members.items(), key=lambda group: sorted(group[0]))
    while len(groups) > 1 and (singletons := [g for g in groups if len(g[1]) == 1]):
        label, lonely = min(singletons, key=lambda group: (len(group[0]), sorted(group[0])))
        others = [g for g in groups if g[0] != label]
        target = min(others, key=lambda group: _fold_key(label, group[0]))
        groups = [g for g in others if g[0] != target[0]] + [(target[0], sorted(target[1] + lonely))]
    return sorted(groups, key=lambda group: sorted(group[0]))


def check_derangement(mapping: Mapping[str, str], allow_fixed_points: bool = False) -> None:
    """σ must be a bijection of the leaves onto themselves without fixed points."""
    if sorted(mapping.values()) != sorted(mapping):
        raise DataError("shuffle map is not one-to-one onto the leaves")
    fixed = sorted(leaf for leaf, image in mapping.items() if leaf == image)
    if fixed and not allow_fixed_points:
        raise DataError(f"shuffle map has fixed points: {fixed[:10]}")


def shuffle_map(shuffle: str, pairs: pd.DataFrame, shuffles_cfg: Mapping[str, Any]) -> dict[str, str]:
    """σ for `shuffle` over the leaves of `pairs`, checked (see `check_derangement`)."""
    seed = int(shuffles_cfg.get("seed", 0))
    leaves = sorted(set(pairs.concept))
    if shuffle == "original":
        mapping = {leaf: leaf for leaf in leaves}
    elif shuffle == "across":
        mapping = derangement(leaves, rng(seed, "across"))
    elif shuffle == "within":
        mapping = {}
        for label, members in within_groups(pairs):
            mapping.update(derangement(members, rng(seed, "within", *sorted(label))))
    else:
        raise DataError(f"shuffle {shuffle!r}: unknown; use one of {list(SHUFFLES)}")
    check_derangement(mapping, allow_fixed_points=shuffle == "original")
    return mapping
