"""Metrics against hand-computed values (docs/protocol.md §11)."""

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
    headline,
    majority_label,
    read_metrics,
    score_predictions,
    t_interval,
)
from taxvlm.evaluation.decision import NAMING_RULES, RULES, decide, pair_id
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


def _predictions(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    """Unpaired rows (every row its own image) with the same prediction under every rule."""
    frame = pd.DataFrame(rows, columns=["test_set", "kind", "asked", "answer", "prediction"])
    return frame.assign(
        row_id=range(len(frame)),
        question_id=[
            f"l:{kind}:{asked}:{answer}" for kind, asked, answer in zip(frame.kind, frame.asked, frame.answer)
        ],
        pair=[f"l:{kind}:{asked}" for kind, asked in zip(frame.kind, frame.asked)],
        image_id=[f"i{i}" for i in range(len(frame))],
        leaf="l",
        logp_yes=-1.0,
        logp_no=-2.0,
        prediction_paired=frame["prediction"],
        prediction_paired_calibrated=frame["prediction"],
    )


# (image, question id, asked, margin with the image, margin without it): hand-built so that the rules
# disagree. Pair owl:bird on i1: absolute says Yes to both, paired picks the foil (its raw margin is
# larger), calibrated picks the truth (the foil's margin is mostly its text prior). Pair owl:animal on
# i1: absolute says No to both, paired is right, calibrated is wrong. owl:thing has no negative (no
# partner): every rule keeps the absolute answer. On i2 the owl:bird margins tie: paired says No to both.
HAND_BUILT = [
    ("i1", "owl:hypernym:bird:Yes", "bird", 1.0, -1.0),
    ("i1", "owl:hypernym:bird:No", "tool", 2.0, 1.5),
    ("i1", "owl:hypernym:animal:Yes", "animal", -0.5, -2.0),
    ("i1", "owl:hypernym:animal:No", "food", -1.0, -3.0),
    ("i1", "owl:hypernym:thing:Yes", "thing", 0.2, 5.0),
    ("i2", "owl:hypernym:bird:Yes", "bird", 0.5, -1.0),
    ("i2", "owl:hypernym:bird:No", "tool", 0.5, 1.5),
]


def _hand_built() -> pd.DataFrame:
    frame = pd.DataFrame(HAND_BUILT, columns=["image_id", "question_id", "asked", "margin", "margin_noimage"])
    return decide(
        frame.assign(
            test_set="unseen",
            kind="hypernym",
            leaf="owl",
            pair=frame["question_id"].map(pair_id),
            answer=frame["question_id"].str.rsplit(":", n=1).str[1],
        )
    )


def test_decision_rules_disagree_with_each_other_on_hand_built_pairs():
    decided = _hand_built()
    assert list(decided["prediction"]) == ["Yes", "Yes", "No", "No", "Yes", "Yes", "Yes"]
    assert list(decided["prediction_paired"]) == ["No", "Yes", "Yes", "No", "Yes", "No", "No"]
    assert list(decided["prediction_paired_calibrated"]) == ["Yes", "No", "No", "Yes", "Yes", "Yes", "No"]


def test_pair_accuracy_and_unpaired_rows_per_rule():
    scores = score_predictions(_hand_built()).set_index(["rule", "category"])
    # bird: pairs on i1 and i2 (filed under the positive's category); animal: one pair on i1
    assert scores.loc[("absolute", "bird"), "pair_accuracy"] == 0.0  # foil said Yes on i1, tie → Yes to both on i2
    assert scores.loc[("paired", "bird"), "pair_accuracy"] == 0.0
    assert scores.loc[("paired_calibrated", "bird"), "pair_accuracy"] == 1.0
    assert scores.loc[("paired", "animal"), "pair_accuracy"] == 1.0
    assert scores.loc[("paired_calibrated", "animal"), "pair_accuracy"] == 0.0
    assert scores.loc[("paired", "bird"), "n_pairs"] == 2 and scores.loc[("paired", "tool"), "n_pairs"] == 0
    assert np.isnan(scores.loc[("paired", "tool"), "pair_accuracy"])  # a foil category files no pairs
    assert scores.loc[("paired", "thing"), "n_unpaired"] == 1 and scores["n_unpaired"].sum() == 3
    assert scores.loc[("paired_calibrated", "tool"), "accuracy"] == 1.0
    assert scores.loc[("paired", "tool"), "accuracy"] == 0.5


def test_pairs_come_from_question_ids_and_never_exceed_two_rows():
    assert pair_id("owl1:hypernym:bird of prey:No") == "owl1:hypernym:bird of prey"
    with pytest.raises(ValueError, match="question_id 'q_owl'"):
        pair_id("q_owl")
    decided = _hand_built()
    with pytest.raises(ValueError, match="more than two rows"):
        decide(pd.concat([decided, decided.iloc[:1]], ignore_index=True))


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
    keys = {"encoder": "e", "lm": "l", "init": "pretrained", "shuffle": "original", "objective": "yesno"}
    runs = [
        keys | {"condition": "systematic3", "seed": 7, "readout": "yesno", "path": tmp_path / "a.tsv"},
        keys | {"condition": "random50pair", "seed": 42, "readout": "yesno", "path": tmp_path / "b.tsv"},
    ]
    table = collect_metrics(runs, tmp_path / "metrics.tsv", n_categories=20)
    assert list(table.columns) == list(METRICS_COLUMNS)
    assert len(table) == 4 * len(RULES)  # a: seen/bird, unseen/fish, leaf/owl1; b: unseen/fish — per rule
    assert not ((table["seed"] == 42) & (table["test_set"] == "seen")).any()
    fish = table[(table["seed"] == 7) & (table["category"] == "fish")]
    assert list(fish["rule"]) == list(RULES)
    assert fish["macro_f1"].to_numpy() == pytest.approx([1 / 3] * 3)  # F1(Yes)=2/3, F1(No)=0
    assert (fish["n_unpaired"] == 2).all() and (fish["n_pairs"] == 0).all()
    assert set(zip(table["condition_family"], table["pct_deprived"])) == {("systematic", 15.0), ("randompair", 50.0)}
    reread = read_metrics(tmp_path / "metrics.tsv")
    pd.testing.assert_frame_equal(reread, table.astype({"seed": "int64"}), check_dtype=False)


def test_naming_readout_is_scored_under_the_paired_rules_only(tmp_path):
    """naming.tsv (margins = log-likelihoods, no absolute prediction) beside the same run's yes/no
    predictions: one metrics table with a `readout` column, and the headline keeps them apart."""
    naming = _hand_built().drop(index=4).assign(prediction="", logp_yes=np.nan, logp_no=np.nan)  # pairs only
    write_tsv(naming, tmp_path / "naming.tsv")
    write_tsv(_hand_built().assign(logp_yes=-1.0, logp_no=-2.0), tmp_path / "predictions.tsv")
    keys = {"encoder": "e", "lm": "l", "init": "pretrained", "condition": "full", "shuffle": "original",
            "objective": "caption", "seed": 7}
    runs = [keys | {"readout": "yesno", "path": tmp_path / "predictions.tsv"},
            keys | {"readout": "naming", "path": tmp_path / "naming.tsv"}]
    table = collect_metrics(runs, tmp_path / "metrics.tsv", n_categories=4)
    assert set(table.loc[table["readout"] == "naming", "rule"]) == set(NAMING_RULES) == {"paired", "paired_calibrated"}
    assert set(table.loc[table["readout"] == "yesno", "rule"]) == set(RULES)
    bird = table[(table["readout"] == "naming") & (table["category"] == "bird")].set_index("rule")
    assert bird.loc["paired_calibrated", "pair_accuracy"] == 1.0 and bird.loc["paired", "pair_accuracy"] == 0.0
    lines = headline(table)
    assert set(zip(lines["readout"], lines["rule"])) == {("yesno", r) for r in RULES} | {
        ("naming", r) for r in NAMING_RULES
    }
    assert set(lines["objective"]) == {"caption"}


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
            "objective": "yesno",
            "readout": "yesno",
            "condition_family": "full",
            "pct_deprived": 100.0,
            "test_set": "unseen",
            "seed": np.repeat([7, 42, 218], 4),
            "category": np.tile(list("abcd"), 3),
            "rule": "paired",
            "macro_f1": f1,
            "accuracy": f1 / 2,
            "majority_macro_f1": 0.4,
            "majority_accuracy": 0.6,
            "n_pairs": np.tile([3, 3, 3, 0], 3),
            "n_unpaired": 1,
            "pair_accuracy": np.where(np.tile([True, True, True, False], 3), f1, np.nan),
        }
    )
    table = headline(metrics)
    assert len(table) == 1 and table["rule"].iloc[0] == "paired"
    row = table.iloc[0]
    low, high = stats.t.interval(0.95, len(f1) - 1, loc=f1.mean(), scale=stats.sem(f1))
    assert row["macro_f1"] == pytest.approx(f1.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert (row["accuracy_ci_low"], row["accuracy_ci_high"]) == pytest.approx((low / 2, high / 2))
    paired = f1[np.tile([True, True, True, False], 3)]  # the category without pairs does not count
    pair_low, pair_high = stats.t.interval(0.95, len(paired) - 1, loc=paired.mean(), scale=stats.sem(paired))
    assert (row["pair_accuracy"], row["pair_ci_low"], row["pair_ci_high"]) == pytest.approx(
        (paired.mean(), pair_low, pair_high)
    )
    assert (row["n"], row["n_seeds"], row["n_categories"], row["n_pairs"], row["n_unpaired"]) == (12, 3, 4, 27, 12)
    assert row["majority_macro_f1"] == pytest.approx(0.4)


def test_t_interval_undefined_for_one_value():
    assert all(math.isnan(v) for v in t_interval([0.5]))



def test_tables_take_the_text_probe_summary_as_a_path_or_a_list_of_none_or_one(monkeypatch) -> None:
    """The tables and figures rules name it as a list (empty where the grid probes no LM)."""
    import taxvlm.analysis.tables as tables

    seen = []
    monkeypatch.setattr(tables, "load_tables", lambda metrics, coherence, textprobe, *rest: seen.append(textprobe))
    for given in ("s.tsv", ["s.tsv"], []):
        tables.tables_from_inputs({"metrics": "metrics.tsv", "textprobe": given})
    assert seen == [["s.tsv"], ["s.tsv"], []]
