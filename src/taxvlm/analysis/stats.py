"""Statistics beyond the paper: correlations with held-out F1 and a mixed-effects model of correctness.

Model choice: `BinomialBayesMixedGLM` (logistic, variational Bayes) rather than `MixedLM` on 0/1
correctness. Correctness is binary and accuracies sit near the ceiling in some conditions, where a
linear probability model predicts outside [0, 1]; and category and seed are *crossed* random effects,
which the variance-component formulas of the Bayesian GLM express directly whereas `MixedLM` needs a
single grouping factor. Its estimates are posterior means and SDs of the log-odds (fixed effects) and of
the log random-effect SDs, so the table reports 95% credible intervals, not p-values.

The model is fitted on correctness under the paper's decision rule (`absolute`: Yes iff
log P(Yes) > log P(No)). The paired rules decide each row jointly with its matched row, so their
correctness is not one independent Bernoulli outcome per row; they are compared in the headline.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
from statsmodels.genmod.families import Binomial

from taxvlm.analysis.metrics import read_runs
from taxvlm.io import write_text, write_tsv

log = logging.getLogger(__name__)

FIXED_EFFECTS: tuple[str, ...] = ("condition", "shuffle", "init", "encoder", "lm")
RANDOM_EFFECTS: tuple[str, ...] = ("category", "seed")
# Reference levels that make the coefficients read as "change from the ordinary setting".
REFERENCE_LEVELS: dict[str, str] = {"init": "pretrained", "shuffle": "original"}
COEFFICIENT_COLUMNS: tuple[str, ...] = ("term", "effect", "estimate", "sd", "sd_of", "ci_low", "ci_high")
_Z95 = float(stats.norm.ppf(0.975))


def correlations(frame: pd.DataFrame, x: str, y: str, by: Sequence[str]) -> pd.DataFrame:
    """Pearson and Spearman correlation of `x` with `y` in each group, with n and two-sided p.

    Groups with fewer than 3 complete points or a constant variable get NaN (a correlation is
    undefined there), so a small grid never makes this fail.
    """
    rows = []
    for keys, group in frame.dropna(subset=[x, y]).groupby(list(by), sort=True):
        row = dict(zip(by, keys if isinstance(keys, tuple) else (keys,))) | {"n": len(group)}
        defined = len(group) >= 3 and group[x].nunique() > 1 and group[y].nunique() > 1
        pearson = stats.pearsonr(group[x], group[y]) if defined else (math.nan, math.nan)
        spearman = stats.spearmanr(group[x], group[y]) if defined else (math.nan, math.nan)
        rows.append(
            row
            | {
                "pearson_r": float(pearson[0]),
                "pearson_p": float(pearson[1]),
                "spearman_r": float(spearman[0]),
                "spearman_p": float(spearman[1]),
            }
        )
    return pd.DataFrame(rows, columns=[*by, "n", "pearson_r", "pearson_p", "spearman_r", "spearman_p"])


@dataclass
class MixedEffectsFit:
    """What was fitted (after dropping single-level factors), its text summary and coefficients."""

    n: int
    formula: str
    random_effects: list[str]
    dropped: list[str]
    method: str
    summary: str
    coefficients: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(COEFFICIENT_COLUMNS)))
    warnings: list[str] = field(default_factory=list)  # e.g. perfect separation: read estimates with care


def held_out_rows(runs: Sequence[dict]) -> pd.DataFrame:
    """Per-example held-out (`unseen`) rows of the runs, with `correct` (absolute rule) and `category`
    (= asked)."""
    return read_runs(runs, test_sets=("unseen",)).rename(columns={"asked": "category"})


def _term(factor: str, levels: Sequence[str]) -> str:
    reference = REFERENCE_LEVELS.get(factor)
    if reference in levels:
        return f"C({factor}, Treatment(reference='{reference}'))"
    return f"C({factor})"


def fit_mixed_effects(
    data: pd.DataFrame,
    fixed: Sequence[str] = FIXED_EFFECTS,
    random: Sequence[str] = RANDOM_EFFECTS,
    seed: int = 0,
) -> MixedEffectsFit:
    """Logistic mixed model of `correct` (0/1) on the factors in `data` that vary.

    A factor with a single level carries no information and would make the design singular, so it
    is dropped and listed in `dropped`. Without any varying random effect this falls back to a plain
    logistic GLM; with a constant outcome nothing is fitted (the summary says so).
    """
    data = data.assign(**{column: data[column].astype(str) for column in (*fixed, *random) if column in data})
    present = [c for c in (*fixed, *random) if c in data]
    dropped = [c for c in present if data[c].nunique() < 2] + [c for c in (*fixed, *random) if c not in data]
    kept_fixed = [c for c in fixed if c in present and c not in dropped]
    kept_random = [c for c in random if c in present and c not in dropped]
    formula = "correct ~ " + (" + ".join(_term(c, sorted(data[c].unique())) for c in kept_fixed) or "1")
    if data.empty or data["correct"].nunique() < 2:
        return MixedEffectsFit(
            len(data),
            formula,
            kept_random,
            dropped,
            "none",
            "not fitted: the outcome does not vary (or there are no rows)",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if kept_random:
            method, summary, coefficients = _fit_bayes(data, formula, kept_random, seed)
        else:
            method, summary, coefficients = _fit_glm(data, formula)
    notes = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return MixedEffectsFit(len(data), formula, kept_random, dropped, method, summary, coefficients, notes)


def _fit_bayes(data: pd.DataFrame, formula: str, random: Sequence[str], seed: int) -> tuple[str, str, pd.DataFrame]:
    """Crossed random intercepts as variance components; the VB fit starts from seeded random SDs."""
    model = BinomialBayesMixedGLM.from_formula(formula, {c: f"0 + C({c})" for c in random}, data)
    log.info("fitting %s on %d rows (variational Bayes; no progress until it ends)", formula, len(data))
    start = time.perf_counter()
    result = model.fit_vb(rng=np.random.default_rng(seed))
    log.info("mixed-effects fit done in %.1f s", time.perf_counter() - start)
    coefficients = pd.concat(
        [
            _table(model.fep_names, result.fe_mean, result.fe_sd, "fixed (log-odds)", np.asarray, "log-odds"),
            _table(model.vcp_names, result.vcp_mean, result.vcp_sd, "random (SD)", np.exp, "log SD"),
        ],
        ignore_index=True,
    )
    return "BinomialBayesMixedGLM.fit_vb", str(result.summary()), coefficients


def _fit_glm(data: pd.DataFrame, formula: str) -> tuple[str, str, pd.DataFrame]:
    result = smf.glm(formula, data, family=Binomial()).fit()
    coefficients = _table(
        list(result.params.index), result.params.to_numpy(), result.bse.to_numpy(), "fixed (log-odds)", np.asarray,
        "log-odds",
    )
    return "GLM Binomial (no varying random effect)", str(result.summary()), coefficients


def _table(
    names: Sequence[str], mean: np.ndarray, sd: np.ndarray, effect: str, transform, sd_of: str
) -> pd.DataFrame:
    """Estimates with normal-approximation 95% intervals, mapped through `transform` (exp for log-SDs).

    `sd` stays on the fitted scale (a random effect's is the posterior SD of its *log* SD, while its
    estimate and interval are exponentiated), so `sd_of` names that scale on every row.
    """
    mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
    return pd.DataFrame(
        {
            "term": list(names),
            "effect": effect,
            "estimate": transform(mean),
            "sd": sd,
            "sd_of": sd_of,
            "ci_low": transform(mean - _Z95 * sd),
            "ci_high": transform(mean + _Z95 * sd),
        }
    )


def write_mixed_effects(
    fit: MixedEffectsFit, summary_path: str | os.PathLike[str], coefficients_path: str | os.PathLike[str]
) -> None:
    """A human-readable account of what was fitted, and the tidy coefficient table."""
    header = "\n".join(
        [
            f"rows: {fit.n}",
            f"method: {fit.method}",
            f"fixed effects: {fit.formula}",
            f"random effects (variance components): {', '.join(fit.random_effects) or 'none'}",
            f"dropped (single level or absent): {', '.join(fit.dropped) or 'none'}",
            f"warnings during the fit: {'; '.join(fit.warnings) or 'none'}",
        ]
    )
    write_text(f"{header}\n\n{fit.summary}\n", summary_path)
    write_tsv(fit.coefficients, coefficients_path)
