"""Category-level contrasts: every held-out score beside its null, its twin and its upper bound, and
every verdict from the CI of a difference (docs/protocol.md §11).

Why not the headline's means: seeds share the split, the foils and the twin's weights, and nested
hypernyms share images, so rows (or seeds × categories) are not independent draws. The unit here is
the category (a held-out hypernym):
- `leaf_outcomes`: per run × readout × rule × test set × category × leaf, the fraction of the leaf's
  pairs (a positive hypernym question and its matched foil on one image) the rule gets both right;
  besides the readout's rules, `prior`: the paired rule on the no-image margins alone (what the word
  prior of the question texts scores, with no image at all);
- `hierarchical_bootstrap`: categories resampled, leaves within each resampled category, and seeds
  (each arm's, or one draw for both when the arms are the same runs), each level from its own stream,
  so a CI carries training variance and adding identical seeds cannot shrink it; the statistic is the
  mean over categories of the (difference of) leaf × seed means;
- `contrast_table`: for every block (run keys but init and seed, readout, rule) on the held-out test
  set: the pretrained score, its null (the same pairs on images of a leaf in neither hypernym), the
  twin's score and null, the text upper bound of both LMs, the prior, and the differences
  pretrained − twin, pretrained − null, twin − null and, for a shuffled block, original − shuffle,
  each with its bootstrap CI and a Wilcoxon signed-rank test over categories; all of it with and
  without the pairs whose leaf name contains the hypernym's word (`lexical_overlap` in pairs.tsv).
A verdict is `above` / `below` when the difference's CI excludes 0, else `no difference`; never from
two CIs overlapping.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from taxvlm.analysis.metrics import READOUT_RULES, RUN_KEYS, read_typed
from taxvlm.evaluation.decision import PAIR_KEYS, PREDICTION_COLUMNS, pair_sizes, paired
from taxvlm.io import read_tsv, write_tsv

PathLike = str | os.PathLike[str]
HELD_OUT, NULL, TEXT = "unseen", "null", "text"
PRIOR = "prior"  # the paired rule on margin_noimage: the question texts' word prior, no image
LEAF_KEYS: tuple[str, ...] = (*RUN_KEYS, "readout", "rule", "test_set", "category", "leaf")
LEAF_COLUMNS: tuple[str, ...] = (*LEAF_KEYS, "n_pairs", "pair_accuracy", "lexical_overlap")
BLOCK_KEYS: tuple[str, ...] = ("encoder", "lm", "condition", "shuffle", "objective", "readout", "rule")
PAIR_SETS: tuple[str, ...] = ("all", "no_overlap")
CONTRAST_COLUMNS: tuple[str, ...] = (
    *BLOCK_KEYS,
    "pairs",
    "contrast",
    "estimate",
    "ci_low",
    "ci_high",
    "p_wilcoxon",
    "n_categories",
    "n_leaves",
    "n_seeds",
    "verdict",
)
# A rule's chance pair accuracy for an answerer that knows nothing and has no bias: a paired rule
# picks one of two names (1/2); the absolute rule must answer both rows right (1/4).
RULE_CHANCE: dict[str, float] = {"absolute": 0.25, "paired": 0.5, "paired_calibrated": 0.5, PRIOR: 0.5}


def prediction_column(rule: str) -> str:
    return "prediction_prior" if rule == PRIOR else PREDICTION_COLUMNS[rule]


def leaf_outcomes(predictions: pd.DataFrame, rules: Sequence[str]) -> pd.DataFrame:
    """Per (rule, test_set, category, leaf) of one run's hypernym rows: `n_pairs` and `pair_accuracy`,
    for `rules` and `prior`. A pair is filed under its positive's category; rows without a partner
    on their image are not pairs and are left out."""
    rows = predictions[predictions["kind"] == "hypernym"]
    rows = rows[pair_sizes(rows) == 2]
    rows = rows.assign(margin=pd.to_numeric(rows["margin"]), margin_noimage=pd.to_numeric(rows["margin_noimage"]))
    rows = rows.assign(prediction_prior=paired(rows, rows["margin_noimage"]))
    keys = [rows[k] for k in PAIR_KEYS]
    frames = []
    for rule in (*rules, PRIOR):
        right = (rows["answer"] == rows[prediction_column(rule)]).groupby(keys).transform("all")
        positives = rows.assign(right=right, category=rows["asked"])[rows["answer"] == "Yes"]
        table = positives.groupby(["test_set", "category", "leaf"], sort=True)["right"].agg(
            n_pairs="size", pair_accuracy="mean"
        )
        frames.append(table.reset_index().assign(rule=rule))
    return pd.concat(frames, ignore_index=True)[["rule", "test_set", "category", "leaf", "n_pairs", "pair_accuracy"]]


def overlap_pairs(pairs: pd.DataFrame) -> set[tuple[str, str]]:
    """(leaf, hypernym) pairs whose leaf name contains the hypernym's word (pairs.tsv)."""
    flagged = pairs[pairs["lexical_overlap"].astype(str) == "True"]
    return set(zip(flagged["concept"], flagged["hypernym"]))


