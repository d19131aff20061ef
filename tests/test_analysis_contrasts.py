"""Category-level contrasts (taxvlm.analysis.contrasts, taxvlm.analysis.answer) on hand-built
predictions and leaf scores: differences, not overlapping CIs, decide; the prior is scored without
an image; identical seeds do not shrink a CI; overlap pairs are left out of the verdict set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taxvlm.analysis.answer import transfer_verdict, write_answer
from taxvlm.analysis.contrasts import (
    Arm,
    aligned_arms,
    collect_leaf_scores,
    contrast_table,
    hierarchical_bootstrap,
    leaf_outcomes,
    read_leaf_scores,
    trained_task,
    verdict,
)
from taxvlm.analysis.metrics import RUN_KEYS, t_interval
from taxvlm.evaluation.decision import decide
from taxvlm.io import write_tsv


def _pair_rows(leaf: str, category: str, foil: str, image: str, margins: tuple[float, float], prior: tuple[float, float], test_set: str = "unseen") -> list[dict]:
    """A held-out pair on one image: the positive (category) and its foil, with their image and
    no-image margins."""
    rows = []
    for answer, asked, margin, noimage in (("Yes", category, margins[0], prior[0]), ("No", foil, margins[1], prior[1])):
        rows.append({
            "test_set": test_set, "row_id": f"{image}|{leaf}:{asked}", "question_id": f"{leaf}:hypernym:{category}:{answer}",
            "pair": f"{leaf}:hypernym:{category}", "image_id": image, "leaf": leaf, "kind": "hypernym",
            "asked": asked, "answer": answer, "logp_yes": 0.0, "logp_no": 0.0, "margin": margin,
            "margin_noimage": noimage,
        })  # fmt: skip
    return rows


def test_the_prior_rule_scores_the_no_image_margins_alone():
    """Foils drawn uniformly: a big category is a positive often and a foil rarely, so a prior that
    favours it wins most pairs with no image at all (0.8 here); balanced foils (each category a foil
    as often as a positive) bring the same prior to 0.5."""
    prior = {"big": 1.0, "small": 0.0}  # the LM's no-image preference for each category's word
    def table(pairs: list[tuple[str, str, str]]) -> pd.DataFrame:
        rows = []
        for leaf, category, foil in pairs:
            rows += _pair_rows(leaf, category, foil, f"{leaf}/0", (0.0, 0.0), (prior[category], prior[foil]))
        return decide(pd.DataFrame(rows))

    uniform = [(f"b{i}", "big", "small") for i in range(4)] + [("s0", "small", "big")]
    balanced = [(f"b{i}", "big", "small") for i in range(2)] + [(f"s{i}", "small", "big") for i in range(2)]
    for pairs, expected in ((uniform, 0.8), (balanced, 0.5)):
        outcomes = leaf_outcomes(table(pairs), ("paired",))
        prior_rows = outcomes[outcomes["rule"] == "prior"]
        assert prior_rows["pair_accuracy"].mean() == pytest.approx(expected)


def test_leaf_outcomes_file_a_pair_under_its_positive_and_need_both_rows_right():
    rows = _pair_rows("cat", "animal", "tool", "cat/0", (2.0, -1.0), (0.0, 0.0))
    rows += _pair_rows("cat", "animal", "tool", "cat/1", (2.0, 3.0), (0.0, 0.0))
    outcomes = leaf_outcomes(decide(pd.DataFrame(rows)), ("absolute", "paired"))
    by_rule = outcomes.set_index("rule")
    assert list(outcomes["category"].unique()) == ["animal"]
    assert by_rule.loc["absolute", "pair_accuracy"] == 0.5  # image 1: the foil also answered Yes
    assert by_rule.loc["paired", "pair_accuracy"] == 0.5  # image 1: the foil's margin is larger
    assert by_rule.loc["paired", "n_pairs"] == 2


def _scores(init: str, per_category: dict[str, float], n_leaves: int, seeds: list[int], test_set: str = "unseen",
            noise: float = 0.0, rng_seed: int = 0, rule: str = "paired") -> pd.DataFrame:
    gen = np.random.default_rng(rng_seed)
    rows = []
    for category, level in per_category.items():
        for leaf in range(n_leaves):
            for seed in seeds:
                rows.append({
                    "encoder": "e", "lm": "l", "init": init, "condition": "full", "shuffle": "original",
                    "objective": "caption", "seed": str(seed), "readout": "naming", "rule": rule,
                    "test_set": test_set, "category": category, "leaf": f"{category}{leaf}", "n_pairs": 1,
                    "pair_accuracy": float(np.clip(level + noise * gen.normal(), 0, 1)), "lexical_overlap": False,
                })  # fmt: skip
    return pd.DataFrame(rows)


def test_a_consistent_difference_is_found_where_the_two_cis_overlap():
    """Categories differ a lot from each other, and the pretrained LM is 0.08 above its twin in every
    one: the two groups' t-CIs overlap (the old verdict: no difference), the difference's CI does not."""
    levels = {f"c{i}": 0.2 + 0.05 * i for i in range(12)}
    pretrained = _scores("pretrained", {c: v + 0.08 for c, v in levels.items()}, 3, [1, 2])
    twin = _scores("random", levels, 3, [1, 2])
    means = [frame.groupby("category")["pair_accuracy"].mean() for frame in (pretrained, twin)]
    (p_low, p_high), (t_low, t_high) = (t_interval(m) for m in means)
    assert p_low < t_high  # the CIs overlap
    a, b = aligned_arms(pretrained, twin)
    estimate = hierarchical_bootstrap(a, b, draws=2000)
    assert estimate.estimate == pytest.approx(0.08)
    assert estimate.ci_low > 0 and verdict(estimate) == "above"
    assert estimate.n_categories == 12 and estimate.p_wilcoxon < 0.01


def test_identical_seeds_do_not_shrink_the_ci():
    scores = _scores("pretrained", {f"c{i}": 0.3 + 0.04 * i for i in range(8)}, 4, [1], noise=0.2)
    copies = pd.concat([scores.assign(seed=str(s)) for s in (1, 2, 3, 4)], ignore_index=True)
    one = hierarchical_bootstrap(*aligned_arms(scores), draws=3000, seed=5)
    four = hierarchical_bootstrap(*aligned_arms(copies), draws=3000, seed=5)
    assert (four.ci_low, four.ci_high) == pytest.approx((one.ci_low, one.ci_high))
    assert four.n_seeds == "4" and one.n_seeds == "1"


def test_seeds_are_a_level_of_the_bootstrap():
    """Two seeds that disagree widen the CI over what either seed alone gives."""
    categories = {f"c{i}": 0.5 for i in range(10)}
    low = _scores("pretrained", {c: 0.3 for c in categories}, 3, [1])
    high = _scores("pretrained", {c: 0.7 for c in categories}, 3, [2])
    both = hierarchical_bootstrap(*aligned_arms(pd.concat([low, high])), draws=3000)
    alone = hierarchical_bootstrap(*aligned_arms(low), draws=3000)
    assert both.ci_high - both.ci_low > 0.2 > alone.ci_high - alone.ci_low


def test_arms_compare_the_same_leaves():
    a = _scores("pretrained", {"c": 0.9}, 3, [1])
    b = _scores("random", {"c": 0.1}, 2, [1])
    left, right = aligned_arms(a, b)
    assert left.categories["c"].shape == right.categories["c"].shape == (2, 1)
    with pytest.raises(ValueError, match="same leaves"):
        hierarchical_bootstrap(Arm({"c": np.zeros((3, 1))}, ("1",)), Arm({"c": np.zeros((2, 1))}, ("1",)))


def _predictions_file(tmp_path, name: str, margins_by_leaf: dict[str, tuple[float, float]], category_of: dict[str, str]) -> str:
    rows = []
    for leaf, margins in margins_by_leaf.items():
        category = category_of[leaf]
        foil = "tool" if category != "tool" else "animal"
        rows += _pair_rows(leaf, category, foil, f"{leaf}/0", margins, (0.0, 0.0))
        rows += _pair_rows(leaf, category, foil, f"null/{leaf}", (0.0, 1.0), (0.0, 0.0), test_set="null")
    path = tmp_path / f"{name}.tsv"
    write_tsv(decide(pd.DataFrame(rows)), path)
    return str(path)


def test_an_overlap_pair_is_left_out_of_the_verdict_set(tmp_path):
    category_of = {"blackbird": "bird", "owl": "bird", "cat": "mammal", "dog": "mammal"}
    pairs = pd.DataFrame(
        {"concept": list(category_of), "hypernym": list(category_of.values()),
         "lexical_overlap": ["True", "False", "False", "False"]}
    )  # fmt: skip
    runs = []
    for init in ("pretrained", "random"):
        margins = {leaf: ((1.0, 0.0) if init == "pretrained" or leaf == "blackbird" else (0.0, 1.0)) for leaf in category_of}
        path = _predictions_file(tmp_path, init, margins, category_of)
        keys = {"encoder": "e", "lm": "l", "init": init, "condition": "full", "shuffle": "original", "objective": "yesno", "seed": "1"}
        runs.append(keys | {"readout": "yesno", "path": path})
    collect_leaf_scores(runs, [], pairs, tmp_path / "leaf_scores.tsv")
    scores = read_leaf_scores(tmp_path / "leaf_scores.tsv")
    assert scores.loc[scores["leaf"] == "blackbird", "lexical_overlap"].all()
    table = contrast_table(scores, draws=500)
    twin = table[(table["contrast"] == "twin") & (table["rule"] == "paired")].set_index("pairs")
    # the twin names only the blackbird's bird right (its name says it): with it, bird scores 0.5
    assert twin.loc["all", "n_leaves"] == 4 and twin.loc["no_overlap", "n_leaves"] == 3
    assert twin.loc["all", "estimate"] == pytest.approx(0.25)
    assert twin.loc["no_overlap", "estimate"] == pytest.approx(0.0)
    null = table[(table["contrast"] == "pretrained_null") & (table["rule"] == "paired")]
    assert (null["estimate"] == 0.0).all()  # the foil wins every null image (margins 0 vs 1)


def _val_curve(tmp_path, name: str, accuracy: float, n: int = 100) -> str:
    path = tmp_path / f"{name}_val.tsv"
    write_tsv(pd.DataFrame({"step": [0, 10], "epoch": [0, 1], "n": [n, n], "accuracy": [0.5, accuracy]}), path)
    return str(path)


def test_a_twin_at_its_trained_task_chance_makes_no_result(tmp_path):
    keys = {"encoder": "e", "lm": "l", "condition": "full", "shuffle": "original", "objective": "yesno", "seed": "1"}
    trained = trained_task([
        keys | {"init": "pretrained", "val_curve": _val_curve(tmp_path, "p", 0.9)},
        keys | {"init": "random", "val_curve": _val_curve(tmp_path, "r", 0.5)},
    ])  # fmt: skip
    assert list(trained["learned"]) == [True, False]
    above = pd.Series({"verdict": "above", "estimate": 0.2, "ci_low": 0.1, "ci_high": 0.3, "p_wilcoxon": 0.01})
    bound = pd.Series({"verdict": "above chance"})
    by_name = {"upper_bound": bound, "pretrained-twin": above, "pretrained-null": above}
    assert transfer_verdict(by_name, {"twin": (0, 1)}, "l").startswith("not a result")
    assert transfer_verdict(by_name, {"twin": (1, 1)}, "l").startswith("transfer")
    at_chance = {**by_name, "upper_bound": pd.Series({"verdict": "at chance"})}
    assert transfer_verdict(at_chance, {"twin": (1, 1)}, "l").startswith("cannot test transfer")


def test_the_answer_table_has_every_arm_and_the_difference(tmp_path):
    levels = {f"c{i}": 0.4 + 0.03 * i for i in range(6)}
    frames = [
        _scores("pretrained", {c: v + 0.3 for c, v in levels.items()}, 3, [1, 2]),
        _scores("pretrained", {c: 0.5 for c in levels}, 3, [1, 2], test_set="null"),
        _scores("random", levels, 3, [1, 2]),
        _scores("random", {c: 0.5 for c in levels}, 3, [1, 2], test_set="null"),
        _scores("pretrained", {c: 0.5 for c in levels}, 3, [1, 2], rule="prior"),
    ]
    text = _scores("pretrained", {c: 0.95 for c in levels}, 3, [1]).assign(
        encoder="", condition="", shuffle="", objective="", seed="", test_set="text"
    )
    scores = pd.concat([*frames, text], ignore_index=True)
    contrasts = contrast_table(scores, draws=500)
    trained = pd.DataFrame([
        {k: v for k, v in zip(RUN_KEYS, ("e", "l", init, "full", "original", "caption", "1"))} | {"learned": True}
        for init in ("pretrained", "random")
    ])  # fmt: skip
    outputs = {name: tmp_path / f"answer.{ext}" for name, ext in (("csv", "csv"), ("md", "md"), ("statement", "txt"), ("figure", "png"))}
    rows = write_answer(contrasts, trained, outputs)
    (row,) = rows.to_dict("records")
    assert row["pretrained − twin"].startswith("+0.300")
    assert row["prior only"].startswith("0.500")
    assert row["verdict"].startswith("transfer")
    assert row["n"] == "6 categories, 18 (category, leaf) pairs, 2/2 seeds"
    assert "pretrained − twin +0.300" in outputs["statement"].read_text()
    assert outputs["figure"].stat().st_size > 0
