"""The probe stage's report: accuracy by relative layer depth (figure), the best layer per task
(table), and a generated statement of where each task peaks and whether the middle of the LM beats
its top (Tao et al.'s claim). Everything is computed from probe.tsv (taxvlm.analysis.probing).

Middle = relative depth in [1/3, 2/3]; top = the last layer (after the final norm). "The middle
beats the top" when the best middle layer's mean accuracy over seeds exceeds the top layer's; the
statement gives both numbers and whether their 95% CIs (over seeds, where there are several) overlap.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from taxvlm.io import atomic_path, write_text  # noqa: E402

GROUP = ["encoder", "lm", "init", "condition", "shuffle", "objective"]
PROBE_ORDER = [
    "entailment @ answer",
    "entailment @ target",
    "transfer @ answer",
    "transfer @ target",
    "transfer @ image",
    "membership @ image",
    "leaf @ image",
]
MIDDLE = (1 / 3, 2 / 3)


def _panel(summary: pd.DataFrame) -> pd.DataFrame:
    return summary.assign(
        probe=summary["task"] + " @ " + summary["position"],
        setting=summary["condition"] + " / " + summary["shuffle"],
        model=summary["init"] + " · " + summary["encoder"],
    )


def _baselines(data: pd.DataFrame, **_: object) -> None:
    """Chance and majority of a facet, dashed."""
    ax = plt.gca()
    for column, color in (("chance", "grey"), ("majority", "black")):
        ax.axhline(data[column].mean(), ls="--", lw=0.8, color=color, label=column)


def probe_figure(summary: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Accuracy vs relative depth; rows = task @ position, columns = condition / shuffle, one line per
    init · encoder (mean over seeds); chance (grey) and majority (black) dashed."""
    data = _panel(summary)
    probes = [p for p in PROBE_ORDER if p in set(data["probe"])]
    grid = sns.FacetGrid(
        data, row="probe", col="setting", row_order=probes, sharey=False, height=2.0, aspect=1.6, margin_titles=True
    )
    grid.map_dataframe(sns.lineplot, x="depth", y="accuracy", hue="model", style="model", marker=".")
    grid.map_dataframe(_baselines)
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.add_legend()
    grid.set_axis_labels("relative layer depth", "probe accuracy")
    with atomic_path(path) as tmp:
        grid.figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(grid.figure)


def best_layers(summary: pd.DataFrame) -> pd.DataFrame:
    """Per run group × task × position: the best layer, its accuracy (CI), the best middle layer's
    and the top layer's accuracy, and the selectivity at the best layer."""
    rows = []
    for key, g in summary.groupby([*GROUP, "task", "position"], sort=True):
        best = g.loc[g["accuracy"].idxmax()]
        middle = g[g["depth"].between(*MIDDLE)]
        mid = middle.loc[middle["accuracy"].idxmax()] if not middle.empty else best
        top = g.loc[g["layer"].idxmax()]
        rows.append(
            dict(zip([*GROUP, "task", "position"], key))
            | {
                "best_layer": int(best["layer"]),
                "n_layers": int(best["n_layers"]),
                "best_depth": best["depth"],
                "best_accuracy": best["accuracy"],
                "best_ci_low": best["accuracy_ci_low"],
                "best_ci_high": best["accuracy_ci_high"],
                "best_selectivity": best["selectivity"],
                "middle_layer": int(mid["layer"]),
                "middle_accuracy": mid["accuracy"],
                "middle_ci_low": mid["accuracy_ci_low"],
                "top_accuracy": top["accuracy"],
                "top_ci_high": top["accuracy_ci_high"],
                "chance": best["chance"],
                "majority": best["majority"],
                "n_seeds": int(best["n_seeds"]),
                "lm_accuracy": best["lm_accuracy"],
                "best_accuracy_lm_wrong": best["accuracy_lm_wrong"],
            }
        )
    return with_twin(pd.DataFrame(rows), summary)