def collect_leaf_scores(
    runs: Iterable[Mapping[str, str]],
    upper_bounds: Iterable[Mapping[str, str]],
    pairs: pd.DataFrame,
    out_path: PathLike,
) -> pd.DataFrame:
    """leaf_scores.tsv: the leaf outcomes of every run (`runs`: run keys, `readout`, `path` to its
    predictions.tsv or naming.tsv) and of every text upper bound (`upper_bounds`: `lm`, `init`,
    `path`; its rows carry their readout, test set `text`, and empty encoder, condition, shuffle,
    objective and seed), each row flagged with its pair's `lexical_overlap`."""
    frames = []
    for run in runs:
        outcomes = leaf_outcomes(read_tsv(run["path"]), READOUT_RULES[run["readout"]])
        # run keys as strings, as leaf_scores.tsv reads back: the seed columns then sort alike in memory
        # and from the file, so the bootstrap's draws are the same either way
        frames.append(outcomes.assign(**{key: str(run[key]) for key in RUN_KEYS}, readout=run["readout"]))
    for bound in upper_bounds:
        table = read_tsv(bound["path"])
        for readout, rows in table.groupby("readout", sort=True):
            outcomes = leaf_outcomes(rows, READOUT_RULES[readout])
            blank = {key: "" for key in RUN_KEYS}
            frames.append(outcomes.assign(**blank | {"lm": bound["lm"], "init": bound["init"]}, readout=readout))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LEAF_COLUMNS)
    flagged = overlap_pairs(pairs)
    table["lexical_overlap"] = [(leaf, cat) in flagged for leaf, cat in zip(table["leaf"], table["category"])]
    table = table[list(LEAF_COLUMNS)].sort_values(list(LEAF_KEYS), kind="stable", ignore_index=True)
    write_tsv(table, out_path)
    return table


def read_leaf_scores(path: PathLike) -> pd.DataFrame:
    table = read_typed(path, ("n_pairs", "pair_accuracy"))
    return table.assign(lexical_overlap=table["lexical_overlap"].astype(str) == "True")


# --- the bootstrap -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    """One side of a contrast: per category, a leaves × seeds array of leaf pair accuracies (the
    leaves in the same order in every arm of a contrast), and the seeds' names."""

    categories: dict[str, np.ndarray]
    seeds: tuple[str, ...]


def aligned_arms(*scores: pd.DataFrame) -> list[Arm]:
    """The Arms of several sets of leaf scores (rows of one rule and test set each; columns category,
    leaf, seed, pair_accuracy) on the (category, leaf) rows they all have, in one order: a contrast
    compares the same leaves. A leaf missing in some seed of an arm is dropped (it would bias the
    mean towards the seeds that have it)."""
    wides = [
        s.pivot_table(index=["category", "leaf"], columns="seed", values="pair_accuracy", aggfunc="mean").dropna()
        for s in scores
    ]
    common = wides[0].index
    for wide in wides[1:]:
        common = common.intersection(wide.index)
    common = common.sort_values()
    arms = []
    for wide in wides:
        rows = wide.loc[common]
        categories = {str(c): g.to_numpy(dtype=float) for c, g in rows.groupby(level="category", sort=True)}
        arms.append(Arm(categories, tuple(str(s) for s in wide.columns)))
    return arms


@dataclass(frozen=True)
class Estimate:
    estimate: float
    ci_low: float
    ci_high: float
    p_wilcoxon: float
    n_categories: int
    n_leaves: int
    n_seeds: str


