"""Transfer dynamics: the readouts of every yes/no run at each point its training kept.

A run's final projector is its result (metrics.tsv, the headline, every other figure); the kept
points (`training.eval_every`, fixed by the config before training) describe how the readouts move
while the trained leaf task is being learned. Nothing here picks a point by a held-out score:
- `dynamics.tsv`: per (run keys without the seed, rule, test set, step), means over seeds ×
  categories with t-based 95% CIs, exactly as the headline (`metrics.headline`) at each step;
- the pretrained-vs-twin comparison per step (`twin_comparison`, `dynamics_twin.tsv`): above / below
  where the per-category difference's CI over categories excludes 0, the report's sentence
  (`dynamics_statement`);
- the per-category view (`category_view`) at two points: the last one, and the best-leaf one chosen on
  the validation leaf questions (`val_curve.tsv`, a trained task on validation images), never on a
  test set.

Which runs: the yes/no runs only, the readout the evaluation scores at every kept point. A caption
run's naming is scored once, on its final projector (`naming.tsv`), so it has no points to follow; a
grid without yes/no runs (config/limber_default.yaml) gets every table with its header and no rows,
and a statement that says why (`NO_YESNO_RUNS`). With `training.eval_every: 0` each run keeps only its
end, so the tables hold that one point, the final evaluation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from taxvlm.analysis.metrics import (
    HEADLINE_COLUMNS,
    HEADLINE_KEYS,
    METRICS_COLUMNS,
    RUN_KEYS,
    headline,
    read_typed,
    run_columns,
    score_predictions,
    t_interval,
)
from taxvlm.evaluation.decision import RULES
from taxvlm.io import read_tsv, write_text, write_tsv

PathLike = str | os.PathLike[str]
STEP_KEYS: tuple[str, ...] = ("step", "epoch")
DYNAMICS_KEYS: tuple[str, ...] = (*HEADLINE_KEYS, *STEP_KEYS)
# the run keys a pretrained run shares with its random-init twin (the seed is averaged over)
TWIN_KEYS: tuple[str, ...] = ("encoder", "lm", "condition", "shuffle", "objective")
# each rule's headline score in the comparison: the paper's macro-F1, and the paired rules' pair accuracy
RULE_SCORES: dict[str, tuple[str, str, str]] = {
    "absolute": ("macro_f1", "ci_low", "ci_high"),
    "paired": ("pair_accuracy", "pair_ci_low", "pair_ci_high"),
    "paired_calibrated": ("pair_accuracy", "pair_ci_low", "pair_ci_high"),
}
HELD_OUT = "unseen"
NO_YESNO_RUNS = (
    "No yes/no run in this grid: dynamics follow the yes/no readout only (a caption run is named once, at its end)."
)
# dynamics_categories.tsv and dynamics_correlations.tsv, stated so that an empty table keeps its header
CATEGORY_VIEW_COLUMNS: tuple[str, ...] = (
    *TWIN_KEYS,
    "category",
    "pretrained",
    "random",
    "point",
    "step",
    "rule",
    "score",
    "delta",
    "n_negative_leaf_rows",
    "coherence",
)
TWIN_COLUMNS: tuple[str, ...] = (
    *TWIN_KEYS, "rule", "step", "epoch", "score", "pretrained", "random", "difference", "difference_ci",
    "n_categories", "verdict", "baseline", "pretrained_vs_baseline",
)  # fmt: skip
CORRELATION_COLUMNS: tuple[str, ...] = ("point", "step", "covariate", "n", "rho", "p")
DYNAMICS_NUMERIC: tuple[str, ...] = ("pct_deprived", *STEP_KEYS, *HEADLINE_COLUMNS[len(HEADLINE_KEYS) :])


def collect_dynamics(
    runs: Sequence[dict],
    n_categories: int,
    pairs: pd.DataFrame,
    coherence: pd.DataFrame | None,
    outputs: dict[str, PathLike],
) -> pd.DataFrame:
    """Write dynamics.tsv, the per-category view and its correlations, and the report's statement
    (`outputs` keys: dynamics, categories, correlations, twin, statement); `runs` are dicts with the run keys,
    `path` (predictions_by_step.tsv), `val_curve` and `train` (the run's training table)."""
    per_category = step_metrics(runs, n_categories)
    dynamics = dynamics_table(per_category)
    view = category_views(per_category, runs, pairs, coherence)
    write_tsv(dynamics, outputs["dynamics"])
    write_tsv(view, outputs["categories"])
    write_tsv(category_correlations(view), outputs["correlations"])
    comparison = twin_comparison(per_category)
    write_tsv(comparison, outputs["twin"])
    statement = dynamics_statement(comparison) if runs else f"{NO_YESNO_RUNS}\n"
    write_text(statement, outputs["statement"])
    return dynamics


def read_dynamics(path: PathLike) -> pd.DataFrame:
    """dynamics.tsv with its numeric columns typed."""
    return read_typed(path, DYNAMICS_NUMERIC)


def step_metrics(runs: Sequence[dict], n_categories: int) -> pd.DataFrame:
    """metrics.tsv's per-category rows of every kept point: `runs` are dicts with the run keys and
    `path` to predictions_by_step.tsv (readout yesno)."""
    frames = []
    for run in runs:
        by_step = read_tsv(run["path"])
        columns = run_columns(run | {"readout": "yesno"}, n_categories)
        for (step, epoch), rows in by_step.groupby(["step", "epoch"], sort=False):
            scores = score_predictions(rows, RULES)
            frames.append(scores.assign(**columns, step=int(step), epoch=float(epoch)))
    if not frames:
        return pd.DataFrame(columns=[*METRICS_COLUMNS, *STEP_KEYS])
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values([*RUN_KEYS, "rule", "step", "test_set", "category"], kind="stable", ignore_index=True)


def dynamics_table(per_category: pd.DataFrame) -> pd.DataFrame:
    """dynamics.tsv: the headline's means and CIs over seeds × categories at every kept step."""
    return headline(per_category, DYNAMICS_KEYS)


def twin_comparison(per_category: pd.DataFrame, test_set: str = HELD_OUT) -> pd.DataFrame:
    """Per twin pair, rule and step on `test_set`, with the category as the unit: each category's score
    (the rule's headline score, `RULE_SCORES`) averaged over seeds per init, the per-category difference
    pretrained − twin with its t-based 95% CI over categories (`verdict`: above / below when the CI
    excludes 0, else `no difference`; never from two CIs overlapping), and the same for the pretrained
    score against its baseline (the category's majority macro-F1, or 0.5 for a pair accuracy)."""
    frame = per_category[per_category["test_set"] == test_set]
    rows = []
    for keys, group in frame.groupby([*TWIN_KEYS, "rule", "step"], sort=True):
        score = RULE_SCORES[keys[len(TWIN_KEYS)]][0]
        means = group.groupby(["init", "category"])[[score, "majority_macro_f1"]].mean()
        if not {"pretrained", "random"} <= set(means.index.get_level_values("init")):
            continue
        pre, twin = means.loc["pretrained"], means.loc["random"]
        common = pre.index.intersection(twin.index)
        difference = (pre.loc[common, score] - twin.loc[common, score]).dropna()
        baseline = pre["majority_macro_f1"] if score == "macro_f1" else pd.Series(0.5, index=pre.index)
        versus_baseline = (pre[score] - baseline).dropna()
        rows.append(
            dict(zip((*TWIN_KEYS, "rule", "step"), keys))
            | {
                "epoch": float(group["epoch"].iloc[0]),
                "score": score,
                "pretrained": pre[score].mean(),
                "random": twin[score].mean(),
                "difference": difference.mean(),
                "difference_ci": "[{:+.3f}, {:+.3f}]".format(*t_interval(difference)),
                "n_categories": len(difference),
                "verdict": _verdict(difference),
                "baseline": baseline.mean(),
                "pretrained_vs_baseline": _verdict(versus_baseline),
            }
        )
    return pd.DataFrame(rows, columns=TWIN_COLUMNS)


def _verdict(differences: pd.Series) -> str:
    low, high = t_interval(differences)
    return "above" if low > 0 else "below" if high < 0 else "no difference"


def dynamics_statement(comparison: pd.DataFrame, test_set: str = HELD_OUT) -> str:
    """The report's sentence per twin pair and rule: at which steps the pretrained LM's score on
    `test_set` lies significantly above or below its random-init twin's (the per-category difference's
    95% CI excludes 0)."""
    if comparison.empty:
        return "No pretrained run has a random-init twin with kept points in this grid.\n"
    lines = [
        f"Held-out ({test_set}) scores along training, pretrained LM vs its random-init twin (the "
        "per-category difference, seeds averaged, with its 95% CI over categories; the points are fixed "
        "by training.eval_every and never used to pick a model; "
        "the final point is the run's result):"
    ]
    for keys, group in comparison.groupby([*TWIN_KEYS, "rule"], sort=True):
        score = group["score"].iloc[0]
        baseline = "the majority baseline" if score == "macro_f1" else "chance (0.5)"
        lines.append(
            f"- {'/'.join(map(str, keys[:-1]))}, rule {keys[-1]} ({score}): "
            + _where(group, "verdict", "the twin", "never significantly different from the twin")
            + "; the pretrained LM is "
            + _where(group, "pretrained_vs_baseline", baseline, f"never significantly different from {baseline}")
            + f" (steps {', '.join(map(str, group['step']))})."
        )
    return "\n".join(lines) + "\n"


def _where(group: pd.DataFrame, column: str, what: str, otherwise: str) -> str:
    """`above {what} at step(s) …; below … at step(s) …` from a verdict column, or `otherwise`."""
    said = [
        f"{v} {what} at step(s) {', '.join(map(str, steps))}"
        for v in ("above", "below")
        if len(steps := list(group.loc[group[column] == v, "step"]))
    ]
    return "; ".join(said) if said else otherwise


def best_leaf_step(val_curves: pd.DataFrame, steps: Sequence[int]) -> int:
    """The kept step with the highest validation leaf accuracy (mean over the given runs' val_curve.tsv
    rows); the earliest one on a tie. The validation table holds trained questions on validation
    images only, so this choice never sees a test score."""
    curve = val_curves[val_curves["step"].isin(steps)].groupby("step")["accuracy"].mean()
    if curve.empty:
        return int(max(steps))
    return int(curve.index[curve.to_numpy() == curve.max()].min())


def negative_leaf_rows(train: pd.DataFrame, pairs: pd.DataFrame) -> pd.Series:
    """Per hypernym: the training rows whose leaf question names one of its leaves and is answered No
    (a leaf of the category seen as a negative: a way the held-out category can leak into training)."""
    negatives = train[(train["kind"] == "leaf") & (train["answer"] == "No")]
    named = negatives.merge(pairs, left_on="asked", right_on="concept")
    return named.groupby("hypernym").size().rename("n_negative_leaf_rows")


def category_view(
    per_category: pd.DataFrame,
    points: dict[str, int],
    rule: str,
    coherence: pd.DataFrame | None,
    negatives: pd.Series,
) -> pd.DataFrame:
    """Per held-out hypernym at each named point (`points`: label → step): the pretrained and twin
    scores (`RULE_SCORES[rule]`, mean over seeds), their difference, the category's visual coherence
    (centred; NaN without the table) and its negative leaf rows in training."""
    score = RULE_SCORES[rule][0]
    held_out = per_category[(per_category["test_set"] == HELD_OUT) & (per_category["rule"] == rule)]
    frames = []
    for label, step in points.items():
        at_step = held_out[held_out["step"] == step]
        means = at_step.pivot_table(index=[*TWIN_KEYS, "category"], columns="init", values=score, aggfunc="mean")
        if not {"pretrained", "random"} <= set(means.columns):
            continue
        frames.append(
            means[["pretrained", "random"]]
            .assign(point=label, step=step, rule=rule, score=score, delta=means["pretrained"] - means["random"])
            .reset_index()
        )
    if not frames:
        return pd.DataFrame(columns=CATEGORY_VIEW_COLUMNS)
    view = pd.concat(frames, ignore_index=True).merge(negatives, left_on="category", right_index=True, how="left")
    view = view.fillna({"n_negative_leaf_rows": 0}).astype({"n_negative_leaf_rows": int})
    view = view.merge(_centred_coherence(coherence), on=["encoder", "category"], how="left")
    return view[list(CATEGORY_VIEW_COLUMNS)]


def _centred_coherence(coherence: pd.DataFrame | None) -> pd.DataFrame:
    if coherence is None:
        return pd.DataFrame(columns=["encoder", "category", "coherence"])
    kept = coherence[(coherence["centering"] == "centred") & (coherence["shuffle"] == "original")]
    return kept[["encoder", "category", "coherence"]].astype({"coherence": float})


def category_correlations(view: pd.DataFrame) -> pd.DataFrame:
    """Spearman ρ of the pretrained − twin difference with coherence and with negative leaf rows, per
    point (the check of the mechanism the view asks about)."""
    rows = []
    for (point, step), group in view.groupby(["point", "step"], sort=False):
        for covariate in ("coherence", "n_negative_leaf_rows"):
            pair = group[["delta", covariate]].astype(float).dropna()
            defined = len(pair) > 2 and pair.nunique().min() > 1  # ρ needs variation in both
            rho, p = stats.spearmanr(pair["delta"], pair[covariate]) if defined else (np.nan, np.nan)
            rows.append({"point": point, "step": step, "covariate": covariate, "n": len(pair), "rho": rho, "p": p})
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def category_views(
    per_category: pd.DataFrame,
    runs: Sequence[dict],
    pairs: pd.DataFrame,
    coherence: pd.DataFrame | None,
    rule: str = "paired_calibrated",
) -> pd.DataFrame:
    """`category_view` of every twin pair at its last and best-leaf points (the best-leaf step from the
    pretrained runs' validation curves); `runs` carry `val_curve` and `train` paths."""
    frames = []
    for keys, group in per_category.groupby(list(TWIN_KEYS), sort=True):
        if set(group["init"]) < {"pretrained", "random"}:
            continue
        members = [r for r in runs if tuple(r[k] for k in TWIN_KEYS) == keys]
        curves = pd.concat([read_tsv(r["val_curve"]) for r in members if r["init"] == "pretrained"])
        steps = sorted(group["step"].unique())
        points = {"last": int(max(steps)), "best_leaf": best_leaf_step(curves.astype(float), steps)}
        negatives = negative_leaf_rows(read_tsv(members[0]["train"]), pairs)
        frames.append(category_view(group, points, rule, coherence, negatives))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CATEGORY_VIEW_COLUMNS)
