"""Counterfactual shuffles (docs/protocol.md §7): a map σ over leaves; the questions of leaf s are shown on
the images of σ(s).

- `original`: σ = identity.
- `across`: a seeded uniform random derangement of all leaves (rejection sampling).
- `within` (as the paper's code does it): leaves are grouped by their exact hypernym set. A group
  of one leaf cannot be deranged, so each singleton moves into the most specific existing
  non-singleton group whose hypernym set is a subset of its own (most specific = the largest
  set; ties go to the group with the fewest members, then to the alphabetically first set).
  Targets are the groups of the exact grouping, so the order in which singletons move does not
  matter. Leaves with no such group are orphans and are deranged among themselves. **Decision
  (a lone orphan):** it joins a 3-cycle: a seeded 2-cycle a ↔ b of the grouped derangement
  becomes a → orphan → b → a (a seeded leaf a of any cycle when no 2-cycle exists, which
  lengthens that cycle by one). Each group, with the singletons moved into it, is deranged
  inside itself; an image keeps its hypernym set unless a singleton or an orphan is involved.
Every map is checked to be one-to-one and, except `original`, to have no fixed point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from taxvlm.data.errors import DataError
from taxvlm.seeding import rng
from taxvlm.settings.dataset import Shuffles

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


def _fold_target(label: frozenset[str], groups: Mapping[frozenset[str], list[str]]) -> frozenset[str] | None:
    """The group a singleton with hypernym set `label` moves into, None for an orphan."""
    subsets = [other for other, members in groups.items() if len(members) > 1 and other < label]
    if not subsets:
        return None
    return min(subsets, key=lambda other: (-len(other), len(groups[other]), sorted(other)))


def within_groups(pairs: pd.DataFrame) -> tuple[list[Group], list[str]]:
    """Groups of leaves sharing a hypernym set with the singletons moved in, and the orphans
    (module docstring)."""
    sets = pairs.groupby("concept").hypernym.apply(frozenset)
    exact: dict[frozenset[str], list[str]] = {}
    for leaf, label in sorted(sets.items()):
        exact.setdefault(label, []).append(str(leaf))
    merged = {label: list(members) for label, members in exact.items() if len(members) > 1}
    orphans = []
    for label, members in exact.items():
        if len(members) == 1:
            target = _fold_target(label, exact)
            if target is None:
                orphans += members
            else:
                merged[target] += members
    groups = [(label, sorted(members)) for label, members in merged.items()]
    return sorted(groups, key=lambda group: sorted(group[0])), sorted(orphans)


def _add_lone_orphan(mapping: dict[str, str], orphan: str, generator: np.random.Generator) -> None:
    """Put the one orphan into a 3-cycle made from a 2-cycle (module docstring)."""
    if not mapping:
        raise DataError(f"within shuffle: the only leaf {orphan!r} cannot be deranged")
    leaves = sorted(mapping)
    two_cycles = [leaf for leaf in leaves if mapping[mapping[leaf]] == leaf]
    candidates = two_cycles or leaves
    leaf = candidates[int(generator.integers(len(candidates)))]
    mapping[orphan], mapping[leaf] = mapping[leaf], orphan


def within_map(pairs: pd.DataFrame, seed: int) -> dict[str, str]:
    """σ for `within`: derangements inside the groups and among the orphans."""
    groups, orphans = within_groups(pairs)
    mapping: dict[str, str] = {}
    for label, members in groups:
        mapping.update(derangement(members, rng(seed, "within", *sorted(label))))
    if len(orphans) == 1:
        _add_lone_orphan(mapping, orphans[0], rng(seed, "within", "lone orphan"))
    elif orphans:
        mapping.update(derangement(orphans, rng(seed, "within", "orphans")))
    return mapping


def check_derangement(mapping: Mapping[str, str], allow_fixed_points: bool = False) -> None:
    """σ must be a bijection of the leaves onto themselves without fixed points."""
    if sorted(mapping.values()) != sorted(mapping):
        raise DataError("shuffle map is not one-to-one onto the leaves")
    fixed = sorted(leaf for leaf, image in mapping.items() if leaf == image)
    if fixed and not allow_fixed_points:
        raise DataError(f"shuffle map has fixed points: {fixed[:10]}")


def shuffle_map(shuffle: str, pairs: pd.DataFrame, shuffles: Shuffles) -> dict[str, str]:
    """σ for `shuffle` over the leaves of `pairs`, checked (see `check_derangement`)."""
    seed = shuffles.seed
    leaves = sorted(set(pairs.concept))
    if shuffle == "original":
        mapping = {leaf: leaf for leaf in leaves}
    elif shuffle == "across":
        mapping = derangement(leaves, rng(seed, "across"))
    elif shuffle == "within":
        mapping = within_map(pairs, seed)
    else:
        raise DataError(f"shuffle {shuffle!r}: unknown; use one of {list(SHUFFLES)}")
    check_derangement(mapping, allow_fixed_points=shuffle == "original")
    return mapping