def hierarchical_bootstrap(
    a: Arm,
    b: Arm | None = None,
    same_runs: bool = False,
    draws: int = 10_000,
    seed: int = 0,
) -> Estimate:
    """Mean over categories of (a's leaf × seed mean − b's), b absent: a's alone; with its 95%
    percentile CI from resampling categories, leaves within them and seeds (`same_runs`: a and b are
    the same runs scored twice, e.g. a score and its null, so one seed draw serves both), and a
    Wilcoxon signed-rank test of the per-category differences against 0 (NaN for a single arm).

    The leaves of a category must be the same rows in both arms (same leaves, same order). Each level
    is drawn from its own random stream, so the category and leaf draws do not depend on the number of
    seeds: seeds that are copies of each other leave the CI exactly as it was.
    """
    names = sorted(a.categories if b is None else set(a.categories) & set(b.categories))
    if not names:
        return Estimate(math.nan, math.nan, math.nan, math.nan, 0, 0, _seed_count(a, b))
    arrays_a = [a.categories[c] for c in names]
    arrays_b = [b.categories[c] for c in names] if b is not None else None
    if arrays_b is not None and any(x.shape[0] != y.shape[0] for x, y in zip(arrays_a, arrays_b)):
        raise ValueError("the arms of a contrast must hold the same leaves of each category")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    n_cat = len(names)
    category_counts = streams[0].multinomial(n_cat, np.full(n_cat, 1 / n_cat), size=draws)
    seeds_a = _seed_weights(streams[2], arrays_a[0].shape[1], draws)
    if arrays_b is None:
        seeds_b = None
    elif same_runs:
        if arrays_b[0].shape[1] != arrays_a[0].shape[1]:
            raise ValueError("same_runs: both arms must hold the same seeds")
        seeds_b = seeds_a
    else:
        seeds_b = _seed_weights(streams[3], arrays_b[0].shape[1], draws)
    per_category = np.empty((draws, n_cat))
    for j, values_a in enumerate(arrays_a):
        n_leaves = values_a.shape[0]
        leaf_weights = streams[1].multinomial(n_leaves, np.full(n_leaves, 1 / n_leaves), size=draws) / n_leaves
        per_category[:, j] = np.einsum("dl,ls,ds->d", leaf_weights, values_a, seeds_a)
        if arrays_b is not None:
            per_category[:, j] -= np.einsum("dl,ls,ds->d", leaf_weights, arrays_b[j], seeds_b)
    boot = (category_counts * per_category).sum(axis=1) / n_cat
    differences = np.array(
        [x.mean() - (y.mean() if arrays_b is not None else 0.0) for x, y in zip(arrays_a, arrays_b or arrays_a)]
    )
    return Estimate(
        float(differences.mean()),
        float(np.percentile(boot, 2.5)),
        float(np.percentile(boot, 97.5)),
        _wilcoxon(differences) if arrays_b is not None else math.nan,
        n_cat,
        int(sum(x.shape[0] for x in arrays_a)),
        _seed_count(a, b),
    )


def _seed_weights(stream: np.random.Generator, n_seeds: int, draws: int) -> np.ndarray:
    return stream.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=draws) / n_seeds


def _seed_count(a: Arm, b: Arm | None) -> str:
    return str(len(a.seeds)) if b is None else f"{len(a.seeds)}/{len(b.seeds)}"


