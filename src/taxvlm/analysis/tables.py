"""Report tables (CSV for machines, Markdown for people) built from the tidy analysis tables."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from taxvlm.analysis.coherence import coherence_correlations
from taxvlm.analysis.metrics import RUN_KEYS, headline, read_metrics, read_typed, t_interval
from taxvlm.analysis.textprobe import textprobe_correlations
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


def load_tables(
    metrics_path: PathLike,
    coherence_path: PathLike | None = None,
    textprobe_paths: Sequence[PathLike] = (),
    pairs_path: PathLike | None = None,
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
    )


def headline_table(tables: AnalysisTables) -> pd.DataFrame:
    columns = [
        *RUN_KEYS[:-1],
        "test_set",
        "pct_deprived",
        "n_seeds",
        "n_categories",
        "macro_f1",
        "ci_low",
        "ci_high",
        "majority_macro_f1",
        "accuracy",
    ]
    return tables.headline[columns]


def per_category_table(tables: AnalysisTables) -> pd.DataFrame:
    """Macro-F1 of every category, averaged over seeds, with its majority baseline."""
    keys = [*RUN_KEYS[:-1], "test_set", "category"]
    return tables.metrics.groupby(keys, as_index=False, sort=True).agg(
        n_seeds=("seed", "nunique"),
        n=("n", "mean"),
        macro_f1=("macro_f1", "mean"),
        majority_macro_f1=("majority_macro_f1", "mean"),
    )


def coherence_summary_table(tables: AnalysisTables) -> pd.DataFrame:
    """Mean category coherence per encoder and shuffle, with a t-based 95% CI over categories."""
    if tables.coherence is None:
        return pd.DataFrame(columns=["encoder", "shuffle", "n_categories", "coherence", "ci_low", "ci_high"])
    rows = []
    for (encoder, shuffle), group in tables.coherence.dropna(subset=["coherence"]).groupby(["encoder", "shuffle"]):
        low, high = t_interval(group["coherence"])
        rows.append(
            {
                "encoder": encoder,
                "shuffle": shuffle,
                "n_categories": len(group),
                "coherence": group["coherence"].mean(),
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows, columns=["encoder", "shuffle", "n_categories", "coherence", "ci_low", "ci_high"])


def coherence_correlation_table(tables: AnalysisTables) -> pd.DataFrame:
    if tables.coherence is None:
        return pd.DataFrame()
    return coherence_correlations(tables.coherence, tables.metrics)


def textprobe_table(tables: AnalysisTables) -> pd.DataFrame:
    """LM × init × probe × phrasing accuracy with its Wilson 95% CI (issue 8's report table)."""
    if tables.textprobe is None:
        return pd.DataFrame()
    summary = tables.textprobe[tables.textprobe["scope"] == "all"]
    return summary[["lm", "init", "probe", "phrasing", "n", "accuracy", "ci_low", "ci_high", "macro_f1"]]


def textprobe_correlation_table(tables: AnalysisTables) -> pd.DataFrame:
    if tables.textprobe is None:
        return pd.DataFrame()
    return textprobe_correlations(tables.textprobe, tables.metrics)


TABLES: dict[str, Callable[[AnalysisTables], pd.DataFrame]] = {
    "headline": headline_table,
    "per_category": per_category_table,
    "coherence": coherence_summary_table,
    "coherence_correlations": coherence_correlation_table,
    "textprobe": textprobe_table,
    "textprobe_correlations": textprobe_correlation_table,
}


def write_table(frame: pd.DataFrame, csv_path: PathLike, md_path: PathLike) -> None:
    """Full-precision CSV and a 3-decimal Markdown table ('not in this grid' when empty)."""
    write_text(frame.to_csv(index=False, lineterminator="\n"), csv_path)
    markdown = frame.to_markdown(index=False, floatfmt=".3f") if not frame.empty else "_not in this grid_"
    write_text(markdown + "\n", md_path)


def make_tables(tables: AnalysisTables, outputs: Mapping[str, tuple[PathLike, PathLike]]) -> None:
    """Write every table named in `outputs` (keys from TABLES) as (csv, md)."""
    unknown = set(outputs) - set(TABLES)
    if unknown:
        raise KeyError(f"unknown tables: {sorted(unknown)}")
    for name, (csv_path, md_path) in outputs.items():
        write_table(TABLES[name](tables), csv_path, md_path)
