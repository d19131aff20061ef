"""Deprivation conditions (docs/protocol.md §6): which (leaf, hypernym) pairs lose their questions in training.

Names: `none`, `full`, `random{pct}` (leaf-level, the default reading that reproduces the paper's
numbers), `random{pct}pair` (pair-level) and `systematic{N}`.
- random: for every hypernym h with n_h leaves, draw max(1, floor(n_h·pct/100)) of them (integer
  arithmetic, so no float rounding). Leaf-level: the union of drawn leaves loses all its hypernym
  pairs; pair-level: only the drawn (leaf, h) pairs go.
- systematic N: N categories, from `systematic_categories[N]` in the config or drawn with the seed;
  every leaf in any of them loses all its hypernym pairs.
The draw is keyed by (seed, percentage | N, hypernym) only: one removal per condition shared by all
training seeds, and `random50` / `random50pair` draw the same leaves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from taxvlm.data.errors import DataError
from taxvlm.seeding import rng
from taxvlm.settings.dataset import Conditions

_PATTERN = re.compile(r"(none|full)|random(\d+)(pair)?|systematic(\d+)")


@dataclass(frozen=True)
class Condition:
    kind: str  # none | full | random | systematic
    amount: int = 0  # percentage for random, N for systematic
    pair_level: bool = False


@dataclass(frozen=True)
class Removal:
    """The (leaf, hypernym) pairs whose questions leave training; categories for systematic."""

    pairs: frozenset[tuple[str, str]]
    categories: tuple[str, ...] = ()

    @property
    def leaves(self) -> list[str]:
        return sorted({leaf for leaf, _ in self.pairs})


def parse_condition(name: str) -> Condition:
    """`random30pair` → Condition('random', 30, True); an unknown name or a ratio above 1 is an error."""
    match = _PATTERN.fullmatch(name)
    if match is None:
        raise DataError(
            f"condition {name!r}: unknown; use none, full, random<pct>, random<pct>pair, systematic<N>"
        )
    fixed, pct, pair, n = match.groups()
    if fixed:
        return Condition(fixed)
    if pct is not None:
        if not 0 <= int(pct) <= 100:
            raise DataError(f"condition {name!r}: ratio {int(pct) / 100} is outside [0, 1]")
        return Condition("random", int(pct), pair is not None)
    return Condition("systematic", int(n))


def leaves_by_hypernym(pairs: pd.DataFrame) -> dict[str, list[str]]:
    return {str(h): sorted(group) for h, group in pairs.groupby("hypernym").concept}


def draw_count(n_leaves: int, pct: int) -> int:
    """max(1, floor(n_h · pct / 100))."""
    return max(1, n_leaves * pct // 100)


def random_draws(pairs: pd.DataFrame, pct: int, seed: int) -> dict[str, list[str]]:
    """The leaves drawn for every hypernym (sorted)."""
    return {
        hypernym: sorted(rng(seed, "random", pct, hypernym).choice(
            leaves, size=draw_count(len(leaves), pct), replace=False
        ).tolist())
        for hypernym, leaves in leaves_by_hypernym(pairs).items()
    }


def systematic_categories(n: int, hypernyms: list[str], conditions: Conditions) -> list[str]:
    """The configured list for N, else N drawn with the seed."""
    given = conditions.systematic_categories.get(str(n))
    if given is None:
        if n > len(hypernyms):
            raise DataError(f"systematic{n}: only {len(hypernyms)} hypernyms to choose from")
        drawn = rng(conditions.seed, "systematic", n).choice(hypernyms, n, replace=False)
        return sorted(drawn.tolist())
    unknown = sorted(set(given) - set(hypernyms))
    if unknown:
        raise DataError(f"conditions.systematic_categories.{n}: unknown hypernym(s) {unknown}")
    if len(set(given)) != n:
        raise DataError(f"conditions.systematic_categories.{n}: lists {len(set(given))} categories, not {n}")
    return sorted(given)


def _all_pairs_of(pairs: pd.DataFrame, leaves: set[str]) -> frozenset[tuple[str, str]]:
    return frozenset((c, h) for c, h in zip(pairs.concept, pairs.hypernym) if c in leaves)


def removal(name: str, pairs: pd.DataFrame, conditions: Conditions) -> Removal:
    """The pairs (and for systematic the categories) removed from training by condition `name`."""
    condition = parse_condition(name)
    seed = conditions.seed
    if condition.kind == "none":
        return Removal(frozenset())
    if condition.kind == "full":
        return Removal(_all_pairs_of(pairs, set(pairs.concept)))
    if condition.kind == "systematic":
        categories = systematic_categories(condition.amount, sorted(set(pairs.hypernym)), conditions)
        leaves = set(pairs.concept[pairs.hypernym.isin(categories)])
        return Removal(_all_pairs_of(pairs, leaves), tuple(categories))
    draws = random_draws(pairs, condition.amount, seed)
    if condition.pair_level:
        return Removal(frozenset((leaf, h) for h, leaves in draws.items() for leaf in leaves))
    return Removal(_all_pairs_of(pairs, {leaf for leaves in draws.values() for leaf in leaves}))
