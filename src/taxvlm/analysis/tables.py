"""Report tables (CSV for machines, Markdown for people) built from the tidy analysis tables."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from taxvlm.analysis.coherence import coherence_correlations
from taxvlm.analysis.dynamics import NO_YESNO_RUNS, read_dynamics
from taxvlm.analysis.metrics import (
    RUN_KEYS,
    SHUFFLE_ORDER,
    TEST_SET_ORDER,
    headline,
    read_metrics,
    read_typed,
    t_interval,
)
from taxvlm.analysis.textprobe import textprobe_correlations
from taxvlm.evaluation.decision import RULES
from taxvlm.io import read_tsv, write_text

PathLike = str | os.PathLike[str]
TEXTPROBE_NUMERIC: tuple[str, ...] = ("n", "n_correct", "accuracy", "ci_low", "ci_high", "macro_f1")
COHERENCE_NUMERIC: tuple[str, ...] = ("n_leaves", "n_images", "coherence")


@dataclass
class AnalysisTables:
    """Everything figures and tables read; the optional parts are None when not in the grid."""

    metrics: pd.DataFrame
    headline: pd.DataFrame
    coherence: pd.DataFrame | None = None
    textprobe: pd.DataFrame | None = None
    pairs: pd.DataFrame | None = None
    dynamics: pd.DataFrame | None = None
    dynamics_twin: pd.DataFrame | None = None


def load_tables(
    metrics_path: PathLike,
    coherence_path: PathLike | None = None,
    textprobe_paths: Sequence[PathLike] = (),
    pairs_path: PathLike | None = None,
    dynamics_path: PathLike | None = None,
    dynamics_twin_path: PathLike | None = None,
) -> AnalysisTables:
    """Read the analysis tables with numeric columns typed; the headline is recomputed from metrics
    (one source of truth, identical to headline.tsv)."""
    metrics = read_metrics(metrics_path)
    textprobe = [read_typed(path, TEXTPROBE_NUMERIC) for path in textprobe_paths]
    return AnalysisTables(
        metrics=metrics,
        headline=headline(metrics),
        coherence=read_typed(coherence_path, COHERENCE_NUMERIC) if coherence_path else None,
        textprobe=pd.concat(textprobe, ignore_index=True) if textprobe else None,
        pairs=read_tsv(pairs_path) if pairs_path else None,
        dynamics=read_dynamics(dynamics_path) if dynamics_path else None,
        dynamics_twin=read_tsv(dynamics_twin_path) if dynamics_twin_path else None,
    )


def tables_from_inputs(inputs: Mapping[str, Any]) -> AnalysisTables:
    """`load_tables` of a rule's named inputs: `metrics`, and whichever of `coherence`, `textprobe`
    (the combined summary: a path, or a list of none or one where the grid may probe no LM), `pairs`
    and `dynamics` the rule has (the figures and tables rules)."""
    textprobe = inputs.get("textprobe") or []
    return load_tables(
        inputs["metrics"], inputs.get("coherence"), [textprobe] if isinstance(textprobe, str) else list(textprobe),
        inputs.get("pairs"), inputs.get("dynamics"), inputs.get("dynamics_twin"),
    )  # fmt: skip


def only_readout(tables: AnalysisTables, readout: str) -> AnalysisTables:
    """The tables with `metrics` and `headline` of one readout (`yesno` or `naming`), for readers
    whose panels mean one of them (the paper's F1 figures are yes/no)."""
    return replace(
        tables,
        metrics=tables.metrics[tables.metrics["readout"] == readout],
        headline=tables.headline[tables.headline["readout"] == readout],
    )


def absolute_rule(tables: AnalysisTables) -> AnalysisTables:
    """The tables with `metrics` under the paper's (absolute) decision rule only, for readers that do
    not split by rule (coherence and text-probe correlations, the coherence figure)."""
    return replace(tables, metrics=tables.metrics[tables.metrics["rule"] == "absolute"])


def headline_table(tables: AnalysisTables) -> pd.DataFrame:
    """The headline in long form: one row per encoder × LM × init × condition × shuffle × objective ×
    readout × rule × test set."""
    columns = [
        *RUN_KEYS[:-1],
        "readout",
        "rule",
        "test_set",
        "pct_deprived",
        "n_seeds",
        "n_categories",
        "macro_f1",
        "ci_low",
        "ci_high",
        "majority_macro_f1",
        "accuracy",
        "accuracy_ci_low",
        "accuracy_ci_high",
        "majority_accuracy",
        "pair_accuracy",
        "pair_ci_low",
        "pair_ci_high",
        "n_pairs",
        "n_unpaired",
    ]
    return tables.headline[columns]


# score label → (mean, CI low, CI high, majority-baseline column or None) in the headline
HEADLINE_SCORES: dict[str, tuple[str, str, str, str | None]] = {
    "macro-F1": ("macro_f1", "ci_low", "ci_high", "majority_macro_f1"),
    "accuracy": ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "majority_accuracy"),
    "pair accuracy": ("pair_accuracy", "pair_ci_low", "pair_ci_high", None),
}
HEADLINE_GROUP: tuple[str, ...] = ("encoder", "lm", "condition", "shuffle", "objective", "readout", "test_set")
INITS: tuple[str, ...] = ("pretrained", "random")


