"""Mixed-effects model and correlations on synthetic per-example tables, degenerate ones included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taxvlm.analysis.stats import COEFFICIENT_COLUMNS, correlations, fit_mixed_effects, write_mixed_effects


def synthetic_rows(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Correctness with a strong random-init penalty and a category effect."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "condition": rng.choice(["random50", "full"], n),
            "shuffle": rng.choice(["original", "across"], n),
            "init": rng.choice(["pretrained", "random"], n),
            "encoder": "e",
            "lm": "l",
            "category": rng.choice(list("abcdef"), n),
            "seed": rng.choice([7, 42], n),
        }
    )
    logit = 1.5 - 2.0 * (data["init"] == "random") + data["category"].map(dict(zip("abcdef", np.linspace(-1, 1, 6))))
    return data.assign(correct=(rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int))


def test_mixed_effects_recovers_the_init_effect(tmp_path):
    fit = fit_mixed_effects(synthetic_rows())
    assert fit.method.startswith("BinomialBayesMixedGLM") and fit.random_effects == ["category", "seed"]
    assert set(fit.dropped) == {"encoder", "lm"}
    coefficients = fit.coefficients.set_index("term")
    init = coefficients.loc[[t for t in coefficients.index if t.startswith("C(init")][0]]
    assert init["ci_low"] < -1.2 and init["ci_high"] < 0
    write_mixed_effects(fit, tmp_path / "me.txt", tmp_path / "me.tsv")
    assert "dropped (single level or absent): encoder, lm" in (tmp_path / "me.txt").read_text()
    assert list(pd.read_csv(tmp_path / "me.tsv", sep="\t").columns) == list(COEFFICIENT_COLUMNS)


def test_mixed_effects_is_deterministic():
    first, second = fit_mixed_effects(synthetic_rows()), fit_mixed_effects(synthetic_rows())
    pd.testing.assert_frame_equal(first.coefficients, second.coefficients)


def test_single_level_random_effects_fall_back_to_glm():
    fit = fit_mixed_effects(synthetic_rows().assign(category="a", seed=7, shuffle="original"))
    assert fit.method.startswith("GLM") and {"category", "seed", "shuffle"} <= set(fit.dropped)
    assert not fit.coefficients.empty


@pytest.mark.parametrize("frame", [synthetic_rows().assign(correct=1), synthetic_rows().iloc[:0]])
def test_constant_or_empty_outcome_is_reported_not_fitted(frame):
    fit = fit_mixed_effects(frame)
    assert fit.method == "none" and fit.coefficients.empty and "not fitted" in fit.summary


def test_correlations_match_numpy_and_tolerate_tiny_groups():
    frame = pd.DataFrame({"g": ["a"] * 5 + ["b"] * 2, "x": [1, 2, 3, 4, 5, 1, 2], "y": [2, 1, 4, 3, 5, 1, 2]})
    result = correlations(frame, "x", "y", by=["g"]).set_index("g")
    assert result.loc["a", "pearson_r"] == pytest.approx(np.corrcoef(frame.x[:5], frame.y[:5])[0, 1])
    assert result.loc["a", "spearman_r"] == pytest.approx(0.8)
    assert result.loc["b", "n"] == 2 and np.isnan(result.loc["b", "pearson_r"])


def test_perfect_separation_is_fitted_and_flagged():
    frame = synthetic_rows(40).assign(category="a", seed=7)
    fit = fit_mixed_effects(frame.assign(correct=(frame["init"] == "pretrained").astype(int)))
    assert fit.method.startswith("GLM") and any("Separation" in w for w in fit.warnings)
