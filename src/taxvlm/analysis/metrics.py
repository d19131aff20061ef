"""Per-category scores of the forced-choice evaluation, the majority baseline and headline means.

Everything downstream (figures, tables, statistics) reads the one tidy table written by
`collect_metrics`: one row per run × readout × decision rule × test set × category, where the category
is the `asked` column (the hypernym, or the leaf, the question is about) — docs/protocol.md §11. The readout is
how a run's answers were read: `yesno` (predictions.tsv: the forced-choice Yes/No margins, runs trained
on the yes/no objective) or `naming` (naming.tsv: naming by likelihood, `taxvlm.evaluation.readouts`, any
objective; only the paired rules, the absolute one has no meaning for a likelihood). Every rule
(`taxvlm.evaluation.decision.RULES`: absolute, the paper's; paired; paired_calibrated) gets the same scores; the
majority baseline does not depend on the rule. Besides them, `pair_accuracy`: the fraction of the
category's pairs (positive question + its matched negative on one image, filed under the positive's
category) in which the rule answers both questions right; under the paired rules that is how often the
positive's (calibrated) margin beats its negative's. `n_unpaired` counts the category's rows without a
partner (they keep the absolute prediction under every rule).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import f1_score

from taxvlm.data.conditions import parse_condition
from taxvlm.evaluation.decision import NAMING_RULES, PAIR_KEYS, PREDICTION_COLUMNS, RULES, pair_sizes
from taxvlm.io import read_tsv, write_tsv

RUN_KEYS: tuple[str, ...] = ("encoder", "lm", "init", "condition", "shuffle", "objective", "seed")
HEADLINE_KEYS: tuple[str, ...] = (*RUN_KEYS[:-1], "condition_family", "pct_deprived", "readout", "rule", "test_set")
# readout → the decision rules it is scored under
READOUT_RULES: dict[str, tuple[str, ...]] = {"yesno": RULES, "naming": NAMING_RULES}
TEST_SET_ORDER: tuple[str, ...] = ("leaf", "seen", "unseen", "null")
SHUFFLE_ORDER: tuple[str, ...] = ("original", "within", "across")
CATEGORY_KEYS: tuple[str, ...] = ("test_set", "kind", "category")
SCORE_COLUMNS: tuple[str, ...] = (
    "n",
    "n_yes",
    "n_no",
    "macro_f1",
    "accuracy",
    "majority_label",
    "majority_macro_f1",
    "majority_accuracy",
)
PAIR_COLUMNS: tuple[str, ...] = ("n_pairs", "n_unpaired", "pair_accuracy")
METRICS_COLUMNS: tuple[str, ...] = (
    *RUN_KEYS,
    "condition_family",
    "pct_deprived",
    "readout",
    "rule",
    "test_set",
    "kind",
    "category",
    *SCORE_COLUMNS,
    *PAIR_COLUMNS,
)
HEADLINE_COLUMNS: tuple[str, ...] = (
    *HEADLINE_KEYS,
    "n",
    "n_seeds",
    "n_categories",
    "macro_f1",
    "sd",
    "ci_low",
    "ci_high",
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "pair_accuracy",
    "pair_ci_low",
    "pair_ci_high",
    "n_pairs",
    "n_unpaired",
    "majority_macro_f1",
    "majority_accuracy",
)
_INTEGER_COLUMNS: tuple[str, ...] = ("seed", "n", "n_yes", "n_no", "n_pairs", "n_unpaired")
_FLOAT_COLUMNS: tuple[str, ...] = (
    "pct_deprived",
    "macro_f1",
    "accuracy",
    "majority_macro_f1",
    "majority_accuracy",
    "pair_accuracy",
)


def condition_axis(condition: str, n_categories: int) -> tuple[str, float]:
    """(family, % deprived) of a condition name: the x-axis of the deprivation figure (docs/protocol.md §6).

    `none` is 0 and `full` is 100; `randomR`/`randomRpair` remove R% of each category's leaves;
    `systematicN` removes N whole categories out of `n_categories` (x = 100·N/n_categories).
    """
    parsed = parse_condition(condition)
    if parsed.kind in ("none", "full"):
        return parsed.kind, 0.0 if parsed.kind == "none" else 100.0
    if parsed.kind == "random":
        return ("randompair" if parsed.pair_level else "random"), float(parsed.amount)
    if n_categories <= 0:
        raise ValueError("n_categories must be positive for systematic conditions")
    return "systematic", 100.0 * parsed.amount / n_categories


def majority_label(y_true: Sequence[str]) -> str:
    """The most frequent gold label; a tie goes to the alphabetically first label (`No` before `Yes`).

    The tie-break cannot change the baseline's score: with equal counts, predicting either class gives
    the same accuracy (0.5) and the same macro-F1 (1/3) by symmetry.
    """
    counts = pd.Series(list(y_true)).value_counts()
    return str(min(counts.index[counts == counts.max()]))


def category_scores(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float | int | str]:
    """Scores of one category in one test set, and of its majority-class baseline.

    Macro-F1 uses sklearn's label set (classes present in y_true ∪ y_pred): a category whose gold
    answers are all one class scores 1.0 when every prediction is right, and is halved by the absent
    class's F1 of 0 as soon as one prediction is wrong.
    """
    y_true, y_pred = list(y_true), list(y_pred)
    if not y_true:
        raise ValueError("a category needs at least one example")
    baseline = [majority_label(y_true)] * len(y_true)
    return {
        "n": len(y_true),
        "n_yes": y_true.count("Yes"),
        "n_no": y_true.count("No"),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0.0)),
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "majority_label": baseline[0],
        "majority_macro_f1": float(f1_score(y_true, baseline, average="macro", zero_division=0.0)),
        "majority_accuracy": float(np.mean(np.asarray(y_true) == np.asarray(baseline))),
    }


def pair_scores(predictions: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (test_set, kind, category): the number of pairs filed under the category (its positive's
    `asked`) and the fraction of them in which prediction `column` gets both rows right."""
    both = predictions[pair_sizes(predictions) == 2]
    right = (both["answer"] == both[column]).groupby([both[k] for k in PAIR_KEYS]).transform("all")
    positives = both.assign(right=right, category=both["asked"])[both["answer"] == "Yes"]
    return positives.groupby(list(CATEGORY_KEYS)).agg(n_pairs=("right", "size"), pair_accuracy=("right", "mean"))