def _estimate(rows: pd.DataFrame, mean: str, low: str, high: str) -> str:
    """`mean [low, high]` to 3 decimals; the mean alone without a CI; `—` when absent."""
    if rows.empty or pd.isna(rows[mean].iloc[0]):
        return "—"
    row = rows.iloc[0]
    return f"{row[mean]:.3f}" if pd.isna(row[low]) else f"{row[mean]:.3f} [{row[low]:.3f}, {row[high]:.3f}]"


def _rank(values: pd.Series, preferred: Sequence[str]) -> pd.Series:
    """Position of each value in `preferred` (values not in it rank after all of them)."""
    return values.map({value: i for i, value in enumerate(preferred)}).fillna(len(preferred))


def headline_markdown(headline_frame: pd.DataFrame) -> pd.DataFrame:
    """The headline laid out for reading: one row per encoder × LM × condition × shuffle × test set ×
    score (macro-F1, accuracy, pair accuracy), the majority baseline, then for every decision rule the
    pretrained LM and its random-init twin (the chance level of that rule) side by side; cells are means
    over categories × seeds with their t-based 95% CIs; `n` = seeds × categories (pretrained / random)."""
    if headline_frame.empty:
        return headline_frame
    frame = headline_frame.assign(
        shuffle_rank=_rank(headline_frame["shuffle"], SHUFFLE_ORDER),
        test_set_rank=_rank(headline_frame["test_set"], TEST_SET_ORDER),
    ).sort_values(["encoder", "lm", "pct_deprived", "condition", "shuffle_rank", "shuffle", "test_set_rank"])
    rows = []
    for keys, group in frame.groupby(list(HEADLINE_GROUP), sort=False):
        first_rule = group[group["rule"] == next(rule for rule in RULES if rule in set(group["rule"]))]
        sizes = [first_rule[first_rule["init"] == init] for init in INITS]
        n = " / ".join(
            f"{int(r['n_seeds'].iloc[0])}×{int(r['n_categories'].iloc[0])}" if len(r) else "—" for r in sizes
        )
        for score, (mean, low, high, majority) in HEADLINE_SCORES.items():
            row = dict(zip(HEADLINE_GROUP, keys)) | {"score": score}
            row["majority"] = f"{group[majority].mean():.3f}" if majority else "—"
            for rule in RULES:
                for init in INITS:
                    cell = group[(group["rule"] == rule) & (group["init"] == init)]
                    row[f"{rule}: {init}"] = _estimate(cell, mean, low, high)
            rows.append(row | {"n": n})
    return pd.DataFrame(rows)


def per_category_table(tables: AnalysisTables) -> pd.DataFrame:
    """Macro-F1 of every category under every decision rule, averaged over seeds, with its majority
    baseline."""
    keys = [*RUN_KEYS[:-1], "readout", "rule", "test_set", "category"]
    return tables.metrics.groupby(keys, as_index=False, sort=True).agg(
        n_seeds=("seed", "nunique"),
        n=("n", "mean"),
        macro_f1=("macro_f1", "mean"),
        majority_macro_f1=("majority_macro_f1", "mean"),
    )


def coherence_summary_table(tables: AnalysisTables) -> pd.DataFrame:
    """Mean category coherence per encoder, centering (raw, centred) and shuffle, with a t-based 95% CI
    over categories."""
    columns = ["encoder", "centering", "shuffle", "n_categories", "coherence", "ci_low", "ci_high"]
    if tables.coherence is None:
        return pd.DataFrame(columns=columns)
    rows = []
    keys = ["encoder", "centering", "shuffle"]
    for key, group in tables.coherence.dropna(subset=["coherence"]).groupby(keys):
        low, high = t_interval(group["coherence"])
        rows.append(
            dict(zip(keys, key))
            | {"n_categories": len(group), "coherence": group["coherence"].mean(), "ci_low": low, "ci_high": high}
        )
    return pd.DataFrame(rows, columns=columns)


def coherence_correlation_table(tables: AnalysisTables) -> pd.DataFrame:
    if tables.coherence is None:
        return pd.DataFrame()
    return coherence_correlations(tables.coherence, tables.metrics)