def _wilcoxon(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p over categories; 1.0 when every difference is 0."""
    if len(differences) < 2 or np.allclose(differences, 0.0):
        return 1.0 if len(differences) >= 2 else math.nan
    return float(stats.wilcoxon(differences).pvalue)


def verdict(estimate: Estimate, chance: float | None = None) -> str:
    """A difference (`chance` None): above / below / no difference as its CI excludes 0 or not; a
    single score: above / below / at chance as its CI excludes the rule's `chance` or not."""
    if math.isnan(estimate.ci_low):
        return "not formed"
    reference = 0.0 if chance is None else chance
    suffix = "" if chance is None else " chance"
    if estimate.ci_low > reference:
        return f"above{suffix}"
    if estimate.ci_high < reference:
        return f"below{suffix}"
    return "no difference" if chance is None else "at chance"


# --- the contrasts of a grid ---------------------------------------------------------------------

SCORE_CONTRASTS: tuple[str, ...] = (
    "pretrained",
    "pretrained_null",
    "twin",
    "twin_null",
    "upper_bound",
    "twin_upper_bound",
)
# difference → (left arm, right arm, whether both arms are the same runs: one seed draw serves both)
DIFFERENCES: dict[str, tuple[str, str, bool]] = {
    "pretrained-twin": ("pretrained", "twin", False),
    "pretrained-null": ("pretrained", "pretrained_null", True),
    "twin-null": ("twin", "twin_null", True),
    "original-shuffle": ("original", "pretrained", False),
}


def select_rows(scores: pd.DataFrame, **where: str) -> pd.DataFrame:
    """The rows whose columns equal the given values."""
    mask = np.ones(len(scores), dtype=bool)
    for key, value in where.items():
        mask &= (scores[key] == value).to_numpy()
    return scores[mask]


def _row(block: Mapping[str, str], pairs: str, name: str, estimate: Estimate, result: str) -> dict[str, object]:
    return dict(block) | {"pairs": pairs, "contrast": name, **vars(estimate), "verdict": result}


def block_contrasts(
    scores: pd.DataFrame, block: Mapping[str, str], pairs: str, draws: int, seed: int
) -> list[dict[str, object]]:
    """The contrasts of one block (module docstring) on one pair set; an arm absent from the grid (no
    twin, no null, no upper bound) gives no row, and one whose rows share no leaf with the pretrained
    arm gives a row whose verdict says `not formed`."""
    runs = select_rows(scores, **{k: block[k] for k in BLOCK_KEYS})
    arms = {
        "pretrained": select_rows(runs, init="pretrained", test_set=HELD_OUT),
        "pretrained_null": select_rows(runs, init="pretrained", test_set=NULL),
        "twin": select_rows(runs, init="random", test_set=HELD_OUT),
        "twin_null": select_rows(runs, init="random", test_set=NULL),
    }
    text = select_rows(scores, test_set=TEXT, lm=block["lm"], readout=block["readout"], rule=block["rule"])
    arms["upper_bound"] = select_rows(text, init="pretrained")
    arms["twin_upper_bound"] = select_rows(text, init="random")
    if block["shuffle"] != "original":
        arms["original"] = select_rows(
            scores, **{k: block[k] for k in BLOCK_KEYS} | {"shuffle": "original"}, init="pretrained",
            test_set=HELD_OUT,
        )  # fmt: skip
    if arms["pretrained"].empty:
        return []
    chance = RULE_CHANCE[block["rule"]]
    rows = []
    for name in SCORE_CONTRASTS:
        if arms[name].empty:
            continue
        # every score on the pretrained arm's leaves, so the columns of a row compare the same pairs
        one = aligned_arms(arms["pretrained"], arms[name])[-1]
        estimate = hierarchical_bootstrap(one, draws=draws, seed=seed)
        rows.append(_row(block, pairs, name, estimate, verdict(estimate, chance)))
    for name, (left, right, same_runs) in DIFFERENCES.items():
        if left not in arms or arms[left].empty or arms[right].empty:
            continue
        a, b = aligned_arms(arms[left], arms[right])
        estimate = hierarchical_bootstrap(a, b, same_runs=same_runs, draws=draws, seed=seed)
        rows.append(_row(block, pairs, name, estimate, verdict(estimate)))
    return rows


def contrast_table(leaf_scores: pd.DataFrame, draws: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """contrasts.tsv: every block's contrasts, on all pairs and without the lexical-overlap pairs."""
    runs = leaf_scores[leaf_scores["test_set"] != TEXT]
    blocks = runs[list(BLOCK_KEYS)].drop_duplicates().sort_values(list(BLOCK_KEYS), ignore_index=True)
    rows = []
    for pairs in PAIR_SETS:
        scores = leaf_scores if pairs == "all" else leaf_scores[~leaf_scores["lexical_overlap"]]
        for block in blocks.to_dict("records"):
            rows += block_contrasts(scores, block, pairs, draws, seed)
    return pd.DataFrame(rows, columns=list(CONTRAST_COLUMNS))


# --- did each run learn its trained task ----------------------------------------------------------


def trained_task(runs: Iterable[Mapping[str, str]]) -> pd.DataFrame:
    """Per run: its last validation score on the trained task (`val_curve.tsv`: yes/no runs' accuracy
    on the validation leaf questions, caption runs' leaf naming), its n, and `learned`: the Wilson 95%
    interval of that accuracy lies above the task's chance (0.5). A contrast whose arm did not learn
    is not a result."""
    rows = []
    for run in runs:
        curve = read_typed(run["val_curve"], ("step", "epoch", "n", "accuracy"))
        last = curve.sort_values("step").iloc[-1]
        n, accuracy = int(last["n"]), float(last["accuracy"])
        low, high = proportion_confint(round(accuracy * n), n, method="wilson") if n else (math.nan, math.nan)
        rows.append(
            {k: run[k] for k in RUN_KEYS}
            | {"val_n": n, "val_accuracy": accuracy, "val_ci_low": low, "val_ci_high": high, "learned": bool(low > 0.5)}
        )
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "val_n", "val_accuracy", "val_ci_low", "val_ci_high", "learned"])


def write_contrasts(
    contrasts: pd.DataFrame, trained: pd.DataFrame, contrasts_path: PathLike, trained_path: PathLike
) -> None:
    write_tsv(contrasts, contrasts_path)
    write_tsv(trained, trained_path)