def score_predictions(predictions: pd.DataFrame, rules: Sequence[str] = RULES) -> pd.DataFrame:
    """One row per (rule, test_set, kind, asked) of a predictions (or naming) table under `rules`;
    categories without rows are absent, and a category that is never a pair's positive has no pairs
    (pair_accuracy NaN)."""
    predictions = predictions.assign(category=predictions["asked"])
    unpaired = (pair_sizes(predictions) == 1).groupby([predictions[k] for k in CATEGORY_KEYS]).sum()
    frames = []
    for rule in rules:
        column = PREDICTION_COLUMNS[rule]
        scores = pd.DataFrame(
            [
                dict(zip(CATEGORY_KEYS, keys)) | category_scores(group["answer"], group[column])
                for keys, group in predictions.groupby(list(CATEGORY_KEYS), sort=True)
            ],
            columns=[*CATEGORY_KEYS, *SCORE_COLUMNS],
        ).set_index(list(CATEGORY_KEYS))
        table = scores.assign(n_unpaired=unpaired).join(pair_scores(predictions, column))
        frames.append(table.fillna({"n_pairs": 0}).astype({"n_pairs": int}).reset_index().assign(rule=rule))
    return pd.concat(frames, ignore_index=True)


def read_runs(runs: Iterable[dict], test_sets: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-example prediction rows of many runs, each tagged with its run keys, and `correct` under
    the absolute rule (`prediction`), the paper's: the mixed-effects model stays on it."""
    frames = []
    for run in runs:
        frame = read_tsv(run["path"])
        if test_sets is not None:
            frame = frame[frame["test_set"].isin(test_sets)]
        frames.append(frame.assign(**{key: run[key] for key in RUN_KEYS}))
    table = pd.concat(frames, ignore_index=True)
    return table.assign(correct=(table["answer"] == table["prediction"]).astype(int))


def collect_metrics(runs: Sequence[dict], out_path: str | os.PathLike[str], n_categories: int) -> pd.DataFrame:
    """The tidy metrics table of all runs (`results/analysis/metrics.tsv`).

    `runs`: dicts with the run keys (encoder, lm, init, condition, shuffle, objective, seed), `readout`
    (`yesno` or `naming`) and `path` to the run's predictions.tsv or naming.tsv. `n_categories`
    (number of hypernyms in the dataset) scales the x-axis of systematic conditions.
    """
    frames = []
    for run in runs:
        scores = score_predictions(read_tsv(run["path"]), READOUT_RULES[run["readout"]])
        frames.append(scores.assign(**run_columns(run, n_categories)))
    table = pd.concat(frames, ignore_index=True)[list(METRICS_COLUMNS)]
    table = table.sort_values([*RUN_KEYS, "readout", "rule", *CATEGORY_KEYS], kind="stable", ignore_index=True)
    write_tsv(table, out_path)
    return table


def run_columns(run: dict, n_categories: int) -> dict[str, object]:
    """A run's key columns in metrics.tsv: its run keys, condition axis and readout."""
    family, pct = condition_axis(run["condition"], n_categories)
    return {key: run[key] for key in RUN_KEYS} | {
        "condition_family": family,
        "pct_deprived": pct,
        "readout": run["readout"],
    }


def read_typed(path: str | os.PathLike[str], numeric: Iterable[str]) -> pd.DataFrame:
    """A pipeline table with the named columns numeric again (blank cells → NaN), the rest strings."""
    frame = read_tsv(path)
    return frame.assign(**{c: pd.to_numeric(frame[c].replace("", np.nan)) for c in numeric if c in frame})


def read_metrics(path: str | os.PathLike[str]) -> pd.DataFrame:
    """metrics.tsv with its numeric columns typed (pipeline tables are read as strings)."""
    return read_typed(path, (*_INTEGER_COLUMNS, *_FLOAT_COLUMNS))


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """95% CI of a mean, t(0.975, n−1)·sd/√n (docs/protocol.md §11); NaN bounds when n < 2."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return float(values.mean()) - half, float(values.mean()) + half


def headline(metrics: pd.DataFrame, keys: Sequence[str] = HEADLINE_KEYS) -> pd.DataFrame:
    """Means over categories × seeds per `keys` (by default: encoder, lm, init, condition, shuffle,
    objective, readout, rule, test_set), each
    score with its t-based 95% CI: macro-F1, accuracy and pair accuracy (over the categories that have
    pairs).

    Unweighted: every category counts once per seed whatever its size. The majority baseline is averaged
    the same way so it can be drawn alongside.
    """
    rows = []
    for values, group in metrics.groupby(list(keys), sort=True):
        low, high = t_interval(group["macro_f1"])
        accuracy_low, accuracy_high = t_interval(group["accuracy"])
        pair_accuracy = group["pair_accuracy"].dropna()
        pair_low, pair_high = t_interval(pair_accuracy)
        rows.append(
            dict(zip(keys, values))
            | {
                "n": len(group),
                "n_seeds": group["seed"].nunique(),
                "n_categories": group["category"].nunique(),
                "macro_f1": group["macro_f1"].mean(),
                "sd": group["macro_f1"].std(ddof=1),
                "ci_low": low,
                "ci_high": high,
                "accuracy": group["accuracy"].mean(),
                "accuracy_ci_low": accuracy_low,
                "accuracy_ci_high": accuracy_high,
                "pair_accuracy": pair_accuracy.mean() if len(pair_accuracy) else math.nan,
                "pair_ci_low": pair_low,
                "pair_ci_high": pair_high,
                "n_pairs": int(group["n_pairs"].sum()),
                "n_unpaired": int(group["n_unpaired"].sum()),
                "majority_macro_f1": group["majority_macro_f1"].mean(),
                "majority_accuracy": group["majority_accuracy"].mean(),
            }
        )
    return pd.DataFrame(rows, columns=[*keys, *HEADLINE_COLUMNS[len(HEADLINE_KEYS) :]])