def textprobe_table(tables: AnalysisTables) -> pd.DataFrame:
    """LM × init × probe × phrasing × decision rule accuracy with its Wilson 95% CI."""
    if tables.textprobe is None:
        return pd.DataFrame()
    summary = tables.textprobe[tables.textprobe["scope"] == "all"]
    return summary[["lm", "init", "probe", "phrasing", "rule", "n", "accuracy", "ci_low", "ci_high", "macro_f1"]]


def textprobe_correlation_table(tables: AnalysisTables) -> pd.DataFrame:
    if tables.textprobe is None:
        return pd.DataFrame()
    return textprobe_correlations(tables.textprobe, tables.metrics)


NAMING_KEYS: tuple[str, ...] = ("encoder", "lm", "objective", "condition", "shuffle", "rule")


def naming_table(tables: AnalysisTables) -> pd.DataFrame:
    """Naming by likelihood (readout `naming`): pair accuracy and macro-F1 with their t-based CIs per
    encoder, LM, objective, condition, shuffle, rule, test set (leaf / seen / held-out hypernym) and
    init; LiMBeR's question is whether leaves and hypernyms are named above the random-init twin."""
    columns = [
        *NAMING_KEYS,
        "test_set",
        "init",
        "n_seeds",
        "n_categories",
        "pair_accuracy",
        "pair_ci_low",
        "pair_ci_high",
        "macro_f1",
        "ci_low",
        "ci_high",
        "majority_macro_f1",
    ]
    return tables.headline.loc[tables.headline["readout"] == "naming", columns].reset_index(drop=True)


def naming_markdown(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per encoder × LM × objective × condition × shuffle × rule; for every test set the pair
    accuracy [95% CI] of the pretrained LM and of its random-init twin side by side."""
    if frame.empty:
        return frame
    frame = frame.assign(test_set_rank=_rank(frame["test_set"], TEST_SET_ORDER))
    test_sets = list(frame.sort_values("test_set_rank")["test_set"].unique())
    rows = []
    for keys, group in frame.groupby(list(NAMING_KEYS), sort=True):
        row = dict(zip(NAMING_KEYS, keys))
        for test_set in test_sets:
            for init in INITS:
                cell = group[(group["test_set"] == test_set) & (group["init"] == init)]
                row[f"{test_set}: {init}"] = _estimate(cell, "pair_accuracy", "pair_ci_low", "pair_ci_high")
        rows.append(row)
    return pd.DataFrame(rows)


def dynamics_twin_table(tables: AnalysisTables) -> pd.DataFrame:
    """Held-out score per kept step, pretrained beside its random-init twin, with the per-category
    difference's CI and verdict (`taxvlm.analysis.dynamics.twin_comparison`, dynamics_twin.tsv)."""
    if tables.dynamics is None or tables.dynamics.empty:
        return pd.DataFrame(columns=["note"], data=[[NO_YESNO_RUNS]])
    comparison = tables.dynamics_twin
    if comparison is None or comparison.empty:
        return pd.DataFrame(columns=["note"], data=[["no pretrained run with a random-init twin"]])
    return comparison


TABLES: dict[str, Callable[[AnalysisTables], pd.DataFrame]] = {
    "headline": headline_table,
    "per_category": per_category_table,
    "coherence": coherence_summary_table,
    "coherence_correlations": lambda t: coherence_correlation_table(absolute_rule(t)),
    "textprobe": textprobe_table,
    "textprobe_correlations": lambda t: textprobe_correlation_table(absolute_rule(t)),
    "naming": naming_table,
    "dynamics": dynamics_twin_table,
}
# tables whose Markdown is laid out differently from their CSV (frame → Markdown frame)
MARKDOWN_LAYOUTS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "headline": headline_markdown,
    "naming": naming_markdown,
}


def write_table(
    frame: pd.DataFrame, csv_path: PathLike, md_path: PathLike, markdown: pd.DataFrame | None = None
) -> None:
    """Full-precision CSV of `frame` and a 3-decimal Markdown table of `markdown` (default: `frame`;
    'not in this grid' when empty)."""
    write_text(frame.to_csv(index=False, lineterminator="\n"), csv_path)
    markdown = frame if markdown is None else markdown
    text = markdown.to_markdown(index=False, floatfmt=".3f") if not markdown.empty else "_not in this grid_"
    write_text(text + "\n", md_path)


def make_tables(tables: AnalysisTables, outputs: Mapping[str, tuple[PathLike, PathLike]]) -> None:
    """Write every table named in `outputs` (keys from TABLES) as (csv, md)."""
    unknown = set(outputs) - set(TABLES)
    if unknown:
        raise KeyError(f"unknown tables: {sorted(unknown)}")
    for name, (csv_path, md_path) in outputs.items():
        frame = TABLES[name](tables)
        layout = MARKDOWN_LAYOUTS.get(name)
        write_table(frame, csv_path, md_path, layout(frame) if layout else None)
