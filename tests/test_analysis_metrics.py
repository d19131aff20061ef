"""Metrics against hand-computed values (protocol §6)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from taxvlm.analysis.metrics import (
    METRICS_COLUMNS,
    category_scores,
    collect_metrics,
    condition_axis,
    headline,
    majority_label,
    read_metrics,
    t_interval,
)
from taxvlm.data.errors import DataError
from taxvlm.io import write_tsv


@pytest.mark.parametrize(
    ("gold", "pred", "macro_f1", "accuracy", "majority", "majority_f1"),
    [
        # single class, all correct: only `Yes` is present → 1.0
        (["Yes"] * 3, ["Yes"] * 3, 1.0, 1.0, "Yes", 1.0),
        # single class with an error: F1(Yes)=2·3/(2·3+1)=6/7, F1(No)=0 → 3/7
        (["Yes"] * 4, ["Yes", "Yes", "Yes", "No"], 3 / 7, 0.75, "Yes", 1.0),
        # tie in gold: each class TP=1, FP=1, FN=1 → 0.5; majority `No` → F1(No)=4/6, F1(Yes)=0 → 1/3
        (["Yes", "No", "Yes", "No"], ["Yes", "Yes", "No", "No"], 0.5, 0.5, "No", 1 / 3),
        # F1(No)=2·2/(2·2+1)=0.8, F1(Yes)=0 → 0.4; majority predicts the same
        (["Yes", "No", "No"], ["No", "No", "No"], 0.4, 2 / 3, "No", 0.4),
    ],
)
def test_category_scores_hand_computed(gold, pred, macro_f1, accuracy, majority, majority_f1):
    scores = category_scores(gold, pred)
    assert scores["macro_f1"] == pytest.approx(macro_f1)
    assert scores["accuracy"] == pytest.approx(accuracy)
    assert scores["majority_label"] == majority
    assert scores["majority_macro_f1"] == pytest.approx(majority_f1)
    assert (scores["n"], scores["n_yes"], scores["n_no"]) == (len(gold), gold.count("Yes"), gold.count("No"))


def test_majority_tie_goes_to_no_and_does_not_change_the_score():
    assert majority_label(["Yes", "No"]) == "No"
    gold = ["Yes", "No", "Yes", "No"]
    assert category_scores(gold, ["No"] * 4)["macro_f1"] == category_scores(gold, ["Yes"] * 4)["macro_f1"]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("none", ("none", 0.0)),
        ("full", ("full", 100.0)),
        ("random30", ("random", 30.0)),
        ("random70pair", ("randompair", 70.0)),
        ("systematic10", ("systematic", 100 * 10 / 53)),
    ],
)
def test_condition_axis(condition, expected):
    family, pct = condition_axis(condition, 53)
    assert family == expected[0] and pct == pytest.approx(expected[1])


def test_condition_axis_rejects_unknown():
    with pytest.raises(DataError):
        condition_axis("randomish", 53)


def _predictions(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["test_set", "kind", "asked", "answer", "prediction"])
    return frame.assign(row_id=range(len(frame)), question_id="q", image_id="i", leaf="l", logp_yes=-1.0, logp_no=-2.0)


def test_collect_metrics_one_row_per_run_test_set_category(tmp_path):
    run_a = _predictions(
        [
            ("seen", "hypernym", "bird", "Yes", "Yes"),
            ("seen", "hypernym", "bird", "No", "No"),
            ("unseen", "hypernym", "fish", "Yes", "No"),
            ("unseen", "hypernym", "fish", "Yes", "Yes"),
            ("leaf", "leaf", "owl1", "Yes", "Yes"),
        ]
    )
    run_b = _predictions([("unseen", "hypernym", "fish", "No", "No")])
    write_tsv(run_a, tmp_path / "a.tsv")
    write_tsv(run_b, tmp_path / "b.tsv")
    keys = {"encoder": "e", "lm": "l", "init": "pretrained", "shuffle": "original"}
    runs = [
        keys | {"condition": "systematic3", "seed": 7, "path": tmp_path / "a.tsv"},
        keys | {"condition": "random50pair", "seed": 42, "path": tmp_path / "b.tsv"},
    ]
    table = collect_metrics(runs, tmp_path / "metrics.tsv", n_categories=20)
    assert list(table.columns) == list(METRICS_COLUMNS)
    assert len(table) == 4  # a: seen/bird, unseen/fish, leaf/owl1; b: unseen/fish — no empty categories
    assert not ((table["seed"] == 42) & (table["test_set"] == "seen")).any()
    fish = table[(table["seed"] == 7) & (table["category"] == "fish")].iloc[0]
    assert fish["macro_f1"] == pytest.approx(1 / 3)  # F1(Yes)=2/3, F1(No)=0
    assert set(zip(table["condition_family"], table["pct_deprived"])) == {("systematic", 15.0), ("randompair", 50.0)}
    reread = read_metrics(tmp_path / "metrics.tsv")
    pd.testing.assert_frame_equal(reread, table.astype({"seed": "int64"}), check_dtype=False)


def test_headline_ci_matches_scipy():
    rng = np.random.default_rng(0)
    f1 = rng.uniform(0.3, 1.0, size=12)
    metrics = pd.DataFrame(
        {
            "encoder": "e",
            "lm": "l",
            "init": "pretrained",
            "condition": "full",
            "shuffle": "original",
            "condition_family": "full",
            "pct_deprived": 100.0,
            "test_set": "unseen",
            "seed": np.repeat([7, 42, 218], 4),
            "category": np.tile(list("abcd"), 3),
            "macro_f1": f1,
            "accuracy": f1,
            "majority_macro_f1": 0.4,
            "majority_accuracy": 0.6,
        }
    )
    row = headline(metrics).iloc[0]
    low, high = stats.t.interval(0.95, len(f1) - 1, loc=f1.mean(), scale=stats.sem(f1))
    assert row["macro_f1"] == pytest.approx(f1.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert (row["n"], row["n_seeds"], row["n_categories"]) == (12, 3, 4)
    assert row["majority_macro_f1"] == pytest.approx(0.4)


def test_t_interval_undefined_for_one_value():
    assert all(math.isnan(v) for v in t_interval([0.5]))