def with_twin(best: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """`twin_accuracy`: the random-init twin's probe at the same layer, task and position as each row's
    best layer (NaN without a twin), and `versus_twin` = best − twin: much of what a probe finds is the
    encoder's information, which the twin's states carry too, so a layer is read against the twin's
    same layer, never against chance alone."""
    if best.empty:
        return best.assign(twin_accuracy=pd.Series(dtype=float), versus_twin=pd.Series(dtype=float))
    keys = [k for k in GROUP if k != "init"]
    twin = summary[summary["init"] == "random"][[*keys, "task", "position", "layer", "accuracy"]]
    twin = twin.rename(columns={"layer": "best_layer", "accuracy": "twin_accuracy"})
    merged = best.merge(twin, on=[*keys, "task", "position", "best_layer"], how="left")
    merged.loc[merged["init"] == "random", "twin_accuracy"] = float("nan")
    return merged.assign(versus_twin=merged["best_accuracy"] - merged["twin_accuracy"])


def _sentence(row: pd.Series) -> str:
    verdict = "beats" if row["middle_accuracy"] > row["top_accuracy"] else "does not beat"
    ci = ""
    if row["n_seeds"] > 1:
        apart = row["middle_ci_low"] > row["top_ci_high"]
        ci = " (95% CIs over seeds " + ("do not overlap" if apart else "overlap") + ")"
    lm = ""
    if pd.notna(row["lm_accuracy"]):
        lm = f" The LM itself answers {row['lm_accuracy']:.3f} of these test rows right"
        if pd.notna(row["best_accuracy_lm_wrong"]):
            lm += f"; on the rows it gets wrong, the best layer's probe is right on {row['best_accuracy_lm_wrong']:.3f}"
        lm += "."
    twin = ""
    if pd.notna(row.get("twin_accuracy")):
        twin = (
            f" Its random-init twin's probe at the same layer: {row['twin_accuracy']:.3f} "
            f"(pretrained − twin {row['versus_twin']:+.3f}): what both find is the encoder's information."
            if abs(row["versus_twin"]) < 0.05
            else f" Its random-init twin's probe at the same layer: {row['twin_accuracy']:.3f} "
            f"(pretrained − twin {row['versus_twin']:+.3f})."
        )
    return (
        f"- {row['task']} @ {row['position']}, {row['init']} {row['lm']} + {row['encoder']}, "
        f"{row['condition']}/{row['shuffle']}: peaks at relative depth {row['best_depth']:.2f} (layer "
        f"{row['best_layer']} of {row['n_layers']}, accuracy {row['best_accuracy']:.3f}, selectivity "
        f"{row['best_selectivity']:+.3f}; majority {row['majority']:.3f}); the middle (best "
        f"{row['middle_accuracy']:.3f} at layer {row['middle_layer']}) {verdict} the top "
        f"({row['top_accuracy']:.3f}){ci}.{twin}{lm}"
    )


def statement(best: pd.DataFrame) -> str:
    """The report's automatic statement (Markdown), one line per run group × task × position."""
    lines = [
        "Where the probes peak (relative depth 0 = input embeddings, 1 = last layer; middle = depth 1/3–2/3; "
        "means over seeds; generated from probe.tsv):",
        "",
        *(_sentence(row) for _, row in best.iterrows()),
    ]
    wins = best[best["init"] == "pretrained"]
    if not wins.empty:
        share = float((wins["middle_accuracy"] > wins["top_accuracy"]).mean())
        lines += ["", f"Tao et al.'s claim (middle beats top) holds for {share:.0%} of the pretrained-LM probes here."]
    return "\n".join(lines) + "\n"


def write_report(summary: pd.DataFrame, figure: str, table_csv: str, table_md: str, statement_md: str) -> None:
    """The figure, the best-layer table (CSV + Markdown) and the statement."""
    probe_figure(summary, figure)
    best = best_layers(summary)
    with atomic_path(table_csv) as tmp:
        best.to_csv(tmp, index=False, float_format="%.4f")
    write_text(best.to_markdown(index=False, floatfmt=".3f") + "\n", table_md)
    write_text(statement(best), statement_md)
