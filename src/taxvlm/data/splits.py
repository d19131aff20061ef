"""Seeded per-concept train / val / test split of sorted file names (docs/protocol.md §4: 70 / 5 / 25).

**Decision (rounding):** the counts of a concept with n images are the largest-remainder
(Hamilton) apportionment of n by the fractions: every split gets floor(n·f), and the images left
over go one each to the splits with the largest remainders (ties: larger fraction first, then
train, val, test).
**Decision (minimum of one):** when n is at least the number of splits with a positive fraction,
every such split gets at least one image; a split the apportionment left empty takes one from
the split with the most images (ties: train, val, test). The validation split exists to choose
training length and learning rate on leaf questions, so it must not be empty for the few views
of a Tux Paint stamp. With 70/5/25 this gives 5/1/2 for 8 images, 2/1/1 for 4 and 1/0/1 for 2;
every n ≥ 12 (all of THINGS) is the plain apportionment (8/1/3 for 12).
A concept is usable only if it gets at least one train and one test image and has at least
`min_images` images; the others are excluded by the dataset builder with a warning.
Which images land where: the sorted file names are permuted by `rng(seed, "split", concept)`,
then cut train | val | test, so the split never depends on listing order or on other concepts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from taxvlm.data.errors import DataError
from taxvlm.seeding import rng
from taxvlm.settings.dataset import Split

SPLITS = ("train", "val", "test")


def fractions_from(split: Split) -> dict[str, float]:
    """The configured fractions (each in [0, 1], as the settings check), checked to sum to 1."""
    fractions = {name: float(getattr(split.fractions, name)) for name in SPLITS}
    if not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-9):
        raise DataError(f"split.fractions must sum to 1, got {fractions}")
    return fractions


def split_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder apportionment of n images with a minimum of one per used split
    (see the module docstring)."""
    exact = {name: n * fractions[name] for name in SPLITS}
    counts = {name: math.floor(exact[name]) for name in SPLITS}
    by_remainder = sorted(
        SPLITS, key=lambda name: (-(exact[name] - counts[name]), -fractions[name], SPLITS.index(name))
    )
    for name in by_remainder[: n - sum(counts.values())]:
        counts[name] += 1
    used = [name for name in SPLITS if fractions[name] > 0]
    if n >= len(used):
        for name in used:
            if counts[name] == 0:
                donor = max(SPLITS, key=lambda other: (counts[other], -SPLITS.index(other)))
                counts[donor] -= 1
                counts[name] += 1
    return counts


def is_splittable(n: int, fractions: Mapping[str, float], min_images: int) -> bool:
    counts = split_counts(n, fractions)
    return n >= min_images and counts["train"] >= 1 and counts["test"] >= 1


def assign_splits(
    concept: str, file_names: Sequence[str], fractions: Mapping[str, float], seed: int
) -> dict[str, str]:
    """Map each file name of one concept to `train`, `val` or `test`."""
    names = sorted(file_names)
    order = rng(seed, "split", concept).permutation(len(names))
    counts = split_counts(len(names), fractions)
    labels = [name for name in SPLITS for _ in range(counts[name])]
    return {names[index]: label for index, label in zip(order, labels, strict=True)}
