"""The within-shuffle as the paper's code does it (docs/protocol.md §7), on a hand-made taxonomy."""

from __future__ import annotations

import pandas as pd
import pytest

from taxvlm.data.errors import DataError
from taxvlm.data.shuffles import shuffle_map, within_groups
from taxvlm.settings.dataset import Shuffles

ANIMAL, MAMMAL_PET, BIRD, PET = (
    frozenset({"animal"}), frozenset({"animal", "mammal", "pet"}), frozenset({"animal", "bird"}),
    frozenset({"animal", "pet"}),
)
SETS = {
    "a1": ANIMAL, "a2": ANIMAL,
    "m1": MAMMAL_PET, "m2": MAMMAL_PET,
    "b1": BIRD, "b2": BIRD, "b3": BIRD,
    "p1": PET, "p2": PET,
    # singletons
    "t": frozenset({"animal", "mammal"}),  # subset group {animal}; superset group {animal, mammal, pet}
    "s": frozenset({"animal", "bird", "pet"}),  # two largest subsets tie; {animal, pet} has fewer members
    "o1": frozenset({"tool"}),  # no subset group: orphans
    "o2": frozenset({"vehicle"}),
}


def _pairs(sets: dict[str, frozenset[str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(leaf, hypernym) for leaf, label in sets.items() for hypernym in sorted(label)],
        columns=["concept", "hypernym"],
    )


def _cycle(mapping: dict[str, str], start: str) -> list[str]:
    cycle, leaf = [start], mapping[start]
    while leaf != start:
        cycle.append(leaf)
        leaf = mapping[leaf]
    return cycle


def test_singletons_move_into_the_most_specific_subset_group() -> None:
    """The old code moved `t` into the superset group {animal, mammal, pet}."""
    groups, orphans = within_groups(_pairs(SETS))
    assert dict(groups) == {
        ANIMAL: ["a1", "a2", "t"],
        MAMMAL_PET: ["m1", "m2"],
        BIRD: ["b1", "b2", "b3"],
        PET: ["p1", "p2", "s"],
    }
    assert orphans == ["o1", "o2"]


@pytest.mark.parametrize("seed", range(5))
def test_within_map_deranges_groups_and_orphans(seed: int) -> None:
    groups, _ = within_groups(_pairs(SETS))
    sigma = shuffle_map("within", _pairs(SETS), Shuffles(seed=seed))
    assert sorted(sigma) == sorted(sigma.values()) == sorted(SETS)
    assert all(leaf != image for leaf, image in sigma.items())
    for _, members in groups:
        assert {sigma[leaf] for leaf in members} == set(members)
    assert sigma["o1"] == "o2" and sigma["o2"] == "o1"


@pytest.mark.parametrize("seed", range(5))
def test_a_lone_orphan_joins_a_three_cycle(seed: int) -> None:
    sets = {leaf: label for leaf, label in SETS.items() if leaf != "o2"}
    groups, orphans = within_groups(_pairs(sets))
    group_of = {leaf: label for label, members in groups for leaf in members}
    sigma = shuffle_map("within", _pairs(sets), Shuffles(seed=seed))
    assert orphans == ["o1"]
    assert sorted(sigma) == sorted(sigma.values()) and all(leaf != image for leaf, image in sigma.items())
    cycle = _cycle(sigma, "o1")
    assert len(cycle) == 3
    first, second = (leaf for leaf in cycle if leaf != "o1")
    assert group_of[first] == group_of[second]  # was a 2-cycle inside one group
    assert sigma == shuffle_map("within", _pairs(sets), Shuffles(seed=seed))


def test_a_single_leaf_cannot_be_shuffled() -> None:
    with pytest.raises(DataError, match="cannot be deranged"):
        shuffle_map("within", _pairs({"o1": frozenset({"tool"})}), Shuffles(seed=0))
